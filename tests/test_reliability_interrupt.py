"""Interrupted work: real SIGKILLs of batch analyze and training, then restarts; damaged
checkpoints and model files give one clear error.

What the training developer already covers in ``tests/test_training.py`` (a crash simulated by
an exception inside the loop, resume with identical weights, a truncated checkpoint at library
level) is not repeated: here the process is killed for real (no ``finally`` blocks, no flush),
and the failures are checked at the command line.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from analyze_fixtures import phantom_ct, write_tiny_model
from lungspread.cli.app import main
from lungspread.io import write_volume
from training_fixtures import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: object) -> list[str]:
    """The console script in a subprocess (as ``python -m lungspread``: same interpreter)."""
    return [sys.executable, "-m", "lungspread", *(str(a) for a in args)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # a polite subprocess on a shared 2-core machine
    env["MKL_NUM_THREADS"] = "1"
    return env


def _wait_for(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"process ended early ({proc.returncode}): {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the process")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".partial-" in p.name or p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model"), bias=-1.0)


# -- batch analyze ------------------------------------------------------------------------------
def test_batch_killed_midway_restarts_with_the_remaining_cases_only(
    tiny_model: Path, tmp_path: Path
) -> None:
    ct, _ = phantom_ct(0)
    folder = tmp_path / "cts"
    folder.mkdir()
    names = [f"case_{n}" for n in range(3)]
    write_volume(ct, folder / f"{names[0]}.nii.gz")
    for name in names[1:]:
        shutil.copy(folder / f"{names[0]}.nii.gz", folder / f"{name}.nii.gz")
    out = tmp_path / "out"
    args = (
        "analyze",
        folder,
        "--out",
        out,
        "--model",
        tiny_model,
        "--device",
        "cpu",
        "--no-export",
    )
    proc = subprocess.Popen(
        _cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()
    )
    _wait_for(proc, lambda: (out / names[0] / "run.json").is_file(), timeout_s=240)
    _kill(proc)
    finished = sorted(n for n in names if (out / n / "run.json").is_file())
    assert names[0] in finished and len(finished) < len(names), finished
    stamps = {n: (out / n / "run.json").stat().st_mtime_ns for n in finished}
    tumor_stamps = {n: (out / n / "tumor.nii.gz").stat().st_mtime_ns for n in finished}
    assert not (out / "batch.json").exists()  # the summary is written at the end only

    # the restart, in this process (what matters is what the killed run left behind)
    assert main([str(a) for a in args]) == 0
    summary = json.loads((out / "batch.json").read_text())
    assert summary["skipped"] == finished
    assert summary["done"] == [n for n in names if n not in finished]
    assert summary["failed"] == []
    for n in finished:  # finished cases were not touched again
        assert (out / n / "run.json").stat().st_mtime_ns == stamps[n]
        assert (out / n / "tumor.nii.gz").stat().st_mtime_ns == tumor_stamps[n]
    for n in names:
        assert {"tumor.nii.gz", "lungs.nii.gz", "report.json", "run.json"} <= {
            p.name for p in (out / n).iterdir()
        }
        json.loads((out / n / "report.json").read_text())
    assert not _leftovers(out)


# -- training -----------------------------------------------------------------------------------
TRAIN = (
    "--model", "fast3d", "--iters-per-epoch", "8", "--patch", "16,16,8", "--batch", "2",
    "--features", "4,8", "--folds", "2", "--fold", "0", "--device", "cpu", "--no-tensorboard",
    "--seed", "3",
)  # fmt: skip


#: Runs ``lungspread train`` (the real CLI) with callbacks that, at step 4 of epoch 2, write a
#: marker file and block: the test then SIGKILLs the process, mid-epoch for certain.
_BLOCK_MID_EPOCH = """
import contextlib, sys, time
from pathlib import Path
import lungspread.cli.cmd_train as cmd
from lungspread.training.trainer import TrainCallbacks
marker = Path(sys.argv[1])
class Block(TrainCallbacks):
    def on_iteration(self, epoch, iteration, loss):
        if (epoch, iteration) == (1, 3):
            marker.write_text("in epoch 2")
            time.sleep(600)
cmd._progress_callbacks = lambda quiet: (contextlib.nullcontext(), Block())
from lungspread.cli.app import main
sys.exit(main(sys.argv[2:]))
"""


def _epoch_of(fold: Path) -> int:
    try:
        return int(json.loads((fold / "checkpoint.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _log_rows(fold: Path) -> list[dict[str, str]]:
    with (fold / "log.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_losing_at_most_that_epoch(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    toy = write_toy_dataset(tmp_path / "toy", n_cases=4, shape=(24, 24, 8))
    epochs = 3
    ref = tmp_path / "ref"
    done = subprocess.run(
        _cli("train", toy, "--out", ref, "--epochs", epochs, "-q", *TRAIN),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr

    run = tmp_path / "run"
    fold = run / "fold_0"
    marker = tmp_path / "mid-epoch-2"
    proc = subprocess.Popen(
        [sys.executable, "-c", _BLOCK_MID_EPOCH, str(marker),
         "train", str(toy), "--out", str(run), "--epochs", str(epochs), "-q", *TRAIN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(),
    )  # fmt: skip
    _wait_for(proc, marker.is_file, timeout_s=300)
    _kill(proc)  # 4 of the 8 steps of epoch 2 done, nothing of them saved
    kept = _epoch_of(fold)
    assert kept == 1 and len(_log_rows(fold)) == 1
    assert not (run / "run.json").exists()  # the run is not marked finished

    resumed = subprocess.run(
        _cli("train", toy, "--out", run, "--resume", "--device", "cpu", "--no-tensorboard"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {kept}" in resumed.stderr
    # the finished epochs were not trained again: one log row per epoch, in order
    rows = _log_rows(fold)
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert _epoch_of(fold) == epochs and (run / "run.json").is_file()
    # and the result is the uninterrupted run's, bit for bit (per-epoch random streams)
    a = load_file(str(ref / "fold_0" / "model.safetensors"))
    b = load_file(str(fold / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not _leftovers(run)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, run folder) of a one-epoch training run."""
    root = tmp_path_factory.mktemp("trained")
    toy = write_toy_dataset(root / "toy", n_cases=4, shape=(24, 24, 8))
    run = root / "run"
    quick = [*TRAIN[:2], "--iters-per-epoch", "1", *TRAIN[4:]]
    code = main(["train", str(toy), "--out", str(run), "--epochs", "1", "-q", *quick])
    assert code == 0
    return toy, run


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err
    assert len(lines) >= 1 and lines[-1].startswith("error: "), err
    assert sum(x.startswith("error: ") for x in lines) == 1, err
    return lines[-1]


def test_corrupt_training_checkpoint_is_one_clear_error(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toy, src = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    tensors = next((run / "fold_0").glob("checkpoint_e*.safetensors"))
    data = bytearray(tensors.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    tensors.write_bytes(bytes(data))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    code = main(["train", str(toy), "--out", str(run), "--resume", "--epochs", "2", "-q"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2
    assert "corrupt" in line and str(tensors) in line
    # nothing was overwritten: the damaged run is left for the user to inspect
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before


def test_truncated_checkpoint_json_is_one_clear_error(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toy, src = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    state = run / "fold_0" / "checkpoint.json"
    state.write_bytes(state.read_bytes()[:50])
    code = main(["train", str(toy), "--out", str(run), "--resume", "--epochs", "2", "-q"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and "corrupt" in line and str(state) in line


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("truncate-weights", "corrupt or unreadable"),
        ("garbage-model-json", "not valid JSON"),
        ("wrong-model-json", "does not describe a lungspread model"),
        ("weights-of-another-net", "do not fit"),
    ],
)
def test_damaged_model_folder_is_one_clear_error(
    damage: str,
    words: str,
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    weights, spec = model / "model.safetensors", model / "model.json"
    named = weights
    if damage == "truncate-weights":
        weights.write_bytes(weights.read_bytes()[:200])
    elif damage == "garbage-model-json":
        spec.write_text("{ definitely not", "utf-8")
        named = spec
    elif damage == "wrong-model-json":
        spec.write_text(json.dumps({"name": "fast3d", "layers": 3}), "utf-8")
        named = spec
    else:
        other = json.loads(spec.read_text())
        other["kwargs"]["features"] = [8, 16, 32]
        spec.write_text(json.dumps(other), "utf-8")
    ct, _ = phantom_ct(0)
    ct_file = write_volume(ct, tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    code = main(["analyze", str(ct_file), "--out", str(out), "--model", str(model), "--no-export"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2 and words in line and str(named) in line
    assert not out.exists() and not _leftovers(tmp_path)

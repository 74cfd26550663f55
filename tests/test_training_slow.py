"""Slow training checks: SIGKILL + resume, DDP on two CPU processes, learning, tune."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from training_fixtures import train_tiny_run, write_toy_dataset

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # polite on a shared machine; the child inherits it
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _train_args(data: Path, run: Path, epochs: int, iters: int) -> list[str]:
    return [
        "train",
        str(data),
        "--out",
        str(run),
        "--model",
        "unet3d",
        "--features",
        "4,8,16",
        "--patch",
        "16,16,8",
        "--batch",
        "2",
        "--folds",
        "3",
        "--epochs",
        str(epochs),
        "--iters-per-epoch",
        str(iters),
        "--device",
        "cpu",
        "--no-tensorboard",
        "-q",
    ]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from lungspread.training.state import load_state, model_state_from

    return model_state_from(load_state(folder)[1])


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "Toy", n_cases=6)


def test_sigkill_mid_epoch_then_resume(toy: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lungspread"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    epochs, iters = 3, 25
    subprocess.run(cmd + _train_args(toy, ref, epochs, iters), check=True, env=_env())
    proc = subprocess.Popen(cmd + _train_args(toy, run, epochs, iters), env=_env())
    state = run / "fold_0" / "checkpoint.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
            break
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = json.loads(state.read_text())["epoch"]
    assert 1 <= saved < epochs  # at most the unfinished epoch was lost
    assert not (run / "run.json").exists()
    subprocess.run(
        [
            *cmd,
            "train",
            str(toy),
            "--out",
            str(run),
            "--resume",
            "-q",
            "--device",
            "cpu",
            "--no-tensorboard",
        ],
        check=True,
        env=_env(),
    )
    a, b = _weights(ref / "fold_0"), _weights(run / "fold_0")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (run / "run.json").is_file()


def test_ddp_two_cpu_processes_on_gloo(toy: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "lungspread",
        *_train_args(toy, run, 1, 2),
    ]
    subprocess.run(cmd, check=True, env=_env(), timeout=300)
    info = json.loads((run / "fold_0" / "checkpoint.json").read_text())
    assert info["epoch"] == 1 and len(info["history"]) == 1
    from lungspread.inference.predictor import Predictor

    assert Predictor.from_folder(run).spec.name == "unet3d"
    record = json.loads((run / "run.json").read_text())
    assert record["outputs"]["chosen_fold"] == "0"
    assert record["options"]["world_size"] == 2


@pytest.mark.parametrize(
    ("model", "kwargs", "patch"),
    [
        ("unet3d", {"features": [8, 16, 32]}, [16, 16, 8]),
        ("resnet-unet2d", {"features": [8, 16, 32]}, None),
    ],
)
def test_models_learn_the_toy_task(
    toy: Path, tmp_path: Path, model: str, kwargs: dict[str, object], patch: list[int] | None
) -> None:
    from lungspread.evaluate import evaluate

    torch.set_num_threads(1)
    run = train_tiny_run(
        toy,
        tmp_path / "run",
        epochs=40,
        model=model,
        model_kwargs=kwargs,
        patch_size=patch,
        iters_per_epoch=10,
        batch_size=4,
    )
    result = evaluate(run, toy, tmp_path / "ev", subset="val", device="cpu", figures=False)
    dice = result["aggregate"]["dice_global"]["mean"]
    assert dice > 0.8, f"{model}: held-out Dice {dice:.3f}"


def test_tune_grid(toy: Path, tmp_path: Path) -> None:
    from lungspread.cli.app import main

    out = tmp_path / "tune"
    code = main(
        [
            "tune",
            str(toy),
            "--out",
            str(out),
            "--model",
            "seed-unet2d",
            "--features",
            "4,8,16",
            "--lr",
            "1e-4,1e-3",
            "--batch",
            "4",
            "--loss",
            "bce,dice_ce",
            "--epochs",
            "1",
            "--iters-per-epoch",
            "2",
            "--folds",
            "3",
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert code == 0
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == "trial,lr,batch,loss,val_dice,best_epoch,epochs,seconds"
    assert len(lines) == 5
    trials = sorted(p.name for p in (out / "trials").iterdir())
    assert trials == sorted(
        f"lr={lr}_batch=4_loss={loss}" for lr in ("0.0001", "0.001") for loss in ("bce", "dice_ce")
    )
    vals = [float(v.split(",")[4]) for v in lines[1:] if v.split(",")[4]]
    assert vals == sorted(vals, reverse=True)
    assert "| rank |" in (out / "results.md").read_text()
    # one shared preprocessed cache for all trials
    assert len(list((out / "preprocessed").iterdir())) == 1
    np.testing.assert_equal(len(list(out.glob("trials/*/model.json"))), 4)

"""Bad inputs at the command level, as a corpus: every command, the inputs that matter to it.

The reader corpus (``tests/test_bad_inputs_io.py``) feeds ~40 broken files to the readers and
``lungspread info``; the fuzzers (``tests/test_fuzz_readers.py``) throw random bytes at them.
This file checks what a *command* does with what users actually hand it: a missing file, a
folder without DICOM, a folder with two series, 2D/4D images, NaN voxels, a constant volume, a
[0, 1] image, a broken ``dataset.json``, labels that are missing, hold other values or sit on
another grid, masks on another grid than their CT, and output folders that are not empty,
cannot be written or fill up while the results are written.

Every failure must be one line ``error: <file>: <what was expected / found>`` on stderr, exit
code 2, no traceback, and nothing left behind: the output folder absent (or untouched when it
existed) and no ``.partial-`` staging folder or temporary file anywhere. Commands that are not
registered yet are skipped with the reason, so the corpus grows as commands land. ``info`` is
covered by the reader corpus and not repeated here.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from analyze_fixtures import phantom_ct, write_tiny_model
from lungspread.cli.app import COMMAND_MODULES, main
from lungspread.io import write_volume
from lungspread.volume import Volume
from training_fixtures import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "lungspread"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# -- which commands exist ------------------------------------------------------------------
def _registered() -> set[str]:
    """Every command path the CLI knows, e.g. {"lungs", "dataset", "dataset inspect", ...}."""
    import typer.main

    from lungspread.cli.app import _build_app

    names: set[str] = set()

    def walk(cmd: object, prefix: str) -> None:
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            full = f"{prefix} {name}".strip()
            names.add(full)
            walk(sub, full)

    walk(typer.main.get_command(_build_app()), "")
    return names


REGISTERED = _registered()


def need(command: str) -> None:
    """Skip unless ``lungspread <command>`` is registered."""
    if command not in REGISTERED:
        pytest.skip(
            f"`lungspread {command}` is not registered yet (COMMAND_MODULES: "
            f"{', '.join(m.rsplit('.', 1)[-1] for m in COMMAND_MODULES)})"
        )


# -- the inputs, built once ------------------------------------------------------------------
AFF = np.diag([2.0, 2.0, 3.0, 1.0])


def _nii(path: Path, arr: np.ndarray, affine: np.ndarray = AFF) -> Path:
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


def _edit_label(
    root: Path, case: str, fn: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
) -> Path:
    """Rewrite labelsTr/<case>.nii.gz through ``fn(array, affine) -> (array, affine)``."""
    path = root / "labelsTr" / f"{case}.nii.gz"
    img: Any = nib.load(str(path))
    arr, aff = fn(np.asarray(img.dataobj).copy(), img.affine.copy())
    nib.save(nib.Nifti1Image(arr, aff), str(path))
    return path


def _h5(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f["images"] = images
        f["labels"] = labels
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every input of the corpus, good and bad, in one read-only folder."""
    from lungspread.io.dicom import write_dicom_series

    w = tmp_path_factory.mktemp("corpus")
    ct, tumor = phantom_ct(0)
    p: dict[str, Path] = {"root": w}
    p["ct"] = write_volume(ct, w / "ct.nii.gz")
    p["mask"] = write_volume(
        tumor.with_array((tumor.array > 0).astype(np.uint8)), w / "mask.nii.gz"
    )
    p["model"] = write_tiny_model(w / "model", bias=-1.0)
    p["missing"] = w / "no-such-ct.nii.gz"
    p["nodicom"] = w / "just-notes"
    p["nodicom"].mkdir()
    (p["nodicom"] / "notes.txt").write_text("not an image")
    p["img2d"] = _nii(w / "slice2d.nii.gz", np.full((40, 40), -500, np.int16))
    p["img4d"] = _nii(w / "series4d.nii.gz", np.zeros((16, 16, 8, 2), np.int16))
    nan = np.asarray(ct.array, np.float32).copy()
    nan[40:44, 40:44, 30] = np.nan
    p["nan"] = write_volume(ct.with_array(nan), w / "nan_voxels.nii.gz")
    p["const"] = _nii(w / "constant.nii.gz", np.full((40, 40, 20), -500, np.int16))
    unit = ((np.asarray(ct.array, np.float32) + 1000.0) / 1400.0).clip(0.0, 1.0)
    p["unit"] = write_volume(ct.with_array(unit), w / "unit_range.nii.gz")
    p["prob_mask"] = write_volume(
        tumor.with_array((tumor.array > 0).astype(np.float32) * 0.7), w / "probability.nii.gz"
    )
    p["nan_mask"] = write_volume(
        tumor.with_array(np.where(tumor.array > 0, np.nan, 0.0).astype(np.float32)),
        w / "nan_mask.nii.gz",
    )
    p["other_grid"] = _nii(w / "other_grid.nii.gz", np.zeros((50, 50, 30), np.uint8))
    # a DICOM folder with the chest series (64 slices) and a 3-slice scout series
    two = w / "two-series"
    write_dicom_series(
        ct.with_array(np.asarray(ct.array).astype(np.int16)),
        two,
        series_uid="1.2.826.0.1.3680043.8.498.7001",
    )
    scout = Volume(np.asarray(ct.array)[:, :, 30:33].astype(np.int16), ct.affine)
    for f in write_dicom_series(scout, w / "scout", series_uid="1.2.826.0.1.3680043.8.498.7002"):
        shutil.move(str(f), str(two / f"scout_{f.name}"))
    p["two_series"] = two
    # MSD datasets: good, and one per kind of damage
    toy: dict[str, Any] = {"n_cases": 4, "shape": (24, 24, 8)}
    p["toy"] = write_toy_dataset(w / "toy", **toy)
    p["ds_badjson"] = write_toy_dataset(w / "ds_badjson", **toy)
    (p["ds_badjson"] / "dataset.json").write_text('{"name": "Toy", "training": [', "utf-8")
    p["ds_nolabel"] = write_toy_dataset(w / "ds_nolabel", **toy)
    p["nolabel_file"] = p["ds_nolabel"] / "labelsTr" / "toy_000.nii.gz"
    p["nolabel_file"].unlink()
    p["ds_labelvals"] = write_toy_dataset(w / "ds_labelvals", **toy)
    p["labelvals_file"] = _edit_label(
        p["ds_labelvals"], "toy_000", lambda a, f: (np.where(a > 0, 2, 0).astype(np.uint8), f)
    )
    p["ds_labelgrid"] = write_toy_dataset(w / "ds_labelgrid", **toy)
    p["labelgrid_file"] = _edit_label(p["ds_labelgrid"], "toy_000", lambda a, f: (a[:20], f))
    p["ds_nanimage"] = write_toy_dataset(w / "ds_nanimage", **toy)
    img_path = p["ds_nanimage"] / "imagesTr" / "toy_000.nii.gz"
    img: Any = nib.load(str(img_path))
    arr = np.asarray(img.dataobj).astype(np.float32)
    arr[5, 5, 3] = np.nan
    p["nanimage_file"] = _nii(img_path, arr, img.affine)
    p["no_dataset"] = w / "no-dataset"
    p["no_dataset"].mkdir()
    # HDF5 patches for `dataset convert msd-patches`
    rng = np.random.default_rng(0)
    imgs = rng.random((4, 1, 16, 16)).astype(np.float32)
    labs = (imgs > 0.8).astype(np.uint8)
    p["h5"] = _h5(w / "patches.h5", imgs, labs)
    nan_imgs = imgs.copy()
    nan_imgs[1, 0, 3, 3] = np.nan
    p["h5_nan"] = _h5(w / "patches_nan.h5", nan_imgs, labs)
    p["h5_labels"] = _h5(w / "patches_labels.h5", imgs, labs * 2)
    p["not_h5"] = w / "not_hdf5.h5"
    p["not_h5"].write_bytes(b"\x89HDF\r\n\x1a\n but then garbage" * 20)
    # output folders of spread, for follow-up
    code = main(["spread", str(p["mask"]), "--ct", str(p["ct"]), "--out", str(w / "spread")])
    assert code == 0
    p["spread_out"] = w / "spread"
    p["empty_dir"] = w / "empty-folder"
    p["empty_dir"].mkdir()
    p["bad_report"] = w / "bad-report"
    p["bad_report"].mkdir()
    (p["bad_report"] / "report.json").write_text("{ this is not json", "utf-8")
    # a file to put output folders under
    p["afile"] = w / "a-regular-file"
    p["afile"].write_text("I am a file, not a folder")
    return p


@pytest.fixture
def tiny_bundled_model(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """``lungspread demo`` uses the bundled model; point it at the tiny one."""
    am = importlib.import_module("lungspread.analyze")
    monkeypatch.setattr(am, "bundled_model_dir", lambda: world["model"])
    return world["model"]


# -- what every failure must look like --------------------------------------------------------
def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime (what 'untouched' compares)."""
    if not root.exists():
        return {}
    return {
        str(q.relative_to(root)): (q.stat().st_size, q.stat().st_mtime_ns)
        for q in root.rglob("*")
        if q.is_file()
    }


def _leftovers(*roots: Path) -> list[str]:
    """Staging folders and temporary files a failed command may have left."""
    bad: list[str] = []
    for root in roots:
        if not root.exists():
            continue
        for q in root.rglob("*"):
            if ".partial-" in q.name or q.name.endswith(".tmp") or q.name.startswith("."):
                bad.append(str(q))
    return bad


def check_error(
    code: int, err: str, words: list[str], names: list[Path | str], expected_code: int = 2
) -> str:
    """Exit code 2, no traceback, exactly one ``error:`` line (the last), with the words and
    the file names; returns that line."""
    assert code == expected_code, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    line = errors[0]
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    for name in names:
        assert str(name) in line, f"{name} not named in {line!r}"
    return line


def check_console_stderr(stderr: str, words: list[str]) -> str:
    """The real stderr of the console script: no traceback, one ``error:`` line, last; any
    other line is a log line (``WARNING name: ...``), never part of the error."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    assert all(x.startswith(("WARNING ", "INFO ", "DEBUG ")) for x in lines[:-1]), stderr
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


def run_cli(argv: list[Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the corpus of bad inputs ------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One command given one bad input: argv (``{key}`` from the world, ``{out}`` the output
    folder), the words of the expected message and the world keys it must name."""

    id: str
    command: str
    argv: tuple[str, ...]
    words: tuple[str, ...]
    names: tuple[str, ...]
    leaves_empty_folder: bool = False  # train makes its run folder before reading the data


TRAIN = (
    "--model", "fast3d", "--epochs", "1", "--iters-per-epoch", "1", "--patch", "16,16,8",
    "--batch", "1", "--features", "4,8", "--folds", "2", "--device", "cpu",
    "--no-tensorboard", "-q",
)  # fmt: skip
EVAL = ("--device", "cpu", "--no-figures", "-q")
ANALYZE = ("--model", "{model}", "--device", "cpu", "--no-export")

IMAGE_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "missing_file": ("missing", ("no such file",)),
    "folder_without_dicom": ("nodicom", ("found no DICOM files",)),
    "image_2d": ("img2d", ("a dimension of 1", "3D CT is needed")),
    "image_4d": ("img4d", ("expected a 3D image, found 4D",)),
    "nan_voxels": ("nan", ("not finite", "NaN")),
    "constant_volume": ("const", ("all voxels have the same value", "--force-ct")),
    "unit_range_image": ("unit", ("0.00..1.00", "expected CT in HU", "--force-ct")),
}


def _rows() -> list[Row]:
    rows: list[Row] = []
    for case, (key, words) in IMAGE_CASES.items():
        rows.append(Row(f"lungs-{case}", "lungs", ("lungs", f"{{{key}}}", "--out", "{out}"),
                        words, (key,)))  # fmt: skip
        if case == "folder_without_dicom":  # a folder that is no DICOM series is a batch
            words = ("found no CTs here",)
        argv = ("analyze", f"{{{key}}}", "--out", "{out}", *ANALYZE)
        rows.append(Row(f"analyze-{case}", "analyze", argv, words, (key,)))
    rows += [
        # spread: the mask and the images given with it
        Row("spread-mask-missing", "spread", ("spread", "{missing}", "--out", "{out}"),
            ("no such file",), ("missing",)),
        Row("spread-mask-4d", "spread", ("spread", "{img4d}", "--out", "{out}"),
            ("found 4D",), ("img4d",)),
        Row("spread-mask-nan", "spread", ("spread", "{nan_mask}", "--out", "{out}"),
            ("NaN or infinite", "expected 0/1"), ("nan_mask",)),
        Row("spread-mask-probability", "spread", ("spread", "{prob_mask}", "--out", "{out}"),
            ("non-integer values", "expected 0/1"), ("prob_mask",)),
        Row("spread-mask-vs-ct-grid", "spread",
            ("spread", "{other_grid}", "--ct", "{ct}", "--out", "{out}"),
            ("not on the CT grid",), ("other_grid",)),
        Row("spread-lungs-vs-mask-grid", "spread",
            ("spread", "{mask}", "--lungs", "{other_grid}", "--out", "{out}"),
            ("lung mask",), ()),
        Row("spread-ct-missing", "spread",
            ("spread", "{mask}", "--ct", "{missing}", "--out", "{out}"),
            ("no such file",), ("missing",)),
        Row("spread-ct-nan", "spread", ("spread", "{mask}", "--ct", "{nan}", "--out", "{out}"),
            ("NaN",), ("nan",)),
        # export: mask, CT and lungs
        Row("export-mask-missing", "export",
            ("export", "{missing}", "--ct", "{ct}", "--out", "{out}"),
            ("no such file",), ("missing",)),
        Row("export-ct-missing", "export",
            ("export", "{mask}", "--ct", "{missing}", "--out", "{out}"),
            ("no such file",), ("missing",)),
        Row("export-ct-folder-without-dicom", "export",
            ("export", "{mask}", "--ct", "{nodicom}", "--out", "{out}"),
            ("found no DICOM files",), ("nodicom",)),
        Row("export-ct-4d", "export",
            ("export", "{mask}", "--ct", "{img4d}", "--out", "{out}"), ("found 4D",), ("img4d",)),
        Row("export-mask-vs-ct-grid", "export",
            ("export", "{other_grid}", "--ct", "{ct}", "--out", "{out}"),
            ("not on the CT grid",), ("other_grid",)),
        Row("export-mask-nan", "export",
            ("export", "{nan_mask}", "--ct", "{ct}", "--out", "{out}"), ("NaN",), ("nan_mask",)),
        Row("export-mask-probability", "export",
            ("export", "{prob_mask}", "--ct", "{ct}", "--out", "{out}"),
            ("non-integer values",), ("prob_mask",)),
        Row("export-lungs-vs-ct-grid", "export",
            ("export", "{mask}", "--ct", "{ct}", "--lungs", "{other_grid}", "--out", "{out}"),
            ("grid",), ("other_grid",)),
        Row("export-ct-nan", "export",
            ("export", "{mask}", "--ct", "{nan}", "--out", "{out}", "--no-meshes", "--no-figures"),
            ("NaN",), ("nan",)),
        # follow-up: the two analysis folders
        Row("follow-up-missing-folder", "follow-up",
            ("follow-up", "{missing}", "{spread_out}", "--out", "{out}"),
            ("expected a spread or analyze output folder",), ("missing",)),
        Row("follow-up-folder-without-report", "follow-up",
            ("follow-up", "{spread_out}", "{empty_dir}", "--out", "{out}"),
            ("report.json",), ("empty_dir",)),
        Row("follow-up-report-not-json", "follow-up",
            ("follow-up", "{bad_report}", "{spread_out}", "--out", "{out}"),
            ("report.json",), ("bad_report",)),
        # dataset inspect / convert
        Row("inspect-missing-folder", "dataset inspect",
            ("dataset", "inspect", "{missing}", "--out", "{out}"), ("no such dataset folder",),
            ("missing",)),
        Row("inspect-no-dataset-json", "dataset inspect",
            ("dataset", "inspect", "{no_dataset}", "--out", "{out}"), ("dataset.json",),
            ("no_dataset",)),
        Row("inspect-malformed-dataset-json", "dataset inspect",
            ("dataset", "inspect", "{ds_badjson}", "--out", "{out}"), ("not valid JSON",),
            ("ds_badjson",)),
        Row("inspect-label-missing", "dataset inspect",
            ("dataset", "inspect", "{ds_nolabel}", "--out", "{out}"), ("label", "missing"),
            ("nolabel_file",)),
        Row("convert-patches-missing", "dataset convert msd-patches",
            ("dataset", "convert", "msd-patches", "{missing}", "{out}"), ("no such file",),
            ("missing",)),
        Row("convert-patches-not-hdf5", "dataset convert msd-patches",
            ("dataset", "convert", "msd-patches", "{not_h5}", "{out}"), ("not a readable HDF5",),
            ("not_h5",)),
        Row("convert-patches-nan", "dataset convert msd-patches",
            ("dataset", "convert", "msd-patches", "{h5_nan}", "{out}"), ("NaN",), ("h5_nan",)),
        Row("convert-patches-labels-not-0-1", "dataset convert msd-patches",
            ("dataset", "convert", "msd-patches", "{h5_labels}", "{out}"), ("expected 0/1",),
            ("h5_labels",)),
        Row("convert-slices-missing", "dataset convert msd-slices",
            ("dataset", "convert", "msd-slices", "{missing}", "{out}"), ("no such folder",),
            ("missing",)),
        Row("convert-slices-wrong-layout", "dataset convert msd-slices",
            ("dataset", "convert", "msd-slices", "{nodicom}", "{out}"), ("train/images",),
            ("nodicom",)),
        Row("merge-missing-source", "dataset merge",
            ("dataset", "merge", "{out}", "{toy}", "{missing}"), ("no such dataset folder",),
            ("missing",)),
        Row("merge-malformed-dataset-json", "dataset merge",
            ("dataset", "merge", "{out}", "{toy}", "{ds_badjson}"), ("not valid JSON",),
            ("ds_badjson",)),
        Row("slabs-missing-source", "dataset slabs",
            ("dataset", "slabs", "{missing}", "{out}"), ("no such dataset folder",),
            ("missing",)),
        Row("slabs-malformed-dataset-json", "dataset slabs",
            ("dataset", "slabs", "{ds_badjson}", "{out}"), ("not valid JSON",), ("ds_badjson",)),
        Row("slabs-label-wrong-geometry", "dataset slabs",
            ("dataset", "slabs", "{ds_labelgrid}", "{out}"), ("does not match its image",),
            ("labelgrid_file",)),
        Row("slabs-zero-thickness", "dataset slabs",
            ("dataset", "slabs", "{toy}", "{out}", "--slab-mm", "0"), ("thicker than 0 mm",),
            ()),
    ]  # fmt: skip
    datasets = {
        "malformed-dataset-json": ("ds_badjson", ("not valid JSON",), "ds_badjson"),
        "label-missing": ("ds_nolabel", ("label", "missing"), "nolabel_file"),
        "label-values-not-0-1": ("ds_labelvals", ("label holds values [2]",), "labelvals_file"),
        "label-wrong-geometry": ("ds_labelgrid", ("does not match its image",), "labelgrid_file"),
        "image-nan": ("ds_nanimage", ("NaN",), "nanimage_file"),
    }
    for case, (ds, words, name) in datasets.items():
        rows.append(Row(f"train-{case}", "train", ("train", f"{{{ds}}}", "--out", "{out}", *TRAIN),
                        words, (name,), leaves_empty_folder=True))  # fmt: skip
        argv = ("evaluate", "{model}", f"{{{ds}}}", "--out", "{out}", *EVAL)
        rows.append(Row(f"evaluate-{case}", "evaluate", argv, words, (name,)))
    rows += [
        Row("evaluate-model-folder-without-model", "evaluate",
            ("evaluate", "{empty_dir}", "{toy}", "--out", "{out}", *EVAL), ("model.json",),
            ("empty_dir",)),
        Row("phantom-unknown-size", "phantom", ("phantom", "{out}", "--size", "huge"),
            ("--size must be one of",), ()),
    ]  # fmt: skip
    return rows


ROWS = _rows()


def _fill(argv: tuple[str, ...], world: dict[str, Path], out: Path) -> list[str]:
    subst = {k: str(v) for k, v in world.items()} | {"out": str(out)}
    return [a.format(**subst) for a in argv]


def test_corpus_is_large() -> None:
    assert len(ROWS) >= 50
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_clear_line_and_leaves_nothing(
    row: Row, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need(row.command)
    out = tmp_path / "out"
    before = _files(world["root"])
    code, _, err = run_cli(_fill(row.argv, world, out), capsys)
    check_error(code, err, list(row.words), [world[n] for n in row.names])
    assert _files(out) == {}, f"{out} holds files after a failure"
    if not row.leaves_empty_folder:
        assert not out.exists()
    assert not _leftovers(tmp_path, world["root"])
    assert _files(world["root"]) == before  # inputs untouched, nothing written beside them


# -- inputs that are not errors -----------------------------------------------------------------
@pytest.mark.parametrize("command", ["lungs", "analyze"])
def test_a_folder_with_two_series_picks_the_ct_not_fails(
    command: str, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need(command)
    out = tmp_path / "out"
    extra = ANALYZE if command == "analyze" else ()
    code, _, err = run_cli(_fill((command, "{two_series}", "--out", "{out}", *extra), world, out),
                           capsys)  # fmt: skip
    assert code == 0, err
    seg: Any = nib.load(str(out / "lungs.nii.gz"))
    assert seg.shape == (96, 96, 64)  # the 64-slice chest series, not the 3-slice scout
    assert (out / "run.json").is_file()


def test_export_of_a_dicom_series_without_patient_module_still_writes(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """write_dicom_series writes no PatientID/StudyDate (DICOM type 2): the DICOM-SEG cannot be
    made from such a series, which must not crash the export of everything else."""
    need("export")
    out = tmp_path / "out"
    argv = ("export", "{mask}", "--ct", "{two_series}", "--out", "{out}", "--no-meshes",
            "--no-figures", "--no-html")  # fmt: skip
    code, _, err = run_cli(_fill(argv, world, out), capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert (out / "segmentation.seg.nrrd").is_file() and (out / "run.json").is_file()
    assert not (out / "segmentation.dcm").exists()


def test_spread_of_a_mask_with_other_values_says_so(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label map (values 0/3) is not refused by spread: every nonzero voxel is tumor, and
    the report says so (documented in docs/spread.md)."""
    need("spread")
    ct, tumor = phantom_ct(0)
    mask = write_volume(
        tumor.with_array((tumor.array > 0).astype(np.uint8) * 3), tmp_path / "m.nii.gz"
    )
    code, _, err = run_cli(["spread", mask, "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any("nonzero" in n for n in report["notes"]), report["notes"]
    assert report["totals"]["tumor_volume_ml"] == pytest.approx(
        np.count_nonzero(tumor.array) * ct.voxel_volume_mm3 / 1000.0, rel=1e-3
    )


@pytest.mark.parametrize(
    ("ds", "name", "words"),
    [
        ("ds_labelvals", "labelvals_file", "label holds values [2]"),
        pytest.param(
            "ds_labelgrid", "labelgrid_file", "does not match its image", marks=pytest.mark.slow
        ),
        pytest.param("ds_nanimage", "nanimage_file", "NaN", marks=pytest.mark.slow),
    ],
)
def test_inspect_lists_a_bad_case_and_goes_on(
    ds: str,
    name: str,
    words: str,
    world: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exploring a dataset is a batch over its cases: a bad case is listed, the others used."""
    need("dataset inspect")
    out = tmp_path / "out"
    code, text, err = run_cli(["dataset", "inspect", world[ds], "--out", out], capsys)
    assert code == 0, err
    report = json.loads((out / "inspect.json").read_text())
    assert [f["case"] for f in report["failures"]] == ["toy_000"]
    reason = report["failures"][0]["error"]
    assert words in reason and str(world[name]) in reason
    assert report["dataset"]["n_cases_inspected"] == 3
    assert "toy_000" in text


def test_batch_goes_on_and_lists_every_failed_case_with_its_reason(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need("analyze")
    folder = tmp_path / "cts"
    folder.mkdir()
    shutil.copy(world["ct"], folder / "a_good.nii.gz")
    bad = {
        "b_2d": "img2d",
        "c_4d": "img4d",
        "d_nan": "nan",
        "e_constant": "const",
        "f_unit": "unit",
    }
    for case, key in bad.items():
        shutil.copy(world[key], folder / f"{case}.nii.gz")
    (folder / "g_empty.nii.gz").write_bytes(b"")
    out = tmp_path / "out"
    code, text, err = run_cli(
        ["analyze", folder, "--out", out, *_fill(ANALYZE, world, out)], capsys
    )
    assert code == 1, err
    assert "Traceback" not in err + text
    summary = json.loads((out / "batch.json").read_text())
    assert summary["done"] == ["a_good"]
    failed = {f["case"]: f["reason"] for f in summary["failed"]}
    assert sorted(failed) == [*sorted(bad), "g_empty"]
    words = {
        "b_2d": "a dimension of 1",
        "c_4d": "found 4D",
        "d_nan": "not finite",
        "e_constant": "same value",
        "f_unit": "expected CT in HU",
        "g_empty": "empty",
    }
    for case, reason in failed.items():
        assert words[case] in reason and f"{case}.nii.gz" in reason, reason
        assert case in text  # the printed summary lists it too
        assert not (out / case).exists()
    assert (out / "a_good" / "run.json").is_file()
    assert not _leftovers(out)


# -- output folders ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Writer:
    """A command with good inputs, writing into ``{out}``."""

    command: str
    argv: tuple[str, ...]
    needs: tuple[str, ...] = field(default_factory=tuple)  # fixtures to activate
    refused_words: str = "not empty"
    partial_run: bool = False  # train keeps each finished step (resumable), atomically


WRITERS: dict[str, Writer] = {
    "lungs": Writer("lungs", ("lungs", "{ct}", "--out", "{out}")),
    "analyze": Writer("analyze", ("analyze", "{ct}", "--out", "{out}", *ANALYZE)),
    "spread": Writer("spread", ("spread", "{mask}", "--ct", "{ct}", "--out", "{out}")),
    "follow-up": Writer(
        "follow-up", ("follow-up", "{spread_out}", "{spread_out}", "--out", "{out}")
    ),
    "export": Writer(
        "export",
        ("export", "{mask}", "--ct", "{ct}", "--out", "{out}", "--no-meshes", "--no-figures"),
    ),
    "dataset-inspect": Writer("dataset inspect", ("dataset", "inspect", "{toy}", "--out", "{out}")),
    "dataset-convert": Writer(
        "dataset convert msd-patches", ("dataset", "convert", "msd-patches", "{h5}", "{out}")
    ),
    "train": Writer(
        "train",
        ("train", "{toy}", "--out", "{out}", *TRAIN),
        refused_words="pass --resume",
        partial_run=True,
    ),
    "evaluate": Writer("evaluate", ("evaluate", "{model}", "{toy}", "--out", "{out}", *EVAL)),
    "phantom": Writer("phantom", ("phantom", "{out}")),
    "demo": Writer(
        "demo",
        ("demo", "--out", "{out}"),
        needs=("tiny_bundled_model",),
        refused_words="not empty",
    ),
}


def _writer_ok_files(out: Path) -> None:
    """What a train run that stopped may leave: complete files only (each written atomically)."""
    for q in out.rglob("*.json"):
        json.loads(q.read_text())


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_non_empty_output_folder_is_refused_untouched(
    name: str,
    world: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    wr = WRITERS[name]
    need(wr.command)
    for fx in wr.needs:
        request.getfixturevalue(fx)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2,3")
    before = _files(out)
    code, _, err = run_cli(_fill(wr.argv, world, out), capsys)
    check_error(code, err, [wr.refused_words], [out])
    assert _files(out) == before
    assert not _leftovers(tmp_path)


@contextlib.contextmanager
def _unwritable_target(how: str, tmp_path: Path, world: dict[str, Path]) -> Iterator[Path]:
    """An output folder that cannot be created, three ways: its parent is a regular file
    (NotADirectoryError), it is under ``/proc``, or its parent is read-only. Root ignores
    permission bits, so for root the read-only parent is a read-only tmpfs mounted there
    (EROFS binds root too); for other users it is a folder with mode 0o500. Undone on exit."""
    if how == "parent-is-a-file":
        yield world["afile"] / "out"
        return
    if how == "under-proc":
        yield Path("/proc") / f"lungspread-test-{uuid.uuid4().hex[:8]}" / "out"
        return
    locked = tmp_path / "locked"
    if IS_ROOT:
        with _tmpfs(locked, "64k", read_only=True) as mounted:
            if not mounted:
                pytest.skip("root without `mount`: permission bits do not bind root")
            yield locked / "out"
        return
    locked.mkdir()
    locked.chmod(0o500)
    try:
        yield locked / "out"
    finally:
        locked.chmod(0o700)


UNWRITABLE = ["parent-is-a-file", "under-proc", "read-only-parent"]

#: For each way: what the one error line says (one of these, in lower case) and the path it
#: names. `train` makes its run folder itself and shows the system's words.
UNWRITABLE_LINE: dict[str, tuple[tuple[str, ...], str]] = {
    "parent-is-a-file": (("is a file, expected a folder", "not a directory"), "parent"),
    "under-proc": (("",), "/proc/"),
    "read-only-parent": (
        ("read-only file system",) if IS_ROOT else ("permission denied",),
        "target",
    ),
}


def _writer_params() -> list[object]:
    """Every writer; demo runs a whole analysis before it writes, so it is marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n == "demo" else n for n in sorted(WRITERS)]


@pytest.mark.parametrize("how", UNWRITABLE)
@pytest.mark.parametrize("name", _writer_params())
def test_output_folder_that_cannot_be_written(
    name: str,
    how: str,
    world: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    wr = WRITERS[name]
    need(wr.command)
    if how == "under-proc" and name not in ("lungs", "train"):
        pytest.skip("/proc checked on two commands; the parent-is-a-file way covers the rest")
    for fx in wr.needs:
        request.getfixturevalue(fx)
    before = _files(world["root"])
    with _unwritable_target(how, tmp_path, world) as target:
        code, _, err = run_cli(_fill(wr.argv, world, target), capsys)
        assert not target.exists()
        if how == "read-only-parent":
            assert list(target.parent.iterdir()) == []  # no staging folder, no temporary file
    words, named = UNWRITABLE_LINE[how]
    shown = {"parent": target.parent, "target": target}.get(named, named)
    line = check_error(code, err, [], [shown])
    assert any(w in line.lower() for w in words), (words, line)
    assert not target.exists()
    assert not _leftovers(tmp_path, world["root"])
    assert _files(world["root"]) == before


# -- a disk that fills up while the results are written ---------------------------------------
DISK_ERRNOS = (errno.ENOSPC,)


@contextlib.contextmanager
def _tmpfs(folder: Path, size: str, read_only: bool = False) -> Iterator[bool]:
    """Mount a tiny tmpfs on ``folder`` (root in most sandboxes), read-only if asked; yields
    False if impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT or shutil.which("mount") is None:
        yield False
        return
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _fail_replace_after_first_file(monkeypatch: pytest.MonkeyPatch, disk: Path) -> list[str]:
    """Patch ``os.replace`` (the last step of every atomic writer) so that, under ``disk``, the
    first file is finished and every later one fails with ENOSPC: a disk that fills midway.
    Returns the list of files finished before the failure."""
    real_replace = os.replace
    finished: list[str] = []

    def replace(src: object, dst: object, *a: object, **k: object) -> None:
        if str(dst).startswith(str(disk)):
            if finished:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
            finished.append(str(dst))
        real_replace(src, dst, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    return finished


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A folder where writing runs out of space: a 4 KiB tmpfs (real ENOSPC from the kernel,
    at the first file larger than a page) where mounting works, else a patched ``os.replace``
    that fails once a first file is finished (see :func:`_fail_replace_after_first_file`)."""
    disk = tmp_path / "disk"
    with _tmpfs(disk, "4k") as mounted:
        if mounted:
            yield disk, "tmpfs"
            return
        _fail_replace_after_first_file(monkeypatch, disk)
        yield disk, "patched"


@pytest.mark.parametrize("name", _writer_params())
def test_disk_full_while_writing_leaves_nothing(
    name: str,
    world: dict[str, Path],
    full_disk: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    wr = WRITERS[name]
    need(wr.command)
    for fx in wr.needs:
        request.getfixturevalue(fx)
    disk, _how = full_disk
    out = disk / "out"
    code, _, err = run_cli(_fill(wr.argv, world, out), capsys)
    line = check_error(code, err, [], [])
    assert os.strerror(errno.ENOSPC) in line or "space" in line.lower(), line
    assert str(disk) in line, f"the message should name where it could not write: {line!r}"
    if wr.partial_run:  # a training run keeps what it finished, each file whole
        _writer_ok_files(out)
        assert not _leftovers(disk)
    else:
        assert _files(disk) == {}, sorted(_files(disk))
        assert not _leftovers(disk)


def test_disk_full_midway_through_many_files_keeps_nothing(
    world: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """analyze with its exports writes a dozen files; the disk fills after the first one."""
    need("analyze")
    disk = tmp_path / "disk"
    disk.mkdir()
    finished = _fail_replace_after_first_file(monkeypatch, disk)
    out = disk / "out"
    argv = _fill(("analyze", "{ct}", "--out", "{out}", "--model", "{model}", "--device", "cpu"),
                 world, out)  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    line = check_error(code, err, ["No space left on device", "nothing was kept"], [out])
    assert len(finished) == 1 and ".partial-" in finished[0]  # it did fail midway
    assert line.startswith(f"error: {out}: ")
    assert list(disk.iterdir()) == []


# -- the real console script: nothing but one line on the real stderr ---------------------------
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["lungs", "{nan}", "--out", "{out}"], "not finite"),
        pytest.param(
            ["analyze", "{unit}", "--out", "{out}", *ANALYZE],
            "expected CT in HU",
            marks=pytest.mark.slow,
        ),
        (["dataset", "inspect", "{ds_badjson}", "--out", "{out}"], "not valid JSON"),
    ],
    ids=["lungs-nan", "analyze-unit-range", "inspect-bad-json"],
)
def test_console_script_prints_one_line(
    argv: list[str], words: str, world: dict[str, Path], tmp_path: Path
) -> None:
    if not CLI.exists():
        pytest.skip(f"no console script at {CLI} (package not installed in .venv)")
    need(argv[0] if argv[0] != "dataset" else "dataset inspect")
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(CLI), *_fill(tuple(argv), world, out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    check_console_stderr(proc.stderr, [words])
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.slow
def test_console_script_on_a_full_disk(world: dict[str, Path], tmp_path: Path) -> None:
    """A real ENOSPC from the kernel (tmpfs), seen through the real console script."""
    need("lungs")
    if not CLI.exists():
        pytest.skip(f"no console script at {CLI}")
    with _tmpfs(tmp_path / "disk", "4k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root); the in-process test patches")
        out = tmp_path / "disk" / "out"
        proc = subprocess.run(
            [str(CLI), "lungs", str(world["ct"]), "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        check_console_stderr(proc.stderr, ["No space left on device", str(out)])
        assert list((tmp_path / "disk").iterdir()) == []

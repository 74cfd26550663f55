"""``lungspread analyze``: files, geometry, report keys, determinism, inputs and CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from analyze_fixtures import phantom_ct, same_geometry, write_tiny_model
from lungspread.analyze import (
    STAGES,
    AnalysisResult,
    analyze,
    choose_window,
    crop_volume,
    lung_crop_box,
)
from lungspread.cli.app import main
from lungspread.errors import InputError
from lungspread.io import read_volume, write_volume
from lungspread.volume import Volume


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model"), bias=1.0)


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ct, _ = phantom_ct(0)
    return write_volume(ct, tmp_path_factory.mktemp("ct") / "chest.nii.gz")


@pytest.fixture(scope="module")
def result(ct_file: Path, tiny_model: Path) -> AnalysisResult:
    return analyze(ct_file, model=tiny_model, device="cpu")


# -- library -------------------------------------------------------------------------------
def test_result_is_on_the_input_grid(result: AnalysisResult, ct_file: Path) -> None:
    src = read_volume(ct_file)
    assert same_geometry(result.tumor, src) and same_geometry(result.lungs, src)
    np.testing.assert_allclose(result.tumor.affine, nib.load(str(ct_file)).affine, atol=1e-4)
    assert result.tumor.array.dtype == np.uint8
    assert set(np.unique(result.tumor.array)) <= {0, 1}
    assert set(np.unique(result.lungs.array)) == {0, 1, 2}


def test_run_record_has_every_stage_and_the_postprocess_counts(result: AnalysisResult) -> None:
    timings = result.run["timings_s"]
    assert set(STAGES) <= set(timings)
    assert timings["total"] >= max(v for k, v in timings.items() if k != "total")
    post = result.run["postprocess"]
    assert post["kept"] == result.report["totals"]["lesion_count"]
    assert post["candidates"] == post["kept"] + sum(post["dropped"].values())
    crop = result.run["crop"]
    assert all(
        0 <= a < b <= n
        for a, b, n in zip(crop["start"], crop["stop"], result.ct.shape, strict=True)
    )
    # nothing outside the lung region's crop is ever tumor
    outside = np.ones(result.ct.shape, bool)
    outside[tuple(slice(a, b) for a, b in zip(crop["start"], crop["stop"], strict=True))] = False
    assert not result.tumor.array[outside].any()


def test_report_matches_the_mask(result: AnalysisResult) -> None:
    report = result.report
    assert {"lungs", "lesions", "totals", "t_descriptor"} <= set(report)
    voxel_ml = result.ct.voxel_volume_mm3 / 1000.0
    total = float(result.tumor.array.sum()) * voxel_ml
    assert report["totals"]["tumor_volume_ml"] == pytest.approx(total, rel=1e-6, abs=1e-9)
    assert len(report["lesions"]) == report["totals"]["lesion_count"]
    right = float((result.lungs.array == 1).sum()) * voxel_ml
    assert report["lungs"]["right_ml"] == pytest.approx(right, rel=1e-3)


def test_write_puts_the_files_in_place_with_run_json_last(
    result: AnalysisResult, ct_file: Path, tmp_path: Path
) -> None:
    out = result.write(tmp_path / "out")
    names = {p.name for p in out.iterdir()}
    assert {"lungs.nii.gz", "report.json", "run.json", "tumor.nii.gz"} <= names
    src = nib.load(str(ct_file))
    for name in ("tumor.nii.gz", "lungs.nii.gz"):
        img = nib.load(str(out / name))
        assert img.shape == src.shape
        np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(nib.load(str(out / "tumor.nii.gz")).dataobj), result.tumor.array
    )
    for name in ("tumor.nii.gz", "lungs.nii.gz"):  # exact through lungspread's own reader
        assert same_geometry(read_volume(out / name), read_volume(ct_file))
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "analyze"
    assert run["outputs"][-1] == "run.json"
    assert run["inputs"]["ct"] == ct_file.name  # the name only: paths can name patients
    # the run.json file is the newest file of the folder (batch restarts rely on it)
    newest = max(out.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert newest.name == "run.json"
    assert not list(tmp_path.glob(".out.partial-*"))


def test_two_runs_are_bitwise_identical(
    result: AnalysisResult, ct_file: Path, tiny_model: Path, tmp_path: Path
) -> None:
    again = analyze(ct_file, model=tiny_model, device="cpu")
    assert np.array_equal(again.tumor.array, result.tumor.array)
    assert np.array_equal(again.lungs.array, result.lungs.array)
    assert again.report == result.report
    a = result.write(tmp_path / "a") / "report.json"
    b = again.write(tmp_path / "b") / "report.json"
    assert a.read_bytes() == b.read_bytes()


def test_volume_array_and_path_inputs_agree(tiny_model: Path) -> None:
    import lungspread

    ct, _ = phantom_ct(0)
    arr = np.asarray(ct.array)
    # an axis-aligned RAS volume and the same numbers given as an array with spacing
    vol = Volume.from_spacing(arr, ct.spacing)
    from_volume = analyze(vol, model=tiny_model, device="cpu")
    from_array = lungspread.analyze(arr, spacing_mm=ct.spacing, model=tiny_model, device="cpu")
    assert np.array_equal(from_volume.tumor.array, from_array.tumor.array)
    assert from_array.run["inputs"]["ct"] is None
    np.testing.assert_array_equal(from_array.tumor.affine, vol.affine)


def test_lps_and_oblique_inputs_keep_their_geometry(tiny_model: Path) -> None:
    ct, _ = phantom_ct(0)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ct.affine
    theta = np.deg2rad(10.0)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    for affine in (lps, rot @ ct.affine):
        vol = Volume(np.asarray(ct.array), affine)
        res = analyze(vol, model=tiny_model, device="cpu")
        assert same_geometry(res.tumor, vol) and same_geometry(res.lungs, vol)


def test_numpy_input_needs_a_spacing(tiny_model: Path) -> None:
    with pytest.raises(InputError, match="spacing_mm"):
        analyze(np.zeros((8, 8, 8), np.int16), model=tiny_model, device="cpu")


def test_missing_bundled_model_or_bad_device_are_clear_errors(tmp_path: Path) -> None:
    from lungspread.errors import ModelError

    ct, _ = phantom_ct(0)
    with pytest.raises(ModelError, match=r"model\.json"):
        analyze(ct, model=tmp_path, device="cpu")
    with pytest.raises(InputError, match="device"):
        analyze(ct, model=tmp_path, device="tpu")


# -- helpers with hand-computed answers -----------------------------------------------------
def test_lung_crop_box_adds_the_margin_in_mm_and_clips() -> None:
    lungs = np.zeros((50, 40, 30), np.uint8)
    lungs[10:20, 5:30, 0:10] = 1
    vol = Volume.from_spacing(lungs, (2.0, 1.0, 5.0))
    box = lung_crop_box(vol, margin_mm=10.0)
    # 10 mm = 5 voxels along i, 10 along j, 2 along k (clipped at 0)
    assert box == (slice(5, 25), slice(0, 40), slice(0, 12))
    assert lung_crop_box(vol.with_array(np.zeros_like(lungs))) is None


def test_crop_volume_moves_the_origin() -> None:
    vol = Volume.from_spacing(np.arange(60).reshape(3, 4, 5), (2.0, 3.0, 4.0), (10, 20, 30))
    sub = crop_volume(vol, (slice(1, 3), slice(2, 4), slice(0, 5)))
    np.testing.assert_allclose(sub.origin, [12.0, 26.0, 30.0])
    assert sub.array[0, 0, 0] == vol.array[1, 2, 0]


def test_choose_window_covers_small_regions_and_tiles_big_ones() -> None:
    assert choose_window((100, 70, 20), 16, 8_000_000, [64, 64, 64]) == [112, 80, 64]
    # 208 x 160 x 208 = 6.9 M voxels fits in one window
    assert choose_window((201, 147, 205), 16, 8_000_000, [96, 96, 96]) == [208, 160, 208]
    # with a 2 M budget the longest axes are halved until it fits
    win = choose_window((201, 147, 205), 16, 2_000_000, [96, 96, 96])
    assert np.prod(win) <= 2_000_000 and all(w % 16 == 0 and w >= 96 for w in win)


# -- CLI -----------------------------------------------------------------------------------
def test_cli_writes_the_outputs(ct_file: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    code = main(["analyze", str(ct_file), "--out", str(out), "--model", str(tiny_model)])
    assert code == 0
    assert {"tumor.nii.gz", "lungs.nii.gz", "report.json", "run.json"} <= {
        p.name for p in out.iterdir()
    }
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["model"] == str(tiny_model)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["analyze", "{missing}", "--out", "{out}"], "no such file"),
        (["analyze", "{ct}", "--out", "{out}", "--device", "tpu", "--model", "{model}"], "device"),
        (["analyze", "{ct}", "--out", "{out}", "--shard", "0/2", "--model", "{model}"], "--shard"),
        (["analyze", "{ct}", "--out", "{out}", "--model", "{empty}"], "model.json"),
        (["analyze", "{ct}", "--out", "{full}", "--model", "{model}"], "not empty"),
        (["analyze", "{flat}", "--out", "{out}", "--model", "{model}"], "--force-ct"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(
    args: list[str],
    needle: str,
    ct_file: Path,
    tiny_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    flat = write_volume(
        Volume.from_spacing(np.full((40, 40, 20), 7, np.int16), (1.0, 1.0, 1.0)),
        tmp_path / "flat.nii.gz",
    )
    subst = {
        "missing": str(tmp_path / "nope.nii.gz"),
        "out": str(tmp_path / "out"),
        "ct": str(ct_file),
        "model": str(tiny_model),
        "empty": str(tmp_path / "empty"),
        "full": str(full),
        "flat": str(flat),
    }
    code = main([a.format(**subst) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_summary_prints_the_report_notes() -> None:
    from io import StringIO
    from types import SimpleNamespace

    from rich.console import Console

    from lungspread.cli.cmd_analyze import print_summary

    totals = {"right_lung_ml": 2000.0, "left_lung_ml": 1800.0, "lesion_count": 1}
    result = SimpleNamespace(
        report={
            "lesions": [{"id": "L1", "volume_ml": 4.0, "recist_diameter_mm": 25.0}],
            "t_descriptor": {"estimate": "T1c", "rule": "largest lesion L1"},
            "notes": ["1 lesion(s) reach the edge of the image (L1: axis 2 [last])"],
        },
        run={"device_used": "cpu"},
        summary=lambda: {**totals, "tumor_volume_ml": 4.0, "seconds": 1.0},
    )
    buffer = StringIO()
    print_summary(Console(file=buffer, width=200), result, None)  # type: ignore[arg-type]
    text = buffer.getvalue()
    # printed as written (no rich markup read into the brackets)
    assert "note: 1 lesion(s) reach the edge of the image (L1: axis 2 [last])" in text

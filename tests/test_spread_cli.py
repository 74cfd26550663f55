"""``lungspread spread`` and ``lungspread follow-up`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.io import read_volume, write_volume
from lungspread.volume import Volume
from test_spread_report import SPACING, lungs_array, tumor_array


def _write(arr: np.ndarray, path: Path, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    write_volume(Volume.from_spacing(arr, spacing, origin), path)
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    ct = np.where(lungs_array() > 0, -850, 40).astype(np.int16)
    ct[tumor_array() > 0] = 30
    return {
        "mask": _write(tumor_array(), tmp_path / "tumor.nii.gz"),
        "lungs": _write(lungs_array(), tmp_path / "lungs.nii.gz"),
        "ct": _write(ct, tmp_path / "ct.nii.gz"),
    }


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_spread_on_a_mask_only(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["spread", str(files["mask"]), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "run.json", "tumor.nii.gz"]
    report = json.loads((out / "report.json").read_text())
    les = report["lesions"][0]
    assert les["volume_ml"] == pytest.approx(448 * 1.5 * 1.5 * 2.5 / 1000, abs=1e-4)
    assert les["recist_diameter_mm"] > 40 and les["max_diameter_mm"] > les["recist_diameter_mm"]
    assert les["side"] is None and les["null_reasons"]["side"].startswith("no lung mask")
    assert les["mean_hu"] is None and les["null_reasons"]["mean_hu"] == "no CT given"
    assert report["lungs"]["total_ml"] is None and "lungs" in report["null_reasons"]
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "spread"
    assert run["inputs"] == {"mask": "tumor.nii.gz", "ct": None, "lungs": None, "lobes": None}
    # the mask as measured, 0/1 on the input's grid
    kept = read_volume(out / "tumor.nii.gz")
    assert np.array_equal(kept.array, (tumor_array() > 0).astype(np.uint8))
    assert np.allclose(kept.affine, read_volume(files["mask"]).affine)
    assert "measure" in run["timings_s"]
    assert "4 lesion(s)" in capsys.readouterr().out


def test_spread_with_ct_and_lungs(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["spread", str(files["mask"]), "--ct", str(files["ct"]), "--lungs", str(files["lungs"])]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["lungs"]["right_ml"] == pytest.approx(315.0)
    assert report["lesions"][0]["mean_hu"] == 30.0
    assert report["lesions"][0]["solid_fraction"] == 1.0
    assert report["t_descriptor"]["estimate"] == "T4"
    assert not (out / "lungs.nii.gz").exists()  # lungs were given, not segmented
    # A second run into the same folder needs --overwrite.
    assert main([*args, "--out", str(out)]) == 2
    assert main([*args, "--out", str(out), "--overwrite"]) == 0


def test_spread_min_separate_nodule_option(files: dict[str, Path], tmp_path: Path) -> None:
    tumor = np.zeros_like(tumor_array())
    tumor[60:80, 20:40, 10:30] = 1  # 30 x 30 x 50 mm in the right lung
    tumor[20:22, 30:32, 20] = 1  # a 3 x 3 x 2.5 mm speck in the left lung
    mask = _write(tumor, tmp_path / "speck.nii.gz")
    args = ["spread", str(mask), "--lungs", str(files["lungs"])]
    estimates = {}
    for limit in ("6", "0"):
        out = tmp_path / f"out{limit}"
        assert main([*args, "--out", str(out), "--min-separate-nodule-mm", limit]) == 0
        report = json.loads((out / "report.json").read_text())
        td = report["t_descriptor"]
        estimates[limit] = (td["estimate"], td["m_estimate"], td["separate_nodules"][0]["counted"])
        assert report["settings"]["min_separate_nodule_mm"] == float(limit)
        run = json.loads((out / "run.json").read_text())
        assert run["options"]["min_separate_nodule_mm"] == float(limit)
    assert estimates == {"6": ("T3", None, False), "0": ("T3", "M1a", True)}
    assert main([*args, "--out", str(tmp_path / "bad"), "--min-separate-nodule-mm", "-1"]) == 2


def test_missing_file_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nope.nii.gz"
    assert main(["spread", str(missing), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "nope.nii.gz" in line
    assert not out.exists() or not any(out.iterdir())
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


def test_grid_mismatch_is_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path, capsys
) -> None:
    ct = _write(np.zeros((100, 60, 40), np.int16), tmp_path / "ct_other.nii.gz", (1.5, 1.5, 3.0))
    out = tmp_path / "out"
    assert main(["spread", str(files["mask"]), "--ct", str(ct), "--out", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "(100, 60, 48)" in line and "(100, 60, 40)" in line
    assert "1.5x1.5x3" in line and "1.5x1.5x2.5" in line
    assert not out.exists() or not any(out.iterdir())


def test_follow_up_command(tmp_path: Path, capsys) -> None:
    base_t = tumor_array()
    fu_t = tumor_array()
    fu_t[30:58, 28:32, 20:24] = 0  # the largest target (L1, 42 mm) is gone: PR or better
    shift = (5.0, -3.0, 20.0)
    base_dir, fu_dir, out = tmp_path / "base", tmp_path / "fu", tmp_path / "cmp"
    for arr, folder, origin in ((base_t, base_dir, (0.0, 0.0, 0.0)), (fu_t, fu_dir, shift)):
        src = tmp_path / f"src_{folder.name}"
        src.mkdir()
        mask = _write(arr, src / "mask.nii.gz", origin=origin)
        lungs = _write(lungs_array(), src / "lungs.nii.gz", origin=origin)
        assert main(["spread", str(mask), "--lungs", str(lungs), "--out", str(folder)]) == 0
    capsys.readouterr()
    assert main(["follow-up", str(base_dir), str(fu_dir), "--out", str(out)]) == 0
    res = json.loads((out / "followup.json").read_text())
    assert res["alignment"]["translation_mm"] == pytest.approx([-5.0, 3.0, -20.0], abs=1e-3)
    assert [d["id"] for d in res["disappeared_lesions"]] == ["L1"]
    assert res["new_lesions"] == []
    rec = res["recist"]
    assert rec["sum_change_pct"] <= -30.0
    assert res["response"] == "PR"
    assert res["matching"]["masks_used"] is True  # the masks spread kept in its folders
    assert "RECIST 1.1 response: PR" in capsys.readouterr().out
    # A folder without report.json: one line, exit 2.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["follow-up", str(empty), str(fu_dir), "--out", str(tmp_path / "x")]) == 2
    assert "report.json" in _one_error_line(capsys.readouterr().err)


def _spread_pair(root: Path, patient: str) -> tuple[Path, Path]:
    """spread run on a baseline and a follow-up mask stored under a folder named after the
    patient (as real folders often are); returns the two spread output folders."""
    src = root / patient / "scans"
    src.mkdir(parents=True)
    fu_t = tumor_array()
    fu_t[30:58, 28:32, 20:24] = 0
    outs = []
    for arr, tag in ((tumor_array(), "baseline"), (fu_t, "followup")):
        mask = _write(arr, src / f"{patient}_{tag}_mask.nii.gz")
        lungs = _write(lungs_array(), src / f"{patient}_{tag}_lungs.nii.gz")
        out = root / f"{patient}-{tag}-spread"
        assert main(["spread", str(mask), "--lungs", str(lungs), "--out", str(out)]) == 0
        outs.append(out)
    return outs[0], outs[1]


def test_run_json_carries_no_input_paths(tmp_path: Path, capsys) -> None:
    """spread and follow-up record file and folder names only, as analyze does (folder names
    often carry patient names); follow-up works from the folders alone, even moved elsewhere
    after the inputs are gone."""
    import shutil

    patient = "Doe_Jane_19571102"
    base, fu = _spread_pair(tmp_path / "site", patient)
    run = json.loads((base / "run.json").read_text())
    assert run["inputs"] == {
        "mask": f"{patient}_baseline_mask.nii.gz",
        "ct": None,
        "lungs": f"{patient}_baseline_lungs.nii.gz",
        "lobes": None,
    }
    assert str(tmp_path) not in (base / "run.json").read_text()
    # the inputs go away and the spread folders move: follow-up still matches on the masks
    shutil.rmtree(tmp_path / "site" / patient)
    moved = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "site"), str(moved))
    base, fu = moved / base.name, moved / fu.name
    out = tmp_path / "cmp"
    assert main(["follow-up", str(base), str(fu), "--out", str(out)]) == 0
    res = json.loads((out / "followup.json").read_text())
    assert res["matching"]["masks_used"] is True
    assert res["response"] == "PR"
    fu_run = json.loads((out / "run.json").read_text())
    assert fu_run["inputs"] == {
        "baseline": base.name,
        "followup": fu.name,
        "baseline_tumor": "tumor.nii.gz",
        "followup_tumor": "tumor.nii.gz",
        "baseline_lungs": None,  # the reports carry the lung geometry: no lung map read
        "followup_lungs": None,
    }
    text = (out / "run.json").read_text() + (out / "followup.json").read_text()
    assert str(tmp_path) not in text and "scans" not in text
    capsys.readouterr()


def test_follow_up_reads_old_spread_folders(tmp_path: Path, monkeypatch, capsys) -> None:
    """Spread folders written before spread kept its mask name it by absolute path in
    run.json: follow-up still finds it there. A bare name is never looked up in the current
    folder (where an unrelated file of that name may sit)."""
    base, fu = _spread_pair(tmp_path, "p1")
    for folder, tag in ((base, "baseline"), (fu, "followup")):
        (folder / "tumor.nii.gz").unlink()
        run = json.loads((folder / "run.json").read_text())
        run["inputs"]["mask"] = str(tmp_path / "p1" / "scans" / f"p1_{tag}_mask.nii.gz")
        (folder / "run.json").write_text(json.dumps(run))
    assert main(["follow-up", str(base), str(fu), "--out", str(tmp_path / "old")]) == 0
    res = json.loads((tmp_path / "old" / "followup.json").read_text())
    assert res["matching"]["masks_used"] is True
    # now bare names, with files of those names in the current folder: not used
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for folder, tag in ((base, "baseline"), (fu, "followup")):
        run = json.loads((folder / "run.json").read_text())
        run["inputs"]["mask"] = f"p1_{tag}_mask.nii.gz"
        (folder / "run.json").write_text(json.dumps(run))
        _write(tumor_array(), cwd / f"p1_{tag}_mask.nii.gz")
    monkeypatch.chdir(cwd)
    assert main(["follow-up", str(base), str(fu), "--out", str(tmp_path / "bare")]) == 0
    res = json.loads((tmp_path / "bare" / "followup.json").read_text())
    assert res["matching"]["masks_used"] is False
    capsys.readouterr()

"""Exploratory analysis (``lungspread dataset inspect``) against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.data.inspect import PLOTS, inspect_dataset, lesion_table, run_inspect
from lungspread.data.msd import MSDDataset, write_case, write_dataset_json
from lungspread.volume import Volume


def build(root: Path, broken: bool = True) -> MSDDataset:
    spacing = (1.0, 1.0, 2.0)
    arr = np.full((30, 30, 10), -1000, np.int16)
    arr[3:27, 3:27, :] = 40
    lab = np.zeros(arr.shape, np.uint8)
    lab[5:9, 5:9, 2:5] = 1  # lesion A: 4x4x3 voxels = 96 mm^3
    lab[20, 20, 8] = 1  # lesion B: one voxel = 2 mm^3
    arr[lab > 0] = 100
    vol = Volume.from_spacing(arr, spacing)
    cases = [write_case(root, "with_tumor", vol, vol.with_array(lab))]
    cases.append(write_case(root, "no_tumor", vol, vol.with_array(np.zeros_like(lab))))
    if broken:
        bad = write_case(root, "broken", vol, vol.with_array(lab))
        assert bad.label is not None
        nib.save(nib.Nifti1Image(lab * 3, np.diag([*spacing, 1.0])), str(bad.label))
        cases.append(bad)
    write_dataset_json(
        root, name="Insp", modality={"0": "CT"}, labels={"0": "bg", "1": "tumor"}, cases=cases
    )
    return MSDDataset.open(root)


def test_lesion_table_hand_values() -> None:
    lab = np.zeros((12, 12, 6), bool)
    lab[2:6, 2:6, 1:4] = True
    rows = lesion_table(lab, (1.0, 1.0, 2.0), slice_axis=2)
    assert len(rows) == 1
    r = rows[0]
    assert r["volume_ml"] == pytest.approx(0.096) and r["voxels"] == 48
    assert r["equivalent_diameter_mm"] == pytest.approx((6 * 96 / math.pi) ** (1 / 3))
    assert r["max_axial_diameter_mm"] == pytest.approx(math.sqrt(32))  # corner to corner
    assert r["max_axial_area_mm2"] == 16.0 and r["n_slices"] == 3
    assert r["extent_mm"] == [4.0, 4.0, 6.0]
    # a digital disc of radius 5 px at 0.5 mm spans 11 pixels (5.5 mm) edge to edge
    yy, xx = np.mgrid[:30, :30]
    disc = ((yy - 15) ** 2 + (xx - 15) ** 2 <= 25)[:, :, None]
    feret = lesion_table(disc, (0.5, 0.5, 1.0), 2)[0]["max_axial_diameter_mm"]
    assert 5.5 <= feret <= 5.75


def test_inspect_dataset_values(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds")
    rep = inspect_dataset(ds)
    assert rep["dataset"]["n_cases_listed"] == 3 and rep["dataset"]["n_cases_inspected"] == 2
    assert len(rep["failures"]) == 1 and rep["failures"][0]["case"] == "broken"
    assert "values [3] not among the declared labels" in rep["failures"][0]["error"]
    c = rep["cases"]["with_tumor"]
    assert c["foreground_voxels"] == 49 and c["tumor_volume_ml"] == pytest.approx(0.098)
    assert c["foreground_fraction"] == pytest.approx(49 / 9000)
    assert (c["n_slices"], c["slices_with_tumor"]) == (10, 4)
    assert [les["voxels"] for les in c["lesions"]] == [48, 1]
    assert c["foreground_intensity"]["median"] == 100.0
    assert c["intensity"]["min"] == -1000 and c["intensity"]["max"] == 100
    assert rep["class_balance"]["cases_without_tumor"] == 1
    assert rep["class_balance"]["foreground_fraction_pooled"] == pytest.approx(49 / 18000)
    assert rep["slices"]["fraction_with_tumor_pooled"] == pytest.approx(4 / 20)
    assert rep["tumors"]["n_lesions"] == 2
    assert rep["tumors"]["lesion_max_axial_diameter_mm"]["max"] == pytest.approx(math.sqrt(32))
    assert rep["geometry"]["spacing_mm"]["k"]["median"] == 2.0
    h = rep["intensity"]["histogram"]
    assert sum(h["foreground"]) == 49 and sum(h["whole"]) == 18000  # all voxels sampled (<20k)


def test_run_inspect_writes_report(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", broken=False)
    out = tmp_path / "report"
    run_inspect(ds.root, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["inspect.json", "summary.md", "run.json", *PLOTS])
    for png in PLOTS:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "inspect.json").read_text())
    assert data["tumors"]["n_lesions"] == 2
    md = (out / "summary.md").read_text()
    assert "Slices with tumor: 4 of 20 (20 %)" in md and "![tumor_sizes.png](tumor_sizes.png)" in md


def test_cli_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = build(tmp_path / "ds")
    out = tmp_path / "r"
    assert main(["dataset", "inspect", str(ds.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "failed broken" in printed and "2 lesions" in printed
    assert (out / "inspect.json").is_file()
    assert main(["dataset", "inspect", str(ds.root), "--out", str(out)]) == 2  # not empty
    assert "not empty" in capsys.readouterr().err
    assert main(["dataset", "inspect", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "no such dataset folder" in err and "Traceback" not in err
    assert not (tmp_path / "r2").exists() or list((tmp_path / "r2").iterdir()) == []


def test_inspect_2d_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds2d"
    cases = []
    for i in range(3):
        img = np.random.default_rng(i).integers(0, 255, (16, 16, 1)).astype(np.uint8)
        lab = np.zeros((16, 16, 1), np.uint8)
        if i:
            lab[4:8, 4:6, 0] = 1
        v = Volume.from_spacing(img, (1.5, 1.5, 1.5))
        cases.append(write_case(root, f"s{i}", v, v.with_array(lab), patient="subj"))
    write_dataset_json(
        root, name="S", modality={"0": "CT-8bit"}, labels={"0": "bg", "1": "t"}, cases=cases
    )
    rep = inspect_dataset(MSDDataset.open(root))
    assert rep["dataset"]["is_2d"] is True
    assert rep["slices"]["fraction_with_tumor_pooled"] == pytest.approx(2 / 3)
    les = rep["cases"]["s1"]["lesions"][0]
    assert les["max_axial_area_mm2"] == pytest.approx(8 * 2.25)
    assert les["equivalent_diameter_mm"] == pytest.approx(2 * math.sqrt(18 / math.pi))


@pytest.mark.slow
def test_inspect_real_lidc_cases(shared_data: Path, tmp_path: Path) -> None:
    """Two real CTs with their nodule masks, as an MSD folder of links: the nodule volumes
    match the data README (about 7.8 and 9.7 mL) and the masks share their CT's grid."""
    root = tmp_path / "lidc"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for n in ("0001", "0002"):
        (root / "imagesTr" / f"lidc_{n}.nii.gz").symlink_to(
            shared_data / f"lidc-idri-{n}" / "ct.nii.gz"
        )
        (root / "labelsTr" / f"lidc_{n}.nii.gz").symlink_to(
            shared_data / f"lidc-idri-{n}" / "nodules.nii.gz"
        )
        training.append(
            {"image": f"./imagesTr/lidc_{n}.nii.gz", "label": f"./labelsTr/lidc_{n}.nii.gz"}
        )
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "name": "LIDC",
                "modality": {"0": "CT"},
                "labels": {"0": "bg", "1": "nodule"},
                "training": training,
            }
        )
    )
    ds = MSDDataset.open(root)
    assert ds.validate(check_voxels=False) == []
    rep = inspect_dataset(ds)
    assert rep["failures"] == []
    assert rep["cases"]["lidc_0001"]["tumor_volume_ml"] == pytest.approx(7.8, abs=0.1)
    assert rep["cases"]["lidc_0002"]["tumor_volume_ml"] == pytest.approx(9.7, abs=0.1)
    assert [c["n_lesions"] for c in rep["cases"].values()] == [1, 1]
    assert rep["geometry"]["spacing_mm"]["k"]["max"] == pytest.approx(2.5)

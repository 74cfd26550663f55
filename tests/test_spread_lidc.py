"""The spread report on the real LIDC-IDRI consensus nodule masks (../shared/data).

lidc-idri-0001: one solid nodule, patient-left lung, about 7.8 mL, 0.703 x 0.703 x 2.5 mm.
lidc-idri-0002: one sub-solid (mostly ground-glass) lesion, left upper lung, about 9.7 mL,
0.682 x 0.682 x 1.25 mm. Volumes are checked against voxel count x spacing computed here
from the NIfTI header, sides and zones against the data README.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.io import read_volume
from lungspread.spread import compute_spread, spread_report

CASES = {"lidc-idri-0001": 7.8, "lidc-idri-0002": 9.7}


def _lungs_available() -> bool:
    try:
        from lungspread.lungs import segment_lungs  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_lidc_mask_geometry(shared_data: Path, case: str) -> None:
    path = shared_data / case / "nodules.nii.gz"
    img = nib.load(str(path))
    count = int(np.count_nonzero(np.asarray(img.dataobj)))
    voxel_mm3 = abs(float(np.linalg.det(img.affine[:3, :3])))
    report = spread_report(read_volume(path))
    assert report["totals"]["lesion_count"] == 1
    les = report["lesions"][0]
    assert les["volume_ml"] == pytest.approx(count * voxel_mm3 / 1000, abs=1e-4)
    assert les["volume_ml"] == pytest.approx(CASES[case], abs=0.1)
    # A 3 cm class nodule: measurable, a RECIST target, T2 by size.
    assert 25.0 < les["recist_diameter_mm"] <= les["max_diameter_mm"] < 45.0
    assert les["short_axis_mm"] < les["recist_diameter_mm"]
    assert [t["id"] for t in report["totals"]["recist_targets"]] == ["L1"]
    # Centroid in RAS: both nodules are in the patient's left (x < 0).
    assert les["centroid_mm"][0] < -40.0
    assert 0.3 < les["sphericity"] < 1.0


@pytest.mark.skipif(not _lungs_available(), reason="lungspread.lungs.segment_lungs not available")
def test_lidc_0001_with_ct_side_hu_and_cli(shared_data: Path, tmp_path: Path) -> None:
    case = shared_data / "lidc-idri-0001"
    out = tmp_path / "spread"
    assert (
        main(
            [
                "spread",
                str(case / "nodules.nii.gz"),
                "--ct",
                str(case / "ct.nii.gz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "lungs.nii.gz").is_file()
    report = json.loads((out / "report.json").read_text())
    les = report["lesions"][0]
    assert les["side"] == "left"
    assert les["fraction_in_lung"] >= 0.95
    assert 1000 < report["lungs"]["left_ml"] < 5000 and 1000 < report["lungs"]["right_ml"] < 5000
    assert les["mean_hu"] > -300.0 and les["solid_fraction"] > 0.6  # solid nodule
    # It lies against the posterior chest wall (seen on the slices): within 2 mm of it, and
    # "in contact" exactly when that gap is within the 1.5 mm tolerance.
    assert les["distance_to_pleura_mm"] <= 2.0
    assert les["pleural_contact"] is (les["distance_to_pleura_mm"] <= 1.5)
    assert report["totals"]["bilateral"] is False
    assert report["t_descriptor"]["estimate"] == "T2a"  # about 36 mm longest diameter
    # Follow-up of the scan against itself (through the folders): stable disease.
    cmp_dir = tmp_path / "cmp"
    assert main(["follow-up", str(out), str(out), "--out", str(cmp_dir)]) == 0
    res = json.loads((cmp_dir / "followup.json").read_text())
    assert res["response"] == "SD"
    assert res["matches"][0]["overlap_fraction"] == pytest.approx(1.0)


@pytest.mark.skipif(not _lungs_available(), reason="lungspread.lungs.segment_lungs not available")
def test_lidc_0002_ground_glass_left_upper(shared_data: Path) -> None:
    case = shared_data / "lidc-idri-0002"
    report, lungs = compute_spread(
        read_volume(case / "nodules.nii.gz"), ct=read_volume(case / "ct.nii.gz")
    )
    assert lungs is not None
    les = report["lesions"][0]
    assert (les["side"], les["zone"]) == ("left", "upper")
    assert les["fraction_in_lung"] >= 0.95
    assert les["solid_fraction"] < 0.1 and les["mean_hu"] < -500.0  # ground glass
    td = report["t_descriptor"]
    assert any("non-solid" in c for c in td["caveats"])

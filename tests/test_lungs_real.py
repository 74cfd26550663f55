"""Lung masks on the two real LIDC-IDRI scans in ../shared/data (LIDC-IDRI, TCIA, CC BY 3.0).

Both nodules lie in the patient's left lung (0002's is a sub-solid lesion of the left upper
lung against the posterior chest wall); the nodule masks are on the CT grids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungspread.lungs import LEFT, RIGHT, UPPER, LungResult, analyze_lungs, segment_lungs
from lungspread.volume import Volume

CASES = ("lidc-idri-0001", "lidc-idri-0002")

#: A voxel in the middle of the trachea of each scan (air, far above the carina) and its slice.
TRACHEA_IJK = {"lidc-idri-0001": (232, 240, 110), "lidc-idri-0002": (259, 250, 220)}


def _case(shared_data: Path, name: str) -> Path:
    folder = shared_data / name
    if not (folder / "ct.nii.gz").is_file():
        pytest.skip(f"{folder / 'ct.nii.gz'} not found")
    return folder


@pytest.fixture(scope="module")
def results(shared_data: Path) -> dict[str, tuple[Volume, LungResult, np.ndarray]]:
    from lungspread.io import read_volume

    out = {}
    for name in CASES:
        folder = _case(shared_data, name)
        ct = read_volume(folder / "ct.nii.gz")
        nodules = read_volume(folder / "nodules.nii.gz")
        assert nodules.same_grid(ct)
        out[name] = (ct, analyze_lungs(ct), np.asarray(nodules.array) > 0)
    return out


@pytest.mark.parametrize("name", CASES)
def test_each_lung_between_1_and_5_litres(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]], name: str
) -> None:
    ct, res, _ = results[name]
    assert res.labels.same_grid(ct) and res.labels.array.dtype == np.uint8
    for key in ("right_ml", "left_ml"):
        assert 1000.0 < res.volumes_ml[key] < 5000.0, (name, res.volumes_ml)


@pytest.mark.parametrize("name", CASES)
def test_right_is_right(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]], name: str
) -> None:
    """Label 1 lies towards the patient's right (+x in RAS) of label 2."""
    _, res, _ = results[name]
    arr = np.asarray(res.labels.array)
    centres = {}
    for lbl in (RIGHT, LEFT):
        ijk = np.argwhere(arr[::4, ::4, ::2] == lbl) * np.array([4, 4, 2])
        centres[lbl] = res.labels.index_to_world(ijk.mean(axis=0))
    assert centres[RIGHT][0] > centres[LEFT][0] + 100.0  # lung centres ~ 10-20 cm apart


@pytest.mark.parametrize("name", CASES)
def test_nodule_inside_the_left_lung(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]], name: str
) -> None:
    """Both nodules touch the pleura: at least 95% of their voxels must be labelled left lung."""
    _, res, nodule = results[name]
    labels = np.asarray(res.labels.array)[nodule]
    assert nodule.sum() > 5000
    assert np.mean(labels == LEFT) >= 0.95, np.bincount(labels, minlength=3)


def test_lesion_of_0002_in_the_upper_zone(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]],
) -> None:
    _, res, nodule = results["lidc-idri-0002"]
    zones = np.asarray(res.zones.array)[nodule]
    assert np.mean(zones == UPPER) >= 0.95, np.bincount(zones, minlength=4)


@pytest.mark.parametrize("name", CASES)
def test_trachea_is_not_lung(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]], name: str
) -> None:
    ct, res, _ = results[name]
    i, j, k = TRACHEA_IJK[name]
    assert float(np.mean(ct.array[i - 2 : i + 3, j - 2 : j + 3, k])) < -900.0  # really air
    assert res.labels.array[i - 3 : i + 4, j - 3 : j + 4, k].max() == 0


def test_zones_partition_each_lung(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]],
) -> None:
    _, res, _ = results["lidc-idri-0001"]
    lab = np.asarray(res.labels.array)
    zon = np.asarray(res.zones.array)
    assert np.array_equal(lab > 0, zon > 0)
    for side in ("right", "left"):
        parts = [res.zone_volumes_ml[f"{side}_{z}_ml"] for z in ("upper", "middle", "lower")]
        assert sum(parts) == pytest.approx(res.volumes_ml[f"{side}_ml"])
        assert all(p > 0.1 * res.volumes_ml[f"{side}_ml"] for p in parts)


def test_lps_flipped_copy_gives_the_same_patient_labels(
    results: dict[str, tuple[Volume, LungResult, np.ndarray]],
) -> None:
    """The same scan stored with its first two axes reversed (RAS-ordered array instead of
    LPS) and the slice axis first: labels follow the patient, not the array."""
    ct, res, nodule = results["lidc-idri-0001"]
    arr = np.asarray(ct.array)[::-1, ::-1, :]
    aff = ct.affine.copy()
    for ax in (0, 1):
        aff[:3, 3] += aff[:3, ax] * (ct.shape[ax] - 1)
        aff[:3, ax] = -aff[:3, ax]
    arr = np.ascontiguousarray(np.transpose(arr, (2, 0, 1)))
    aff2 = aff.copy()
    aff2[:3, :3] = aff[:3, [2, 0, 1]]
    moved = Volume(arr, aff2)
    assert moved.axis_codes() == ("S", "R", "A")
    out = np.asarray(segment_lungs(moved).array)
    back = np.transpose(out, (1, 2, 0))[::-1, ::-1, :]
    assert np.mean(back[nodule] == LEFT) >= 0.95
    same = np.mean(back == np.asarray(res.labels.array))
    assert same > 0.995, same

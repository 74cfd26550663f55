"""Lung masks on small synthetic chests with exact ground truth (fast, no real data needed).

The chest is built in patient space (RAS+ mm): an elliptic body of soft tissue, two
ellipsoidal lungs at about -850 HU with vessels, a trachea that splits into two main bronchi
entering the lungs, a solid tumor inside the left lung touching the lateral chest wall
(juxtapleural) and one inside the right lung touching the mediastinum (juxtamediastinal).
Outside a circular field of view the voxels are scanner padding (-2048 HU).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lungspread.lungs import (
    LEFT,
    LOWER,
    MIDDLE,
    RIGHT,
    UPPER,
    LungOptions,
    analyze_lungs,
    lung_volumes_ml,
    lung_zones,
    segment_lungs,
    zone_volumes_ml,
)
from lungspread.volume import Volume

# ---------------------------------------------------------------------------------------------
# synthetic chest


@dataclass
class Chest:
    ct: Volume
    lungs: np.ndarray  # 1 right, 2 left (ellipsoids; tumors inside them included)
    tumor_pleural: np.ndarray  # in the left lung, touching the lateral chest wall
    tumor_mediastinal: np.ndarray  # in the right lung, touching the mediastinum
    airway: np.ndarray  # trachea and main bronchi outside the lungs
    trachea: np.ndarray  # the part above the carina


LUNG_X_MM = 42.0  # lung centres at x = +-42 mm (RAS: + is the patient's right)
LUNG_SEMI_MM = (26.0, 40.0, 50.0)


def make_chest(
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.25),
    lung_x_mm: float = LUNG_X_MM,
    seed: int = 0,
    with_airway: bool = True,
) -> Chest:
    """A synthetic chest CT on an axis-aligned RAS grid centred on the origin."""
    extent = np.array([180.0, 140.0, 150.0])  # mm along x, y, z
    shape = tuple(round(float(e) / s) for e, s in zip(extent, spacing, strict=True))
    origin = -(np.array(shape) - 1) * np.array(spacing) / 2.0
    x = origin[0] + np.arange(shape[0]) * spacing[0]
    y = origin[1] + np.arange(shape[1]) * spacing[1]
    z = origin[2] + np.arange(shape[2]) * spacing[2]
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")

    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = (X / 80.0) ** 2 + (Y / 60.0) ** 2 <= 1.0
    hu[body] = 40.0
    ax, ay, az = LUNG_SEMI_MM
    zc = -5.0
    lungs = np.zeros(shape, dtype=np.uint8)
    for lbl, cx in ((RIGHT, lung_x_mm), (LEFT, -lung_x_mm)):
        inside = ((X - cx) / ax) ** 2 + (Y / ay) ** 2 + ((Z - zc) / az) ** 2 <= 1.0
        lungs[inside] = lbl
    hu[lungs > 0] = -850.0
    # vessels: tissue tubes running along z inside each lung (filled holes in every slice)
    for cx in (lung_x_mm, -lung_x_mm):
        for dx, dy in ((-8.0, 10.0), (6.0, -12.0), (0.0, 0.0)):
            tube = ((X - cx - dx) ** 2 + (Y - dy) ** 2 <= 2.0**2) & (lungs > 0)
            hu[tube] = 40.0
    # trachea from the top down to the carina, then two main bronchi into the lungs
    carina_z = 20.0
    airway = ((X**2 + (Y - 5.0) ** 2) <= 8.0**2) & (carina_z <= Z)
    for sign in (1.0, -1.0):
        # a straight tube from the carina towards the lung's medial side and down
        p0 = np.array([0.0, 5.0, carina_z])
        p1 = np.array([sign * (lung_x_mm - LUNG_SEMI_MM[0] + 6.0), 5.0, carina_z - 30.0])
        d = p1 - p0
        t = ((X - p0[0]) * d[0] + (Y - p0[1]) * d[1] + (Z - p0[2]) * d[2]) / float(d @ d)
        t = np.clip(t, 0.0, 1.0)
        dist2 = (X - p0[0] - t * d[0]) ** 2 + (Y - p0[1] - t * d[1]) ** 2
        dist2 += (Z - p0[2] - t * d[2]) ** 2
        airway |= dist2 <= 5.5**2
    airway &= body & with_airway
    hu[airway & (lungs == 0)] = -1000.0
    # tumors: solid spheres inside the lungs, tangent to the pleura
    r_t = 9.0
    tx = -(lung_x_mm + ax - r_t)  # left lung, lateral side
    tumor_pleural = (X - tx) ** 2 + Y**2 + (Z - zc + 10.0) ** 2 <= r_t**2
    r_m = 8.0
    mx = lung_x_mm - ax + r_m  # right lung, medial side
    tumor_mediastinal = (X - mx) ** 2 + (Y + 15.0) ** 2 + (Z - zc + 5.0) ** 2 <= r_m**2
    tumor_pleural &= lungs == LEFT
    tumor_mediastinal &= lungs == RIGHT
    hu[tumor_pleural | tumor_mediastinal] = 45.0
    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, 15.0, size=shape).astype(np.float32)
    # scanner padding outside a circular field of view
    hu[X**2 + Y**2 > 88.0**2] = -2048.0
    arr = np.round(hu).astype(np.int16)
    ct = Volume.from_spacing(arr, spacing, origin)
    trachea = airway & (carina_z + 2.0 <= Z)
    return Chest(ct, lungs, tumor_pleural, tumor_mediastinal, airway & (lungs == 0), trachea)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


@pytest.fixture(scope="module")
def chest() -> Chest:
    return make_chest()


@pytest.fixture(scope="module")
def chest_labels(chest: Chest) -> np.ndarray:
    out = segment_lungs(chest.ct)
    return np.asarray(out.array)


# ---------------------------------------------------------------------------------------------
# segmentation on the synthetic chest


def test_labels_dtype_grid_and_values(chest: Chest) -> None:
    out = segment_lungs(chest.ct)
    assert out.array.dtype == np.uint8
    assert out.shape == chest.ct.shape
    assert np.array_equal(out.affine, chest.ct.affine)
    assert set(np.unique(out.array).tolist()) == {0, 1, 2}


def test_each_lung_matches_truth(chest: Chest, chest_labels: np.ndarray) -> None:
    for lbl in (RIGHT, LEFT):
        d = dice(chest_labels == lbl, chest.lungs == lbl)
        assert d > 0.95, (lbl, d)


def test_juxtapleural_and_juxtamediastinal_tumors_inside(
    chest: Chest, chest_labels: np.ndarray
) -> None:
    # a plain threshold leaves both tumors out: they touch the chest wall / mediastinum
    pleural = chest_labels[chest.tumor_pleural]
    mediastinal = chest_labels[chest.tumor_mediastinal]
    assert chest.tumor_pleural.sum() > 1000 and chest.tumor_mediastinal.sum() > 1000
    assert np.mean(pleural == LEFT) >= 0.95
    assert np.mean(mediastinal == RIGHT) >= 0.95


def test_trachea_and_bronchi_outside_lungs(chest: Chest, chest_labels: np.ndarray) -> None:
    # the trachea touches neither lung; the bronchi join them, and only their last few mm
    # before the lung (where the bronchus is no longer apart on the 2 mm grid) may be lung
    assert chest.trachea.sum() > 3000
    assert np.mean(chest_labels[chest.trachea] > 0) < 0.01
    assert np.mean(chest_labels[chest.airway] > 0) < 0.15


def test_no_body_wall_swallowed(chest: Chest, chest_labels: np.ndarray) -> None:
    # false positives (outside the true lungs) stay below 3% of the true lung volume
    fp = np.count_nonzero((chest_labels > 0) & (chest.lungs == 0))
    assert fp < 0.03 * np.count_nonzero(chest.lungs)


def test_without_tumor_filling_the_tumors_are_lost(chest: Chest) -> None:
    """The check above can fail: with the ball and hull steps off, the tumors fall out."""
    opts = LungOptions(ball_radius_mm=0.0, hull_fill=False)
    labels = np.asarray(segment_lungs(chest.ct, opts).array)
    assert np.mean(labels[chest.tumor_pleural] == LEFT) < 0.5


# ---------------------------------------------------------------------------------------------
# sides follow the patient, not the array


def _reoriented(ct: Volume, flips: tuple[int, ...], perm: tuple[int, int, int]) -> Volume:
    """The same image stored differently: axes flipped and permuted, affine kept consistent."""
    arr = np.asarray(ct.array)
    aff = ct.affine.copy()
    for ax in flips:
        arr = np.flip(arr, axis=ax)
        n = arr.shape[ax]
        # voxel i of the flipped array is voxel n-1-i of the original
        aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (n - 1)
        aff[:3, ax] = -aff[:3, ax]
    arr = np.transpose(arr, perm)
    aff2 = aff.copy()
    aff2[:3, :3] = aff[:3, list(perm)]
    return Volume(np.ascontiguousarray(arr), aff2)


def _back(labels: np.ndarray, flips: tuple[int, ...], perm: tuple[int, int, int]) -> np.ndarray:
    arr = np.transpose(labels, np.argsort(perm))
    for ax in reversed(flips):
        arr = np.flip(arr, axis=ax)
    return arr


@pytest.mark.parametrize(
    ("flips", "perm"),
    [
        ((0, 1), (0, 1, 2)),  # LPS storage, as DICOM and most NIfTI from DICOM
        ((0,), (1, 0, 2)),  # x and y swapped, left-right flipped
        ((2,), (2, 0, 1)),  # slice axis first, feet-first order
    ],
)
def test_sides_follow_the_patient_not_the_array(
    chest: Chest,
    chest_labels: np.ndarray,
    flips: tuple[int, ...],
    perm: tuple[int, int, int],
) -> None:
    moved = _reoriented(chest.ct, flips, perm)
    out = segment_lungs(moved)
    assert out.shape == moved.shape
    back = _back(np.asarray(out.array), flips, perm)
    for lbl in (RIGHT, LEFT):
        assert dice(back == lbl, chest.lungs == lbl) > 0.95, (flips, perm, lbl)
    # and it agrees with the result on the original storage nearly voxel for voxel
    assert np.mean(back == chest_labels) > 0.995


def test_oblique_affine(chest: Chest, chest_labels: np.ndarray) -> None:
    """The same voxels with the patient turned 12 degrees about S: same sides, same voxels
    (up to a few at the edge), and the zones follow world z."""
    a = np.deg2rad(12.0)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    oblique = Volume(np.asarray(chest.ct.array), rot @ chest.ct.affine)
    assert oblique.is_oblique
    res = analyze_lungs(oblique)
    labels = np.asarray(res.labels.array)
    assert np.mean(labels == chest_labels) > 0.998
    zones = np.asarray(res.zones.array)
    assert set(np.unique(zones[labels == RIGHT]).tolist()) == {UPPER, MIDDLE, LOWER}


@pytest.mark.parametrize("lung_x_mm", [26.5, 25.0])
def test_lungs_that_touch_are_split(lung_x_mm: float, caplog: pytest.LogCaptureFixture) -> None:
    """Lungs 1 mm apart (26.5) or fused over a 2 mm overlap (25) are one air component on the
    coarse grid; they still come out as right and left, split at the junction."""
    close = make_chest(lung_x_mm=lung_x_mm, seed=1, with_airway=False)
    with caplog.at_level("INFO", logger="lungspread.lungs"):
        labels = np.asarray(segment_lungs(close.ct).array)
    assert "the lungs touch" in caplog.text  # the split path really ran
    for lbl in (RIGHT, LEFT):
        assert dice(labels == lbl, close.lungs == lbl) > 0.98, lbl


def test_one_lung_only_is_labelled_by_its_side(chest: Chest) -> None:
    """After a left pneumonectomy (left lung replaced by tissue) only label 1 remains."""
    arr = np.asarray(chest.ct.array).copy()
    arr[chest.lungs == LEFT] = 40
    labels = np.asarray(segment_lungs(chest.ct.with_array(arr)).array)
    assert not (labels == LEFT).any()
    assert dice(labels == RIGHT, chest.lungs == RIGHT) > 0.95


def test_scan_starting_below_the_carina(chest: Chest) -> None:
    """No trachea in the field of view: nothing to remove, both lungs still found."""
    k_carina = int(np.nonzero(chest.trachea.any(axis=(0, 1)))[0][0])
    crop = Volume(
        np.ascontiguousarray(chest.ct.array[:, :, : k_carina - 8]), chest.ct.affine.copy()
    )
    labels = np.asarray(segment_lungs(crop).array)
    truth = chest.lungs[:, :, : k_carina - 8]
    for lbl in (RIGHT, LEFT):
        assert dice(labels == lbl, truth == lbl) > 0.95


def test_float_hu_input_gives_the_same_labels(chest: Chest, chest_labels: np.ndarray) -> None:
    as_float = chest.ct.with_array(np.asarray(chest.ct.array, dtype=np.float32))
    assert np.array_equal(np.asarray(segment_lungs(as_float).array), chest_labels)


def test_no_air_raises_input_error() -> None:
    from lungspread.errors import InputError

    ct = Volume.from_spacing(np.full((40, 40, 30), 40, dtype=np.int16), (2.0, 2.0, 2.5))
    with pytest.raises(InputError, match="no lung found"):
        segment_lungs(ct)


# ---------------------------------------------------------------------------------------------
# zones and volumes


def test_volumes_hand_computed() -> None:
    arr = np.zeros((10, 10, 10), dtype=np.uint8)
    arr[:5, :, :4] = RIGHT  # 200 voxels
    arr[5:, :, :] = LEFT  # 500 voxels
    lungs = Volume.from_spacing(arr, (2.0, 2.0, 2.5))  # 10 mm^3 per voxel
    v = lung_volumes_ml(lungs)
    assert v == pytest.approx({"right_ml": 2.0, "left_ml": 5.0, "total_ml": 7.0})


def test_zones_thirds_by_world_z_per_lung() -> None:
    arr = np.zeros((4, 4, 12), dtype=np.uint8)
    arr[:2, :, 0:10] = RIGHT  # right lung spans k = 0..9
    arr[2:, :, 3:12] = LEFT  # left lung spans k = 3..11
    lungs = Volume.from_spacing(arr, (1.0, 1.0, 3.0))
    z = lung_zones(lungs).array
    # right: centres at z = 0..27 mm, height 27: upper z >= 18 (k >= 6), lower z <= 9 (k <= 3)
    assert z[0, 0, :10].tolist() == [3, 3, 3, 3, 2, 2, 1, 1, 1, 1]
    # left: z = 9..33, height 24: upper z >= 25 (k >= 8.33 -> 9), lower z <= 17 (k <= 5.67)
    assert z[3, 0, 3:12].tolist() == [3, 3, 3, 2, 2, 2, 1, 1, 1]
    assert z[0, 0, 10:].tolist() == [0, 0]
    vols = zone_volumes_ml(lungs, lung_zones(lungs))
    assert vols["right_upper_ml"] == pytest.approx(8 * 4 * 3.0 / 1000.0)
    assert vols["left_middle_ml"] == pytest.approx(6 * 4 * 3.0 / 1000.0)


def test_zones_follow_superior_direction_when_k_points_down() -> None:
    arr = np.zeros((2, 2, 9), dtype=np.uint8)
    arr[:, :, :] = RIGHT
    aff = np.diag([1.0, 1.0, -2.0, 1.0])  # k increases towards the feet
    z = lung_zones(Volume(arr, aff)).array
    assert z[0, 0].tolist() == [UPPER] * 3 + [MIDDLE] * 3 + [LOWER] * 3


def test_zones_oblique_affine_matches_world_z() -> None:
    arr = np.ones((6, 6, 6), dtype=np.uint8)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, -0.6], [0.0, 0.6, 0.8]])  # tilt about x
    aff = np.eye(4)
    aff[:3, :3] = rot * 2.0
    lungs = Volume(arr, aff)
    zones = np.asarray(lung_zones(lungs).array)
    ijk = np.argwhere(arr > 0)
    zw = lungs.index_to_world(ijk)[:, 2]
    lo, hi = zw.min(), zw.max()
    expect = np.where(zw >= hi - (hi - lo) / 3, UPPER, np.where(zw > lo + (hi - lo) / 3, 2, 3))
    assert np.array_equal(zones[tuple(ijk.T)], expect)


def test_analyze_lungs_result(chest: Chest) -> None:
    res = analyze_lungs(chest.ct)
    truth_ml = {
        "right_ml": np.count_nonzero(chest.lungs == RIGHT) * chest.ct.voxel_volume_mm3 / 1000,
        "left_ml": np.count_nonzero(chest.lungs == LEFT) * chest.ct.voxel_volume_mm3 / 1000,
    }
    for key, ml in truth_ml.items():
        assert res.volumes_ml[key] == pytest.approx(ml, rel=0.05)
    zones_total = sum(res.zone_volumes_ml.values())
    assert zones_total == pytest.approx(res.volumes_ml["total_ml"], rel=1e-9)
    # thirds by height of an ellipsoid: the middle third holds 13/27 of the volume
    mid = res.zone_volumes_ml["right_middle_ml"] / res.volumes_ml["right_ml"]
    assert mid == pytest.approx(13 / 27, abs=0.03)
    d = res.to_dict()
    json.dumps(d)
    assert {"right_ml", "left_ml", "total_ml", "zones_ml", "timings_s"} <= set(d)


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_writes_outputs(tmp_path: Path, chest: Chest) -> None:
    from lungspread.cli.app import main
    from lungspread.io import read_volume, write_volume

    src = tmp_path / "ct.nii.gz"
    write_volume(chest.ct, src)
    out = tmp_path / "out"
    assert main(["lungs", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lungs.json", "lungs.nii.gz", "run.json"]
    lungs = read_volume(out / "lungs.nii.gz")
    assert lungs.same_grid(chest.ct)
    assert lungs.array.dtype == np.uint8
    info = json.loads((out / "lungs.json").read_text())
    assert info["right_ml"] == pytest.approx(
        np.count_nonzero(lungs.array == RIGHT) * chest.ct.voxel_volume_mm3 / 1000, abs=0.1
    )
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "lungs"
    assert "total" in run["timings_s"]
    # a second run into the same folder needs --overwrite
    assert main(["lungs", str(src), "--out", str(out)]) == 2
    assert main(["lungs", str(src), "--out", str(out), "--overwrite"]) == 0


def test_cli_refuses_non_ct_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lungspread.cli.app import main
    from lungspread.io import write_volume

    src = tmp_path / "unit.nii.gz"
    img = np.random.default_rng(0).random((30, 30, 20)).astype(np.float32)
    write_volume(Volume.from_spacing(img, (1.0, 1.0, 1.0)), src)
    out = tmp_path / "out"
    assert main(["lungs", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unit.nii.gz" in err
    assert not out.exists() or not any(out.iterdir())
    assert not list(tmp_path.glob(".out.partial-*"))

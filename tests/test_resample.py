"""Resampling in world space, checked against positions and values computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungspread.io import read_volume
from lungspread.resample import resample_like, resample_to_spacing
from lungspread.volume import Volume


def _ramp_i(values: list[float], spacing: tuple[float, float, float]) -> Volume:
    arr = np.repeat(np.repeat(np.asarray(values, np.float32)[:, None, None], 2, 1), 2, 2)
    return Volume.from_spacing(arr, spacing)


def test_upsample_one_axis_by_hand() -> None:
    v = _ramp_i([0, 10, 20, 30], (2.0, 1.0, 1.0))  # centres x = 0, 2, 4, 6; edges -1..7
    r = resample_to_spacing(v, (1.0, 1.0, 1.0))
    assert r.shape == (8, 2, 2) and r.array.dtype == np.float32
    # new centres x = -0.5, 0.5, ..., 6.5 -> old index x / 2, edge values beyond the centres
    np.testing.assert_allclose(r.array[:, 0, 0], [0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30])
    np.testing.assert_allclose(r.origin, [-0.5, 0.0, 0.0])
    np.testing.assert_allclose(r.spacing, (1.0, 1.0, 1.0))
    # the field of view keeps its outer edges: -1 .. 7 mm
    np.testing.assert_allclose(r.index_to_world([-0.5, 0, 0])[0], -1.0)
    np.testing.assert_allclose(r.index_to_world([7.5, 0, 0])[0], 7.0)


def test_downsample_averages_pairs_and_keeps_the_centre() -> None:
    v = _ramp_i([0, 1, 2, 3, 4, 5, 6, 7], (1.0, 1.0, 1.0))
    r = resample_to_spacing(v, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(r.array[:, 1, 1], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(r.origin, [0.5, 0.0, 0.0])
    # odd ratio: 5 voxels of 1 mm -> round(2.5) = 2 voxels of 2 mm centred on x = 2
    v5 = _ramp_i([0, 10, 20, 30, 40], (1.0, 1.0, 1.0))
    r5 = resample_to_spacing(v5, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(r5.index_to_world([[0, 0, 0], [1, 0, 0]])[:, 0], [1.0, 3.0])
    np.testing.assert_allclose(r5.array[:, 0, 0], [10, 30])


def test_oblique_lps_volume_keeps_direction_and_centre() -> None:
    c, s = np.cos(0.5), np.sin(0.5)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[-c, s, 0], [-s, -c, 0], [0, 0, 1]]) @ np.diag([0.5, 0.5, 3.0])
    aff[:3, 3] = [100.0, -50.0, 20.0]
    v = Volume(np.zeros((20, 10, 4), np.int16), aff)
    r = resample_to_spacing(v, 1.0, order=0)
    assert r.shape == (10, 5, 12)
    assert r.array.dtype == np.int16
    np.testing.assert_allclose(r.direction, v.direction, atol=1e-12)
    np.testing.assert_allclose(
        r.index_to_world(np.array(r.shape) / 2 - 0.5), v.index_to_world(np.array(v.shape) / 2 - 0.5)
    )
    # the first outer corner of both grids is the same point
    np.testing.assert_allclose(
        r.index_to_world([-0.5, -0.5, -0.5]), v.index_to_world([-0.5, -0.5, -0.5]), atol=1e-9
    )


def test_labels_stay_labels_with_nearest() -> None:
    arr = np.zeros((6, 6, 6), np.uint8)
    arr[2:4, 2:4, 2:4] = 3
    v = Volume.from_spacing(arr, (1.0, 1.0, 1.0))
    r = resample_to_spacing(v, 0.5, order=0)
    assert r.array.dtype == np.uint8 and set(np.unique(r.array)) == {0, 3}
    assert int((r.array == 3).sum()) == 8 * 8  # 8 mm^3 -> 64 voxels of 0.125 mm^3
    assert r.array[4:8, 4:8, 4:8].min() == 3


def test_resample_like_identity_flip_and_permutation() -> None:
    arr = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    v = Volume.from_spacing(arr, (1.0, 2.0, 3.0), origin_mm=(5.0, 6.0, 7.0))
    same = resample_like(v, v, order=0)
    np.testing.assert_array_equal(same.array, arr)
    # reference with i reversed: same voxels, i axis flipped
    flip_aff = v.affine.copy()
    flip_aff[:3, 0] *= -1
    flip_aff[:3, 3] = v.index_to_world([3, 0, 0])
    flipped = resample_like(v, Volume(np.zeros_like(arr), flip_aff), order=0)
    np.testing.assert_array_equal(flipped.array, arr[::-1])
    # reference with axes permuted (k, i, j)
    perm_aff = np.eye(4)
    perm_aff[:3, :3] = v.affine[:3, :3][:, [2, 0, 1]]
    perm_aff[:3, 3] = v.origin
    ref = Volume(np.zeros((2, 4, 3)), perm_aff)
    permuted = resample_like(v, ref, order=1)
    np.testing.assert_allclose(permuted.array, np.transpose(arr, (2, 0, 1)))
    np.testing.assert_array_equal(permuted.affine, ref.affine)


def test_resample_like_half_voxel_shift_and_fill() -> None:
    v = _ramp_i([0, 10, 20, 30], (1.0, 1.0, 1.0))
    ref_aff = np.eye(4)
    ref_aff[0, 3] = 0.25  # centres at x = 0.25, 1.25, ..., 5.25
    ref = Volume(np.zeros((6, 2, 2)), ref_aff)
    r = resample_like(v, ref, order=1)
    # x = 3.25 is within the last voxel's half (edge value); 4.25 and 5.25 lie outside -> fill
    np.testing.assert_allclose(r.array[:, 0, 0], [2.5, 12.5, 22.5, 30, 0, 0])
    r2 = resample_like(v, ref, order=1, fill_value=-1024)
    np.testing.assert_allclose(r2.array[4:, 0, 0], -1024)
    r0 = resample_like(v, ref, order=0)
    np.testing.assert_allclose(r0.array[:, 0, 0], [0, 10, 20, 30, 0, 0])


def test_resample_like_rotated_grid_reproduces_a_linear_field() -> None:
    """Linear interpolation is exact for a field linear in world position (away from edges)."""
    v = Volume.from_spacing(np.zeros((30, 30, 30), np.float32), (1.0, 1.0, 1.0))
    world = v.index_to_world(np.indices(v.shape).reshape(3, -1).T)
    coef = np.array([2.0, -3.0, 0.5])
    field = Volume((world @ coef + 7.0).reshape(v.shape).astype(np.float32), v.affine)
    c, s = np.cos(0.6), np.sin(0.6)
    aff = np.eye(4)
    aff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0.1, 1]]) @ np.diag([0.7, 0.9, 1.3])
    aff[:3, 3] = [12.0, 3.0, 6.0]
    ref = Volume(np.zeros((12, 12, 12)), aff)
    r = resample_like(field, ref, order=1, fill_value=np.nan)
    pts = ref.index_to_world(np.indices(ref.shape).reshape(3, -1).T)
    src = field.world_to_index(pts)
    inner = np.all((src > 0) & (src < 29), axis=1)
    assert inner.mean() > 0.5
    np.testing.assert_allclose(r.array.reshape(-1)[inner], (pts @ coef + 7.0)[inner], atol=1e-3)
    outside = np.any((src < -0.5) | (src > 29.5), axis=1)
    assert np.all(np.isnan(r.array.reshape(-1)[outside]))


def test_real_nodule_crop_keeps_volume_and_hu(shared_data: Path) -> None:
    name = "LIDC-IDRI-0001_R_1.nii.gz"
    ct = read_volume(shared_data / "lidc-nodule-vois" / "image" / name)
    mask = read_volume(shared_data / "lidc-nodule-vois" / "mask" / name)
    ct1 = resample_to_spacing(ct, 1.0)
    m1 = resample_to_spacing(mask, 1.0, order=0)
    assert m1.same_grid(ct1)
    ml = mask.array.astype(bool).sum() * mask.voxel_volume_mm3 / 1000
    ml1 = m1.array.astype(bool).sum() * m1.voxel_volume_mm3 / 1000
    assert ml1 == pytest.approx(ml, rel=0.08)
    hu = ct.array[mask.array > 0].mean()
    hu1 = ct1.array[m1.array > 0].mean()
    assert abs(hu1 - hu) < 40
    back = resample_like(m1, mask, order=0)
    a, b = back.array > 0, mask.array > 0
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice > 0.9


def test_invalid_arguments() -> None:
    v = _ramp_i([0, 1], (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        resample_to_spacing(v, 0.0)
    with pytest.raises(ValueError, match="order"):
        resample_to_spacing(v, 1.0, order=2)

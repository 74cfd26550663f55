"""Volume: the one image type, its geometry helpers and its invariants."""

from __future__ import annotations

import numpy as np
import pytest

from lungspread.volume import LPS_TO_RAS, Volume


def _oblique_affine() -> np.ndarray:
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    a = np.eye(4)
    a[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([0.5, 2.0, 3.0])
    a[:3, 3] = [10.0, -20.0, 30.0]
    return a


def test_from_spacing_places_voxels_by_hand() -> None:
    v = Volume.from_spacing(np.zeros((4, 5, 6)), (0.5, 0.75, 2.0), origin_mm=(1.0, 2.0, 3.0))
    assert v.spacing == (0.5, 0.75, 2.0)
    # voxel (2, 4, 5) -> (1 + 2*0.5, 2 + 4*0.75, 3 + 5*2)
    np.testing.assert_allclose(v.index_to_world([2, 4, 5]), [2.0, 5.0, 13.0])
    np.testing.assert_allclose(v.world_to_index([2.0, 5.0, 13.0]), [2, 4, 5])
    assert v.axis_codes() == ("R", "A", "S")
    assert v.voxel_volume_mm3 == pytest.approx(0.75)
    assert not v.is_oblique


def test_oblique_geometry_by_hand() -> None:
    v = Volume(np.zeros((2, 2, 2)), _oblique_affine())
    np.testing.assert_allclose(v.spacing, (0.5, 2.0, 3.0))
    # axis i points along (cos 30, sin 30, 0): 0.5 mm steps
    np.testing.assert_allclose(
        v.index_to_world([1, 0, 0]), [10 + 0.5 * np.cos(np.pi / 6), -20 + 0.25, 30.0]
    )
    # axis j points along (-sin 30, cos 30, 0): closest to A
    assert v.axis_codes() == ("R", "A", "S")
    assert v.is_oblique
    np.testing.assert_allclose(np.linalg.norm(v.direction, axis=0), 1.0)
    pts = np.array([[0.3, 1.7, -2.0], [5.0, 0.0, 1.0]])
    np.testing.assert_allclose(v.world_to_index(v.index_to_world(pts)), pts, atol=1e-12)


def test_lps_flipped_axes_give_lps_codes() -> None:
    a = LPS_TO_RAS @ np.diag([0.7, 0.7, 2.5, 1.0])  # DICOM-like: i -> L, j -> P
    v = Volume(np.zeros((3, 3, 3), np.int16), a)
    assert v.axis_codes() == ("L", "P", "S")
    assert v.slice_axis() == 2
    np.testing.assert_array_equal(LPS_TO_RAS @ LPS_TO_RAS, np.eye(4))


def test_invalid_volumes_are_refused() -> None:
    with pytest.raises(ValueError, match="3D array"):
        Volume(np.zeros((3, 3)), np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        Volume(np.zeros((3, 3, 3)), np.eye(3))
    singular = np.eye(4)
    singular[2, 2] = 0
    with pytest.raises(ValueError, match="invertible"):
        Volume(np.zeros((3, 3, 3)), singular)
    nan_aff = np.eye(4)
    nan_aff[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Volume(np.zeros((3, 3, 3)), nan_aff)


def test_with_array_and_same_grid() -> None:
    v = Volume(np.zeros((4, 4, 4), np.int16), _oblique_affine(), {"source": "x"})
    m = v.with_array(np.ones((4, 4, 4), np.uint8), kind="mask")
    assert m.same_grid(v)
    assert m.meta == {"source": "x", "kind": "mask"}
    assert m.affine is not v.affine  # a copy, not shared
    with pytest.raises(ValueError, match="differs"):
        v.with_array(np.zeros((4, 4, 3)))
    shifted = Volume(v.array, v.affine + np.pad(np.full((3, 1), 0.01), ((0, 1), (3, 0))))
    assert not shifted.same_grid(v)
    assert shifted.same_grid(v, atol_mm=0.02)

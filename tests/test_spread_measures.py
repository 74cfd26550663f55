"""Geometric measures of lesions, checked against answers computed by hand.

Shapes are sampled at voxel centres in world (RAS) coordinates, so the same shape can be put
on anisotropic, rotated and sheared grids. Conventions (see lungspread.spread.measures): the
outline of a mask lies on the centres of its boundary faces, half a voxel beyond the outer
voxel centres; surface area is the marching-cubes mesh of the 0/1 mask at level 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lungspread.errors import InputError
from lungspread.spread import spread_report
from lungspread.spread.lesions import find_lesions, tumor_array
from lungspread.spread.measures import (
    face_points,
    max_diameter_mm,
    recist_axes,
    sphericity,
    surface_area_mm2,
    volume_ml,
)
from lungspread.volume import Volume

ANISO = (0.7, 0.7, 2.5)


def rotation(deg_z: float, deg_x: float) -> np.ndarray:
    cz, sz = math.cos(math.radians(deg_z)), math.sin(math.radians(deg_z))
    cx, sx = math.cos(math.radians(deg_x)), math.sin(math.radians(deg_x))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1.0]])
    rx = np.array([[1.0, 0, 0], [0, cx, -sx], [0, sx, cx]])
    out: np.ndarray = rz @ rx
    return out


def make_affine(
    spacing: tuple[float, float, float], rot: np.ndarray | None = None, origin=(0.0, 0.0, 0.0)
) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = (np.eye(3) if rot is None else rot) @ np.diag(spacing)
    aff[:3, 3] = origin
    return aff


def world_grid(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """RAS mm of every voxel centre, shape (*shape, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    out: np.ndarray = idx @ affine[:3, :3].T + affine[:3, 3]
    return out


def ellipsoid(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    centre_mm,
    semi_axes_mm,
    axes_rot: np.ndarray | None = None,
) -> np.ndarray:
    """Voxels whose centres lie in an ellipsoid (semi-axes along the rotated world axes)."""
    w = world_grid(shape, affine) - np.asarray(centre_mm, dtype=float)
    if axes_rot is not None:
        w = w @ axes_rot  # coordinates in the ellipsoid's own frame
    q = w / np.asarray(semi_axes_mm, dtype=float)
    out: np.ndarray = (q**2).sum(axis=-1) <= 1.0
    return out


def only_lesion(report: dict) -> dict:
    assert report["totals"]["lesion_count"] == 1
    les: dict = report["lesions"][0]
    return les


# -- boundary points, volume ------------------------------------------------------------------


def test_face_points_of_one_pixel_are_its_four_edge_midpoints() -> None:
    pts = face_points(np.ones((1, 1), dtype=bool))
    assert sorted(map(tuple, pts.tolist())) == [(-0.5, 0.0), (0.0, -0.5), (0.0, 0.5), (0.5, 0.0)]


def test_single_voxel_measures() -> None:
    """One voxel of 0.7 x 0.7 x 2.5 mm: every number follows from the box by hand."""
    aff = make_affine(ANISO)
    m = np.zeros((3, 3, 3), dtype=bool)
    m[1, 1, 1] = True
    les = only_lesion(spread_report(Volume(m.astype(np.uint8), aff)))
    assert les["volume_ml"] == pytest.approx(0.7 * 0.7 * 2.5 / 1000, abs=1e-4)
    assert les["recist_diameter_mm"] == pytest.approx(0.7)
    assert les["short_axis_mm"] == pytest.approx(0.7)
    assert les["max_diameter_mm"] == pytest.approx(2.5)
    # Marching cubes gives an octahedron with vertices at the six face centres: eight triangles
    # with corners (0.35, 0, 0), (0, 0.35, 0), (0, 0, 1.25).
    a, b, c = np.array([0.35, 0, 0]), np.array([0, 0.35, 0]), np.array([0, 0, 1.25])
    tri = 0.5 * np.linalg.norm(np.cross(b - a, c - a))
    assert les["surface_area_mm2"] == pytest.approx(8 * tri, abs=0.01)


def test_volume_uses_the_determinant_of_the_affine() -> None:
    shear = np.eye(4)
    shear[:3, :3] = [[0.8, 0.0, 0.0], [0.0, 0.8, 0.5], [0.0, 0.0, 2.0]]  # gantry-tilt-like
    assert volume_ml(1000, shear) == pytest.approx(1000 * 0.8 * 0.8 * 2.0 / 1000)


# -- cubes: exact answers ---------------------------------------------------------------------


def _box(n=(20, 20, 6), pad=3) -> np.ndarray:
    m = np.zeros(tuple(k + 2 * pad for k in n), dtype=bool)
    m[pad:-pad, pad:-pad, pad:-pad] = True
    return m


def _box_answers(n=(20, 20, 6), s=ANISO) -> dict[str, float]:
    """Hand-computed measures of an n-voxel box with spacing s (face-centre convention)."""
    l1, l2, l3 = (k * sp for k, sp in zip(n, s, strict=True))
    s1, s2, s3 = s
    # Longest in-plane chord between edge midpoints of the square's outline:
    recist = math.hypot(l1, l2 - s2) if l1 >= l2 else math.hypot(l1 - s1, l2)
    # Longest 3D distance: pairs of opposite faces (each keeps the others' centre ranges).
    dmax = max(
        math.sqrt(l1**2 + (l2 - s2) ** 2 + (l3 - s3) ** 2),
        math.sqrt((l1 - s1) ** 2 + l2**2 + (l3 - s3) ** 2),
        math.sqrt((l1 - s1) ** 2 + (l2 - s2) ** 2 + l3**2),
        math.sqrt((l1 - s1 / 2) ** 2 + (l2 - s2 / 2) ** 2 + (l3 - s3) ** 2),
        math.sqrt((l1 - s1 / 2) ** 2 + (l2 - s2) ** 2 + (l3 - s3 / 2) ** 2),
        math.sqrt((l1 - s1) ** 2 + (l2 - s2 / 2) ** 2 + (l3 - s3 / 2) ** 2),
    )
    # Marching cubes at 0.5: flat faces between the outer voxel centres, chamfered edges
    # (width = half the voxel's face diagonal), one triangle per corner.
    faces = 2 * ((l2 - s2) * (l3 - s3) + (l1 - s1) * (l3 - s3) + (l1 - s1) * (l2 - s2))
    edges = 4 * (
        (l3 - s3) * math.hypot(s1 / 2, s2 / 2)
        + (l1 - s1) * math.hypot(s2 / 2, s3 / 2)
        + (l2 - s2) * math.hypot(s1 / 2, s3 / 2)
    )
    a, b, c = np.array([s1 / 2, 0, 0]), np.array([0, s2 / 2, 0]), np.array([0, 0, s3 / 2])
    corner = 0.5 * float(np.linalg.norm(np.cross(b - a, c - a)))
    return {
        "volume_ml": l1 * l2 * l3 / 1000,
        "recist": recist,
        "max": dmax,
        "area": faces + edges + 8 * corner,
        "true_diagonal": math.sqrt(l1**2 + l2**2 + l3**2),
        "true_face_diagonal": math.hypot(l1, l2),
    }


@pytest.mark.parametrize("oblique", [False, True], ids=["aligned", "rotated"])
def test_box_at_anisotropic_spacing_matches_hand_answers(oblique: bool) -> None:
    """20 x 20 x 6 voxels of 0.7 x 0.7 x 2.5 mm = 14 x 14 x 15 mm; rotation changes nothing."""
    rot = rotation(25.0, 12.0) if oblique else None
    vol = Volume(_box().astype(np.uint8), make_affine(ANISO, rot, origin=(-40, 12, 300)))
    assert vol.is_oblique == oblique
    les = only_lesion(spread_report(vol))
    ans = _box_answers()
    assert les["volume_ml"] == pytest.approx(ans["volume_ml"], abs=1e-4)  # 2.94 mL
    assert les["recist_diameter_mm"] == pytest.approx(ans["recist"], abs=0.01)  # 19.31
    assert les["max_diameter_mm"] == pytest.approx(ans["max"], abs=0.01)  # 24.06
    assert les["surface_area_mm2"] == pytest.approx(ans["area"], abs=0.05)  # 1184.17
    # ... and within one voxel size of the real box's diagonals.
    assert abs(les["recist_diameter_mm"] - ans["true_face_diagonal"]) <= 0.7
    assert abs(les["max_diameter_mm"] - ans["true_diagonal"]) <= 2.5
    # The centroid is the box centre mapped through the affine.
    centre = vol.index_to_world(np.array([3 + 9.5, 3 + 9.5, 3 + 2.5]))
    assert les["centroid_mm"] == pytest.approx(centre.tolist(), abs=1e-3)
    cube_sph = math.pi ** (1 / 3) * (6 * ans["volume_ml"] * 1000) ** (2 / 3) / ans["area"]
    assert les["sphericity"] == pytest.approx(cube_sph, abs=1e-3)


# -- spheres and ellipsoids -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spacing", "rot"),
    [
        (ANISO, None),
        ((0.7, 0.7, 1.25), None),
        (ANISO, rotation(30.0, 15.0)),
        ((1.0, 1.0, 1.0), None),
    ],
    ids=["0.7x0.7x2.5", "0.7x0.7x1.25", "oblique-0.7x0.7x2.5", "iso-1mm"],
)
def test_sphere_volume_and_diameters(spacing, rot) -> None:
    r = 15.0
    aff = make_affine(spacing, rot, origin=(-30.0, -30.0, -30.0))
    shape = (90, 90, int(70 / spacing[2]))
    centre = (0.23, -0.41, 1.17)  # not on a voxel centre
    m = ellipsoid(shape, aff, centre, (r, r, r))
    les = only_lesion(spread_report(Volume(m.astype(np.uint8), aff)))
    true_v = 4 / 3 * math.pi * r**3 / 1000
    assert les["volume_ml"] == pytest.approx(true_v, rel=0.01)
    # Diameters within one voxel size: in-plane spacing for RECIST, the largest for 3D.
    assert abs(les["recist_diameter_mm"] - 2 * r) <= max(spacing[:2])
    assert abs(les["short_axis_mm"] - 2 * r) <= max(spacing[:2])
    assert abs(les["max_diameter_mm"] - 2 * r) <= max(spacing)
    assert les["centroid_mm"] == pytest.approx(centre, abs=max(spacing) / 4)
    # Marching cubes on a 0/1 mask follows the voxel staircase: the area reads 0-20 % high.
    area = 4 * math.pi * r**2
    assert area <= les["surface_area_mm2"] <= 1.2 * area
    assert 0.8 <= les["sphericity"] <= 1.0


def test_ellipsoid_rotated_in_plane_long_and_short_axes() -> None:
    """Semi-axes 16 (rotated 30 deg in the axial plane), 7 and 10 mm; 0.7 x 0.7 x 2.5 mm."""
    aff = make_affine(ANISO, origin=(-25.0, -25.0, -20.0))
    rot = rotation(30.0, 0.0)
    m = ellipsoid((72, 72, 16), aff, (0.3, -0.2, 0.6), (16.0, 7.0, 10.0), axes_rot=rot)
    les = only_lesion(spread_report(Volume(m.astype(np.uint8), aff)))
    assert les["volume_ml"] == pytest.approx(4 / 3 * math.pi * 16 * 7 * 10 / 1000, rel=0.01)
    assert abs(les["recist_diameter_mm"] - 32.0) <= 0.7
    assert abs(les["short_axis_mm"] - 14.0) <= 0.7
    assert abs(les["max_diameter_mm"] - 32.0) <= 2.5
    # The long axis runs along the ellipsoid's 30 degree axis on the middle slice.
    ends = np.array(les["recist_axes"]["long_axis_ends_mm"])
    d = ends[1] - ends[0]
    angle = math.degrees(math.atan2(d[1], d[0])) % 180
    assert angle == pytest.approx(30.0, abs=4.0)
    short = np.array(les["recist_axes"]["short_axis_ends_mm"])
    ds = short[1] - short[0]
    cos = abs(np.dot(d, ds)) / (np.linalg.norm(d) * np.linalg.norm(ds))
    assert cos < 1e-3  # perpendicular (end points are rounded to 0.001 mm)


def test_ellipsoid_long_in_z_recist_is_in_plane_but_max_is_3d() -> None:
    aff = make_affine(ANISO, origin=(-12.0, -12.0, -30.0))
    m = ellipsoid((36, 36, 26), aff, (0.1, 0.2, 0.4), (6.0, 6.0, 25.0))
    les = only_lesion(spread_report(Volume(m.astype(np.uint8), aff)))
    assert abs(les["recist_diameter_mm"] - 12.0) <= 0.7
    assert abs(les["max_diameter_mm"] - 50.0) <= 2.5
    # RECIST slice: the largest disc, through the centre (z = 0.4 mm -> index 12.16).
    assert abs(les["recist_axes"]["slice_index"] - 12) <= 1


def test_sheared_grid_diameters_follow_the_affine() -> None:
    """A gantry-tilt shear: slices step 2 mm in z and 0.9 mm in y. A world sphere stays round."""
    aff = np.eye(4)
    aff[:3, :3] = [[0.75, 0.0, 0.0], [0.0, 0.75, 0.9], [0.0, 0.0, 2.0]]
    aff[:3, 3] = (-20.0, -35.0, -20.0)
    m = ellipsoid((54, 80, 20), aff, (0.2, 0.3, 0.1), (12.0, 12.0, 12.0))
    les = only_lesion(spread_report(Volume(m.astype(np.uint8), aff)))
    assert les["volume_ml"] == pytest.approx(4 / 3 * math.pi * 12**3 / 1000, rel=0.01)
    assert abs(les["max_diameter_mm"] - 24.0) <= 2.2  # one voxel diagonal in y-z
    assert abs(les["recist_diameter_mm"] - 24.0) <= 0.75


def test_recist_picks_the_slice_with_the_longest_diameter() -> None:
    """A stepped cone: discs of radius 2, 4, ..., 10 mm on slices 2..6, then smaller again."""
    aff = make_affine((0.5, 0.5, 3.0))
    m = np.zeros((50, 50, 12), dtype=bool)
    xy = world_grid((50, 50, 1), aff)[..., 0, :2] - 12.25
    radii = {2: 2, 3: 4, 4: 6, 5: 8, 6: 10, 7: 5}
    for k, r in radii.items():
        m[:, :, k] = (xy**2).sum(-1) <= r * r
    ax = recist_axes(m, np.zeros(3, dtype=np.int64), aff, 2)
    assert ax.slice_index == 6
    assert abs(ax.long_mm - 20.0) <= 0.5
    assert abs(ax.short_mm - 20.0) <= 0.5


def test_short_axis_of_a_rectangle_on_a_plain_grid() -> None:
    """A 40 x 10 pixel rectangle at 1 mm. Its outline (face centres) runs from the pixel edges
    on the long sides and from half a pixel inside the corners, so the long axis is
    sqrt(40^2 + 9^2) = 41 mm. The longest chord perpendicular to it joins the two long sides
    (10 mm apart) at the long axis's angle: 10 / cos(theta) with cos(theta) = 40 / 41."""
    m = np.zeros((44, 14, 1), dtype=bool)
    m[2:42, 2:12, 0] = True
    ax = recist_axes(m, np.zeros(3, dtype=np.int64), np.eye(4), 2)
    assert ax.long_mm == pytest.approx(41.0, abs=1e-9)
    assert ax.short_mm == pytest.approx(10.0 * 41.0 / 40.0, abs=1e-9)


def test_max_diameter_returns_its_end_points() -> None:
    m = np.zeros((5, 5, 5), dtype=bool)
    m[1:4, 2, 2] = True  # a row of three voxels along i
    d, p, q = max_diameter_mm(m, np.array([10, 0, 0]), make_affine((2.0, 1.0, 1.0)))
    assert d == pytest.approx(6.0)
    assert sorted([p[0], q[0]]) == pytest.approx([21.0, 27.0])  # voxel 11 - 1 mm, voxel 13 + 1


def test_sphericity_formula() -> None:
    r = 3.0
    assert sphericity(4 / 3 * math.pi * r**3, 4 * math.pi * r**2) == pytest.approx(1.0)
    assert math.isnan(sphericity(1.0, 0.0))
    cube_a = 6.0
    assert sphericity(1.0, cube_a) == pytest.approx((math.pi / 6) ** (1 / 3))  # 0.806


def test_surface_area_is_rotation_invariant() -> None:
    m = _box((7, 5, 4), pad=1)
    a0 = surface_area_mm2(m, make_affine(ANISO))
    a1 = surface_area_mm2(m, make_affine(ANISO, rotation(40.0, 20.0)))
    assert a0 == pytest.approx(a1, rel=1e-9)


# -- lesions: components, ordering, mask values ---------------------------------------------


def test_components_26_connected_largest_first() -> None:
    m = np.zeros((10, 10, 10), dtype=bool)
    m[1, 1, 1] = True
    m[2, 2, 2] = True  # touches the first at a corner only
    m[6:9, 6:9, 6:9] = True  # 27 voxels
    les26 = find_lesions(m, 26)
    assert [(les.id, les.voxel_count) for les in les26] == [("L1", 27), ("L2", 2)]
    les6 = find_lesions(m, 6)
    assert [les.voxel_count for les in les6] == [27, 1, 1]
    assert les26[0].indices().min(axis=0).tolist() == [6, 6, 6]
    assert find_lesions(np.zeros((4, 4, 4), dtype=bool)) == []
    with pytest.raises(ValueError, match="connectivity"):
        find_lesions(m, 8)


def test_label_map_is_merged_with_a_note() -> None:
    arr = np.zeros((6, 6, 6), dtype=np.int16)
    arr[1:3, 1:3, 1:3] = 2
    arr[2:4, 1:3, 1:3] = 1
    tumor, notes = tumor_array(Volume.from_spacing(arr, (1, 1, 1)))
    assert tumor.sum() == 12
    assert len(notes) == 1 and "1, 2" in notes[0] and "treated as tumor" in notes[0]
    report = spread_report(Volume.from_spacing(arr, (1, 1, 1)))
    assert report["totals"]["lesion_count"] == 1
    assert report["notes"] == notes


def test_probability_map_and_nan_are_refused() -> None:
    prob = np.zeros((5, 5, 5), dtype=np.float32)
    prob[2, 2, 2] = 0.7
    with pytest.raises(InputError, match="non-integer"):
        tumor_array(Volume.from_spacing(prob, (1, 1, 1), meta={"source": "p.nii.gz"}))
    prob[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        tumor_array(Volume.from_spacing(prob, (1, 1, 1)))
    ok = np.zeros((5, 5, 5), dtype=np.float64)
    ok[1, 1, 1] = 1.0
    tumor, notes = tumor_array(Volume.from_spacing(ok, (1, 1, 1)))
    assert tumor.sum() == 1 and notes == []


def test_empty_mask_gives_an_empty_report() -> None:
    report = spread_report(Volume.from_spacing(np.zeros((8, 8, 8), np.uint8), (1, 1, 1)))
    assert report["lesions"] == []
    assert report["totals"]["tumor_volume_ml"] == 0.0
    assert report["totals"]["recist_targets"] == []
    assert report["totals"]["sum_of_diameters_mm"] == 0.0
    assert report["t_descriptor"]["estimate"] == "T0"

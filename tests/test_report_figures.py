"""Figures: radiological orientation from any affine, physical aspect, and readable PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from export_fixtures import affine_for, chest, report_for
from lungspread.export.mesh import build_meshes, decimated
from lungspread.export.structures import LESION_COLORS, build_structures
from lungspread.report.display import EDGE_LETTERS, DisplayGrid, nice_length_mm
from lungspread.report.figures import lesion_title, make_figures
from lungspread.volume import Volume


def _marker_volume(order: str) -> tuple[Volume, np.ndarray]:
    """A volume with one bright voxel block at the patient's right-anterior-superior corner."""
    shape = (30, 24, 12)
    spacing = (1.0, 1.5, 4.0)
    aff = affine_for(shape, spacing, order)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    xyz = ijk.reshape(-1, 3) @ aff[:3, :3].T + aff[:3, 3]
    x, y, z = (xyz[:, a].reshape(shape) for a in range(3))
    arr = np.zeros(shape, np.int16)
    arr[(x > 8) & (y > 8) & (z > 10)] = 100  # right (+x), anterior (+y), superior (+z)
    return Volume(arr, aff), np.array([0.0, 0.0, 0.0])


@pytest.mark.parametrize("order", ["RAS", "LPS", "PLS", "ILA", "LAI"])
def test_views_follow_the_radiological_convention_for_any_affine(order: str) -> None:
    vol, _ = _marker_volume(order)
    grid = DisplayGrid(vol)
    canon = grid.canonical(vol.array)
    # spacing along patient x, y, z: that of the voxel axis pointing that way
    per_axis = dict(zip(order, (1.0, 1.5, 4.0), strict=True))
    sx = next(v for k, v in per_axis.items() if k in "RL")
    sy = next(v for k, v in per_axis.items() if k in "AP")
    sz = next(v for k, v in per_axis.items() if k in "SI")
    assert grid.spacing == (sx, sy, sz)
    mid = [n // 2 for n in grid.shape]
    expected_corner = {"axial": "top-left", "coronal": "top-left", "sagittal": "top-left"}
    for name, index in (
        ("axial", grid.shape[2] - 1),
        ("coronal", grid.shape[1] - 1),
        ("sagittal", grid.shape[0] - 1),
    ):
        view = grid.view(canon, name, index)
        rows, cols = np.nonzero(view.image)
        h, w = view.image.shape
        # axial: R on the left, A on top; coronal: R left, S top; sagittal: A left, S top
        assert rows.max() < h / 2 and cols.max() < w / 2, (name, expected_corner[name])
        assert view.letters == EDGE_LETTERS[name]
    ax = grid.view(canon, "axial", mid[2])
    cor = grid.view(canon, "coronal", mid[1])
    sag = grid.view(canon, "sagittal", mid[0])
    # physical aspect: pixel sizes in mm and the whole view's size
    assert ax.pixel_mm == (sx, sy) and cor.pixel_mm == (sx, sz) and sag.pixel_mm == (sy, sz)
    nx, _, nz = grid.shape
    assert cor.size_mm == pytest.approx((nx * sx, nz * sz))
    # the cut position is reported in patient mm
    assert ax.position_mm == pytest.approx(grid.world(np.array([0, 0, mid[2]]))[2])


def test_display_point_lands_on_the_voxel() -> None:
    vol, _ = _marker_volume("LPS")
    grid = DisplayGrid(vol)
    canon = grid.canonical(vol.array)
    p = np.array([25, 20, 11])
    for name, index in (("axial", 11), ("coronal", 20), ("sagittal", 25)):
        view = grid.view(canon, name, index)
        x_mm, y_mm = grid.display_point(name, p)
        col, row = int(x_mm / view.pixel_mm[0]), int(y_mm / view.pixel_mm[1])
        assert view.image[row, col] == canon[tuple(p)]


def test_scale_bar_lengths() -> None:
    assert nice_length_mm(360.0) == 50.0
    assert nice_length_mm(60.0) == 10.0
    assert nice_length_mm(12.0) == 2.0


def _png(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


def _has_colour(img: np.ndarray, rgb: tuple[float, float, float], tol: int = 30) -> int:
    target = np.asarray(rgb) * 255
    return int((np.abs(img.astype(int) - target).max(axis=2) < tol).sum())


def test_make_figures_on_a_chest() -> None:
    c = chest()
    report = report_for(c)
    structures = build_structures(c.ct, c.tumor, c.lungs, report)
    meshes = build_meshes(structures, c.ct.affine, lung_max_faces=3000, lesion_max_faces=800)
    light = [(m.structure, *decimated(m, 1500)) for m in meshes]
    figures = make_figures(c.ct, structures, light)
    assert sorted(figures) == [
        "axial_montage.png",
        "lesion_L1.png",
        "lesion_L2.png",
        "render_3d.png",
    ]
    l1 = _png(figures["lesion_L1.png"])
    assert l1.shape[1] >= 1200  # readable size
    assert _has_colour(l1, LESION_COLORS[0]) > 200  # L1's outline, solid
    montage = _png(figures["axial_montage.png"])
    assert _has_colour(montage, LESION_COLORS[0]) > 100
    assert _has_colour(montage, LESION_COLORS[1]) > 30
    render = _png(figures["render_3d.png"])
    # lesions are drawn opaque; shading darkens them, so look for their hue
    red = (render[:, :, 0] > 120) & (render[:, :, 1] < 80) & (render[:, :, 2] < 80)
    assert red.sum() > 500
    l1s = next(s for s in structures if s.lesion_id == "L1")
    title = lesion_title(l1s)
    assert title.startswith("L1: tumor ") and "right lung" in title


def test_no_tumor_gives_no_lesion_figures() -> None:
    c = chest()
    empty = c.tumor.with_array(np.zeros(c.ct.shape, np.uint8))
    structures = build_structures(c.ct, empty, c.lungs)
    assert make_figures(c.ct, structures, None) == {}


def test_lesion_figures_are_capped_to_the_largest() -> None:
    c = chest(shape=(50, 40, 22), spacing=(4.0, 4.0, 6.0))
    structures = build_structures(c.ct, c.tumor, None)
    figures = make_figures(c.ct, structures, None, max_lesion_figures=1)
    assert sorted(figures) == ["axial_montage.png", "lesion_L1.png"]

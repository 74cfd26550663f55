"""Choosing the lung components and telling right from left, even where the lungs touch.

The two lungs usually touch along the anterior (and sometimes posterior) junction line, where
only a pleural fold of a millimetre or two separates them; on a 2 mm grid they are then one air
component. :func:`split_merged` erodes such a component until a large core right of the body's
midline and one left of it appear, and grows them back with a watershed on the depth from the
edge and the HU image, so the border runs through the narrowest part along the junction line.
Sides are decided in patient space: the component whose centroid has the larger world x (RAS+,
towards the patient's right) is the right lung.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from lungspread.lungs._grid import WorkGrid
from lungspread.lungs._morph import fill_holes_per_slice

log = logging.getLogger(__name__)

RIGHT, LEFT = 1, 2

#: Air components smaller than this are never a lung (bowel gas, the oesophagus, noise).
MIN_LUNG_ML = 10.0
#: A second component counts as the other lung when it has at least this fraction of the largest.
SECOND_LUNG_MIN_FRACTION = 0.08
#: A single component holding at least this fraction of its volume on each side is both lungs.
BILATERAL_MIN_FRACTION = 0.15
#: Centroids of two separate lungs lie at least this far apart left to right (mm).
MIN_LUNG_GAP_MM = 40.0
#: Erosion depths tried (in coarse voxels) before falling back to a midline cut.
MAX_EROSIONS = 8


def _world_x(grid: WorkGrid, idx: np.ndarray) -> np.ndarray:
    """World x (RAS mm) of coarse voxel indices (N, 3)."""
    aff = grid.coarse_affine
    out: np.ndarray = idx @ aff[0, :3] + aff[0, 3]
    return out


def select_and_split(
    candidates: np.ndarray, hu: np.ndarray, body: np.ndarray, grid: WorkGrid
) -> np.ndarray:
    """Label map (uint8; 1 right, 2 left) of the lungs among the air ``candidates`` (coarse)."""
    lab, n = ndi.label(candidates)
    out = np.zeros(candidates.shape, dtype=np.uint8)
    if n == 0:
        return out
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    first = int(order[0])
    if sizes[first] * grid.coarse_voxel_ml < MIN_LUNG_ML:
        return out
    mid_x = _midline_x(body, grid)

    def side_fractions(mask: np.ndarray) -> tuple[float, float]:
        xs = _world_x(grid, np.argwhere(mask))
        right = float(np.mean(xs > mid_x)) if xs.size else 0.0
        return right, 1.0 - right

    c1 = lab == first
    r1, l1 = side_fractions(c1)
    second = int(order[1]) if n >= 2 else 0
    two = False
    if second:
        big_enough = sizes[second] * grid.coarse_voxel_ml >= MIN_LUNG_ML
        if big_enough and sizes[second] >= SECOND_LUNG_MIN_FRACTION * sizes[first]:
            c2 = lab == second
            gap = abs(_centroid_x(c1, grid) - _centroid_x(c2, grid))
            two = gap >= MIN_LUNG_GAP_MM and _z_overlap(c1, c2)
    if two:
        parts = [c1, lab == second]
    elif min(r1, l1) >= BILATERAL_MIN_FRACTION:
        log.info("the lungs touch; splitting one air component into right and left")
        parts = split_merged(c1, hu, grid, mid_x)
    else:
        log.warning("only one lung found (%.0f%% of it right of the midline)", 100 * r1)
        out[c1] = RIGHT if r1 > 0.5 else LEFT
        return out
    # two lungs: the one further towards the patient's right (+x in RAS) is the right lung
    xa, xb = (_centroid_x(p, grid) for p in parts)
    right, left = (parts[0], parts[1]) if xa > xb else (parts[1], parts[0])
    out[right] = RIGHT
    out[left] = LEFT
    return out


def _centroid_x(mask: np.ndarray, grid: WorkGrid) -> float:
    idx = np.argwhere(mask)
    return float(np.mean(_world_x(grid, idx))) if idx.size else float("nan")


def _world_x_grid(grid: WorkGrid, shape: tuple[int, ...]) -> np.ndarray:
    """World x (RAS mm) of every coarse voxel, by broadcasting the affine's first row."""
    a = grid.coarse_affine[0]
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    out: np.ndarray = (
        a[0] * i[:, None, None] + a[1] * j[None, :, None] + a[2] * k[None, None, :] + a[3]
    )
    return out


def _z_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    ka = np.nonzero(a.any(axis=(0, 1)))[0]
    kb = np.nonzero(b.any(axis=(0, 1)))[0]
    lo, hi = max(ka[0], kb[0]), min(ka[-1], kb[-1])
    return bool(hi - lo + 1 >= 0.3 * min(ka.size, kb.size))


def _midline_x(body: np.ndarray, grid: WorkGrid) -> float:
    """World x of the body's left-right centre (mean over the filled body)."""
    cnt = body.sum(axis=(1, 2)).astype(np.float64)
    if cnt.sum() == 0:
        return float(grid.coarse_affine[0, 3])
    ci = float((np.arange(body.shape[0]) * cnt).sum() / cnt.sum())
    cj = (body.shape[1] - 1) / 2.0
    ck = (body.shape[2] - 1) / 2.0
    return float(_world_x(grid, np.array([[ci, cj, ck]]))[0])


def split_merged(
    mask: np.ndarray, hu: np.ndarray, grid: WorkGrid, mid_x: float
) -> list[np.ndarray]:
    """Split one air component holding both lungs into two masks.

    The component with its vessels filled is eroded (keeping what lies deeper than 1, 2, ...
    coarse voxels from its edge) until it falls apart into a core right of the body's midline
    and a core left of it, each at least 5% of the volume;
    a watershed from those two cores on (minus the distance to the edge, plus a little HU)
    then gives every voxel to one of them, so the border runs through the narrowest part,
    along the brighter junction line where one is visible. Falls back to a cut at the midline.
    """
    from skimage.segmentation import watershed

    box = _box(mask, 1)
    m = mask[box]
    solid = fill_holes_per_slice(m)
    right_side = (_world_x_grid(grid, mask.shape)[box] > mid_x).ravel()
    total = int(solid.sum())
    # eroding by d mm is keeping the voxels deeper than d: one distance transform for all
    depth = ndi.distance_transform_edt(solid, sampling=grid.coarse_spacing_mm)
    unit = min(grid.coarse_spacing_mm)
    for step in range(1, MAX_EROSIONS + 1):
        lab, n = ndi.label(depth > step * unit)
        if n < 2:
            continue
        flat = lab.ravel()
        sizes = np.bincount(flat, minlength=n + 1).astype(np.float64)
        on_right = np.bincount(flat, weights=right_side, minlength=n + 1) / np.maximum(sizes, 1)
        sizes[0] = 0
        big = sizes >= 0.05 * total
        r_ids = np.nonzero(big & (on_right > 0.5))[0]
        l_ids = np.nonzero(big & (on_right <= 0.5))[0]
        if r_ids.size == 0 or l_ids.size == 0:
            continue
        markers = np.zeros(m.shape, dtype=np.int32)
        markers[lab == r_ids[np.argmax(sizes[r_ids])]] = 1
        markers[lab == l_ids[np.argmax(sizes[l_ids])]] = 2
        # 50 HU of a junction line weigh as much as 1 mm of depth
        relief = (hu[box] / 50.0 - depth).astype(np.float32)
        ws = watershed(relief, markers=markers, mask=solid)
        log.info("lungs separated %.0f mm deep", step * unit)
        parts = []
        for v in (1, 2):
            full = np.zeros(mask.shape, dtype=bool)
            full[box] = (ws == v) & m
            parts.append(full)
        return parts
    log.warning("could not separate the lungs by erosion; cutting at the body midline")
    xs = _world_x_grid(grid, mask.shape)
    return [mask & (xs > mid_x), mask & (xs <= mid_x)]


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.nonzero(mask.any(axis=other))[0]
        out.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + pad + 1, mask.shape[ax])))
    return tuple(out)

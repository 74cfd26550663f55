"""Trachea and main bronchi on the coarse grid: find the trachea near the top, follow it down.

The trachea is the round air tube in the middle of the neck and upper chest. It is found in the
upper slices as an air component of trachea size near the body's left-right centre that goes on
for several slices, then followed slice by slice towards the feet: every air component of the
next slice that overlaps the airway of the previous one and is not much larger than the trachea
is airway (this follows the carina and both main bronchi); a branch stops where its component
becomes large, which is where the bronchus opens into the lung.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage as ndi

from lungspread.lungs._grid import WorkGrid
from lungspread.lungs._morph import inplane_structure

log = logging.getLogger(__name__)

#: Cross-section of an adult trachea is about 150-450 mm^2 (diameter 14-24 mm).
TRACHEA_AREA_MM2 = (50.0, 900.0)
#: Air of the airway lumen on the coarse grid (stricter than the lung threshold).
LUMEN_HU = -750.0
#: The seed must continue as a tube for at least this length (mm).
TRACHEA_MIN_LENGTH_MM = 15.0


def find_airway(
    hu: np.ndarray, body: np.ndarray, grid: WorkGrid, lumen_threshold_hu: float = LUMEN_HU
) -> np.ndarray:
    """Trachea + main bronchi lumen as a coarse boolean mask (empty if no trachea is found).

    ``hu`` is the coarse HU image and ``body`` the filled body (canonical order). The lumen is
    taken below ``lumen_threshold_hu``, stricter than the lung threshold: on a 2 mm grid the
    thin tracheal wall averages with the air on both sides and would otherwise join the
    trachea to a lung that touches it.
    """
    air = body & (hu < lumen_threshold_hu)
    sx, sy, sz = grid.coarse_spacing_mm
    px_mm2 = sx * sy
    nz = air.shape[2]
    lab, n = ndi.label(air, structure=inplane_structure(1))
    if n == 0:
        return np.zeros_like(air)
    area_mm2 = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64) * px_mm2
    # slices from head to feet
    top_down = list(range(nz - 1, -1, -1)) if grid.superior_sign > 0 else list(range(nz))
    min_slices = max(2, int(np.ceil(TRACHEA_MIN_LENGTH_MM / sz)))

    seed_pos = None
    for pos, k in enumerate(top_down[: max(min_slices, nz // 2)]):
        seed = _trachea_candidate(lab[:, :, k], body[:, :, k], area_mm2, sx)
        if seed is None:
            continue
        # it must continue as a tube of similar size for ``min_slices`` slices
        path = _track(lab, area_mm2, top_down[pos:], seed, max_area_mm2=2.0 * area_mm2[seed])
        if len(path) >= min_slices:
            seed_pos = pos
            break
    if seed_pos is None:
        log.info("no trachea found in the upper slices; airway removal skipped")
        return np.zeros_like(air)
    k0 = top_down[seed_pos]
    seed_label = _trachea_candidate(lab[:, :, k0], body[:, :, k0], area_mm2, sx)
    assert seed_label is not None
    ref = area_mm2[seed_label]
    # reference trachea area: median over its first slices (the seed slice may be the larynx)
    first = _track(lab, area_mm2, top_down[seed_pos:], seed_label, max_area_mm2=2.0 * ref)
    ref = float(np.median([sum(area_mm2[x] for x in labs) for labs in first[:min_slices]]))
    cap = max(3.0 * ref, 600.0)
    path = _track(lab, area_mm2, top_down[seed_pos:], seed_label, max_area_mm2=cap)
    keep = np.zeros(n + 1, dtype=bool)
    for labels in path:
        keep[list(labels)] = True
    airway: np.ndarray = keep[lab]
    log.info(
        "trachea found: %d slices, cross-section about %.0f mm^2, %.1f mL of airway",
        len(path),
        ref,
        airway.sum() * grid.coarse_voxel_ml,
    )
    return airway


def _trachea_candidate(
    lab2d: np.ndarray, body2d: np.ndarray, area_mm2: np.ndarray, sx_mm: float
) -> int | None:
    """The most central trachea-sized, roughly round air component of one slice, if any."""
    labels = np.unique(lab2d)
    labels = labels[labels > 0]
    if labels.size == 0 or not body2d.any():
        return None
    cols = np.nonzero(body2d.any(axis=1))[0]
    body_cx = float(np.nonzero(body2d)[0].mean())
    width = float(cols[-1] - cols[0] + 1)
    tol_px = max(0.15 * width, 25.0 / sx_mm)
    best, best_d = None, np.inf
    for lbl in labels:
        a = area_mm2[lbl]
        if not (TRACHEA_AREA_MM2[0] <= a <= TRACHEA_AREA_MM2[1]):
            continue
        ii, jj = np.nonzero(lab2d == lbl)
        d = abs(float(ii.mean()) - body_cx)
        if d > tol_px:
            continue
        # roughly round: fills a good part of its bounding box, not a thin sliver
        h, w = ii.max() - ii.min() + 1, jj.max() - jj.min() + 1
        if ii.size < 0.45 * h * w or max(h, w) > 3 * min(h, w):
            continue
        if d < best_d:
            best, best_d = int(lbl), d
    return best


def _track(
    lab: np.ndarray,
    area_mm2: np.ndarray,
    slices: list[int],
    seed: int,
    max_area_mm2: float,
) -> list[set[int]]:
    """Follow airway components from ``seed`` through ``slices`` (head to feet).

    A component of the next slice continues the airway when it overlaps the (slightly
    dilated) airway of the previous slice, is at most ``max_area_mm2`` and at most about 1.6
    times the airway it continues (the carina widens; a bronchus opening into a lung jumps).
    """
    path: list[set[int]] = [{seed}]
    prev = lab[:, :, slices[0]]
    current = prev == seed
    grow = ndi.generate_binary_structure(2, 2)
    for k in slices[1:]:
        footprint = ndi.binary_dilation(current, structure=grow)
        nxt = lab[:, :, k]
        found: set[int] = set()
        for x in {int(v) for v in np.unique(nxt[footprint]) if v > 0}:
            if area_mm2[x] > max_area_mm2:
                continue
            near = ndi.binary_dilation(nxt == x, structure=grow) & current
            before = sum(area_mm2[int(v)] for v in np.unique(prev[near]) if v > 0)
            if area_mm2[x] <= 1.6 * before + 40.0:
                found.add(x)
        if not found:
            break
        path.append(found)
        prev = nxt
        current = np.isin(nxt, list(found))
    return path

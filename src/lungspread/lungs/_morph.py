"""Small morphology helpers shared by the lung pipeline (canonical axis 2 = slices)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def inplane_structure(connectivity: int = 1) -> np.ndarray:
    """3x3x3 structure connecting voxels within an axial slice only (canonical axis 2)."""
    s = np.zeros((3, 3, 3), dtype=bool)
    s[:, :, 1] = ndi.generate_binary_structure(2, connectivity)
    return s


def capped(
    cand: np.ndarray,
    lung: np.ndarray,
    down: int,
    look_slices: int,
    box: tuple[slice, slice, slice] | None = None,
    min_fraction: float = 0.5,
) -> np.ndarray:
    """The 3D pieces of ``cand`` (per-slice regions stacked over slices) closed by ``lung``
    below: within ``look_slices`` slices beyond the piece's lowest slice (``down`` is the
    step of the slice index towards the feet, -1 or +1), some slice has lung over at least
    ``min_fraction`` of that slice's footprint. ``cand`` lies at ``box`` inside ``lung``
    (default: the same grid).

    A tumor is bounded by lung below (a few slices of it may lie beyond a stack of hollows
    that stops early); the top of the diaphragm's dome, or the heart seen through a crescent
    of lung, continue into the abdomen. Above, an apical tumor may reach the lung's top.
    """
    if box is None:
        box = (slice(0, lung.shape[0]), slice(0, lung.shape[1]), slice(0, lung.shape[2]))
    struct = inplane_structure(2)
    struct[1, 1, :] = True
    lab, _ = ndi.label(cand, structure=struct)
    out = np.zeros_like(cand)
    k0 = box[2].start
    nk = lung.shape[2]
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        piece = lab[sl] == i
        end = 0 if down < 0 else piece.shape[2] - 1
        k_end = k0 + sl[2].start + end
        if _closed_beyond(
            piece[:, :, end], lung, box, sl, k_end, down, look_slices, min_fraction, nk
        ):
            out[sl] |= piece
    return out


def _closed_beyond(
    foot: np.ndarray,
    lung: np.ndarray,
    box: tuple[slice, slice, slice],
    sl: tuple[slice, ...],
    k_end: int,
    step: int,
    look_slices: int,
    min_fraction: float,
    nk: int,
) -> bool:
    need = min_fraction * np.count_nonzero(foot)
    for d in range(1, look_slices + 1):
        k = k_end + step * d
        if not 0 <= k < nk:
            return False
        beyond = lung[box[0], box[1], k][sl[0], sl[1]]
        if np.count_nonzero(beyond & foot) >= need:
            return True
    return False


def fill_holes_per_slice(
    mask: np.ndarray,
    max_fraction: float = 0.5,
    small_px: float = np.inf,
    down: int = -1,
    look_slices: int = 1,
) -> np.ndarray:
    """Fill the holes of each axial slice (vessels, nodules).

    Holes of at most ``small_px`` pixels are filled. Larger ones only when smaller than
    ``max_fraction`` of the slice's mask area and, stacked over slices, closed by the mask
    below (:func:`capped`; ``down`` and ``look_slices`` as there). Near the lung base a
    ring of lung can enclose the top of the diaphragm's dome in a few slices: that hole
    continues into the abdomen and stays open.
    """
    holes = ndi.binary_fill_holes(mask, structure=inplane_structure(1)) & ~mask
    if not holes.any():
        return mask.copy()
    lab, n = ndi.label(holes, structure=inplane_structure(1))
    flat = lab.ravel()
    sizes = np.bincount(flat, minlength=n + 1).astype(np.float64)
    kk = np.broadcast_to(np.arange(mask.shape[2], dtype=np.float64), mask.shape).ravel()
    k_of = np.rint(np.bincount(flat, weights=kk, minlength=n + 1) / np.maximum(sizes, 1))
    area = mask.sum(axis=(0, 1)).astype(np.float64)
    fits = sizes <= max_fraction * area[k_of.astype(np.int64)]
    small = fits & (sizes <= small_px)
    small[0] = False
    out: np.ndarray = mask | small[lab]
    big = fits & ~small
    big[0] = False
    if big.any():
        out |= capped(big[lab], mask, down, look_slices)
    return out

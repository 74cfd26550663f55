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
    box: tuple[slice, slice, slice] | None = None,
    min_fraction: float = 0.5,
) -> np.ndarray:
    """The 3D pieces of ``cand`` (per-slice regions stacked over slices) closed by ``lung`` at
    both ends: at least ``min_fraction`` of the piece's first and of its last slice has lung
    in the slice beyond. ``cand`` lies at ``box`` inside ``lung`` (default: the same grid).

    A tumor is bounded by lung above and below; the top of the diaphragm's dome, or the heart
    seen through a crescent of lung, continue below the lung.
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
        closed = True
        for end, step in ((0, -1), (piece.shape[2] - 1, 1)):
            k_beyond = k0 + sl[2].start + end + step
            if not 0 <= k_beyond < nk:
                closed = False
                break
            foot = piece[:, :, end]
            beyond = lung[box[0], box[1], k_beyond][sl[0], sl[1]]
            if np.count_nonzero(beyond & foot) < min_fraction * np.count_nonzero(foot):
                closed = False
                break
        if closed:
            out[sl] |= piece
    return out


def fill_holes_per_slice(
    mask: np.ndarray, max_fraction: float = 0.5, small_px: float = np.inf
) -> np.ndarray:
    """Fill the holes of each axial slice (vessels, nodules).

    Holes of at most ``small_px`` pixels are filled. Larger ones only when smaller than
    ``max_fraction`` of the slice's mask area and, stacked over slices, closed by the mask at
    both ends (:func:`capped`). Near the lung base a ring of lung can enclose the top of the
    diaphragm's dome in a few slices: that hole continues into the abdomen and stays open.
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
        out |= capped(big[lab], mask)
    return out

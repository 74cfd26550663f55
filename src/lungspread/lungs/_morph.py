"""Small morphology helpers shared by the lung pipeline (canonical axis 2 = slices)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def inplane_structure(connectivity: int = 1) -> np.ndarray:
    """3x3x3 structure connecting voxels within an axial slice only (canonical axis 2)."""
    s = np.zeros((3, 3, 3), dtype=bool)
    s[:, :, 1] = ndi.generate_binary_structure(2, connectivity)
    return s


def fill_holes_per_slice(mask: np.ndarray, max_fraction: float = 0.5) -> np.ndarray:
    """Fill the holes of each axial slice that are smaller than ``max_fraction`` of the slice's
    mask area (vessels, nodules). Near the lung base a thin ring of lung can enclose the top of
    the diaphragm's dome in one slice; that hole is large next to the ring and stays open.
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
    keep = sizes <= max_fraction * area[k_of.astype(np.int64)]
    keep[0] = False
    out: np.ndarray = mask | keep[lab]
    return out

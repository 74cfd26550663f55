"""Working grid of the lung pipeline: a canonical axis order and a coarse block-mean copy.

The pipeline never assumes which array axis is which: :func:`canonical_grid` reads the affine,
permutes the voxel axes (a view, no copy) so that axis 0 is the one closest to the patient's
left-right axis, axis 1 to anterior-posterior and axis 2 to superior-inferior, and records the
sign along S so that "top" means superior. Directions along x and y are never needed: left and
right are decided from world coordinates through the affine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lungspread.volume import Volume

#: HU used for voxels outside the scanner's field of view (-2048, -3024 padding) before averaging.
AIR_FLOOR_HU = -1024.0


@dataclass(frozen=True)
class WorkGrid:
    """How the input array maps onto the canonical full-resolution and coarse working grids."""

    perm: tuple[int, int, int]
    """``canonical axis c`` is ``input axis perm[c]``."""
    full_shape: tuple[int, int, int]
    """Canonical full-resolution shape."""
    spacing_mm: tuple[float, float, float]
    """Canonical full-resolution voxel size."""
    factors: tuple[int, int, int]
    """Block size (voxels of the full grid per coarse voxel) along each canonical axis."""
    coarse_shape: tuple[int, int, int]
    full_affine: np.ndarray
    """Canonical full-resolution voxel index -> RAS mm."""
    superior_sign: int
    """+1 when increasing canonical k moves towards the patient's head, else -1."""

    @property
    def coarse_spacing_mm(self) -> tuple[float, float, float]:
        s, f = self.spacing_mm, self.factors
        return (s[0] * f[0], s[1] * f[1], s[2] * f[2])

    @property
    def coarse_affine(self) -> np.ndarray:
        """Coarse voxel index -> RAS mm (a coarse voxel's centre is its block's centre)."""
        scale = np.eye(4)
        for a in range(3):
            scale[a, a] = self.factors[a]
            scale[a, 3] = (self.factors[a] - 1) / 2.0
        out: np.ndarray = self.full_affine @ scale
        return out

    @property
    def coarse_voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.coarse_affine[:3, :3]))) / 1000.0

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """A view of an input-ordered array in canonical axis order."""
        return np.transpose(array, self.perm)

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """A canonical-ordered array back in the input's axis order (C-contiguous copy)."""
        return np.ascontiguousarray(np.transpose(array, np.argsort(self.perm)))


def canonical_grid(ct: Volume, target_spacing_mm: tuple[float, float, float]) -> WorkGrid:
    """Axis permutation (closest to x, y, z) and block factors for ``target_spacing_mm``.

    Each factor is the smallest whole number that makes the coarse spacing at least 80% of the
    target (0.68 mm -> 3 blocks = 2.05 mm; 1.36 mm -> 2 = 2.73 mm; 1.25 mm slices -> 2).
    """
    direction = np.abs(ct.direction)  # rows: world x, y, z; columns: voxel axes
    ax_z = int(np.argmax(direction[2]))
    rest = [a for a in range(3) if a != ax_z]
    ax_x = rest[0] if direction[0, rest[0]] >= direction[0, rest[1]] else rest[1]
    ax_y = rest[1] if ax_x == rest[0] else rest[0]
    perm = (ax_x, ax_y, ax_z)
    spacing = tuple(float(ct.spacing[a]) for a in perm)
    shape = tuple(int(ct.shape[a]) for a in perm)
    factors = tuple(
        max(1, min(math.ceil(0.8 * t / s - 1e-9), n))
        for t, s, n in zip(target_spacing_mm, spacing, shape, strict=True)
    )
    coarse = tuple(max(1, n // f) for n, f in zip(shape, factors, strict=True))
    full_affine = ct.affine.copy()
    full_affine[:3, :3] = ct.affine[:3, list(perm)]
    sup = 1 if ct.affine[2, ax_z] > 0 else -1
    return WorkGrid(
        perm=perm,
        full_shape=(shape[0], shape[1], shape[2]),
        spacing_mm=(spacing[0], spacing[1], spacing[2]),
        factors=(int(factors[0]), int(factors[1]), int(factors[2])),
        coarse_shape=(coarse[0], coarse[1], coarse[2]),
        full_affine=full_affine,
        superior_sign=sup,
    )


def block_mean(canon: np.ndarray, grid: WorkGrid) -> np.ndarray:
    """Coarse HU image: the mean of each block (float32), padding clipped to -1024 HU first.

    Voxels beyond the last whole block (fewer than one block per axis) are left out; the
    upsampling gives them the label of the last block.
    """
    f0, f1, f2 = grid.factors
    n0, n1, n2 = grid.coarse_shape
    acc = np.zeros((n0, n1, n2), dtype=np.float32)
    for a in range(f0):
        for b in range(f1):
            for c in range(f2):
                sub = canon[a : n0 * f0 : f0, b : n1 * f1 : f1, c : n2 * f2 : f2]
                acc += np.maximum(sub, AIR_FLOOR_HU, dtype=np.float32)
    acc /= float(f0 * f1 * f2)
    return acc


def full_index(coarse_len: int, factor: int, full_len: int) -> np.ndarray:
    """For each full-resolution index along one axis, the coarse index it belongs to."""
    return np.minimum(np.arange(full_len) // factor, coarse_len - 1)

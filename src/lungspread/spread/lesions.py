"""Lesions: the connected components of a tumor mask, largest first.

A *lesion* is one connected component of the nonzero voxels of a tumor mask, with
26-connectivity by default (voxels that share a face, an edge or a corner belong together),
so a lesion drawn slice by slice whose outlines only touch diagonally stays one lesion.
Lesions are numbered ``"L1"``, ``"L2"``, ... by decreasing voxel count; ties keep the order in
which the voxels are first met scanning the array in C order, so the numbering is deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from lungspread.errors import InputError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: Connectivity -> rank of scipy's ``generate_binary_structure`` (6 faces, 18 +edges, 26 +corners).
CONNECTIVITY_RANK = {6: 1, 18: 2, 26: 3}


@dataclass(frozen=True, eq=False)
class Lesion:
    """One connected component: its id, its bounding box in the full grid and its voxels there."""

    id: str
    slices: tuple[slice, slice, slice]
    mask: np.ndarray  # bool, shape of the bounding box

    @property
    def offset(self) -> np.ndarray:
        """Voxel index of the bounding box's first corner, (3,) int."""
        return np.array([s.start for s in self.slices], dtype=np.int64)

    @property
    def voxel_count(self) -> int:
        return int(np.count_nonzero(self.mask))

    def indices(self) -> np.ndarray:
        """Voxel indices (N, 3) of the lesion in the full grid."""
        out: np.ndarray = np.argwhere(self.mask) + self.offset
        return out

    def padded_slices(
        self, margin: tuple[int, int, int], shape: tuple[int, int, int]
    ) -> tuple[slice, slice, slice]:
        """The bounding box grown by ``margin`` voxels per axis, clipped to ``shape``."""
        out = tuple(
            slice(max(s.start - m, 0), min(s.stop + m, n))
            for s, m, n in zip(self.slices, margin, shape, strict=True)
        )
        return (out[0], out[1], out[2])

    def mask_in(self, region: tuple[slice, slice, slice]) -> np.ndarray:
        """The lesion's voxels as a bool array over ``region`` (which must contain the box)."""
        shape = tuple(r.stop - r.start for r in region)
        out = np.zeros(shape, dtype=bool)
        inner = tuple(
            slice(s.start - r.start, s.stop - r.start)
            for s, r in zip(self.slices, region, strict=True)
        )
        out[inner] = self.mask
        return out


def tumor_array(mask: Volume) -> tuple[np.ndarray, list[str]]:
    """The tumor voxels of ``mask`` as a bool array, and notes about how it was read.

    Accepted: bool, integer or float arrays whose values are whole numbers. Nonzero voxels are
    tumor. A label map (values other than 0 and 1) is accepted with a note, because all its
    labels are merged. Non-integer values (a probability map) and NaN are refused: threshold
    them first, the choice of threshold changes every measure.
    """
    arr = mask.array
    source = mask.meta.get("source")
    notes: list[str] = []
    if arr.dtype == np.bool_:
        return arr, notes
    if arr.dtype.kind not in "iuf":
        raise InputError(f"tumor mask must hold numbers, found dtype {arr.dtype}", source)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError("tumor mask holds NaN or infinite values; expected 0/1", source)
    tumor = arr != 0
    box = bounding_box(tumor)
    if box is None:
        return tumor, notes
    # Boolean indexing of a whole (Fortran-ordered) grid is slow: look at the tumor's box only.
    values = np.unique(arr[box][tumor[box]])
    if arr.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise InputError(
            "tumor mask holds non-integer values (a probability map?); expected 0/1 "
            "labels, threshold it first",
            source,
        )
    if not (values.size == 1 and values[0] == 1):
        shown = ", ".join(f"{v:g}" for v in values[:10]) + (", ..." if values.size > 10 else "")
        note = (
            f"tumor mask holds values other than 0 and 1 ({shown}); every nonzero voxel was "
            "treated as tumor"
        )
        log.warning(note)
        notes.append(note)
    return tumor, notes


def bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Smallest box holding every true voxel of a 3D bool array (None when there is none)."""
    box = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return (box[0], box[1], box[2])


def find_lesions(tumor: np.ndarray, connectivity: int = 26) -> list[Lesion]:
    """Connected components of the bool array ``tumor``, largest first, ids ``L1``, ``L2``, ..."""
    if connectivity not in CONNECTIVITY_RANK:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    if tumor.ndim != 3:
        raise ValueError(f"tumor mask must be 3D, got shape {tumor.shape}")
    if not tumor.any():
        return []
    # Label only the bounding box of the tumor voxels: full CT grids are large.
    box = bounding_box(tumor)
    assert box is not None
    crop = tumor[box]
    structure = ndi.generate_binary_structure(3, CONNECTIVITY_RANK[connectivity])
    labels, n = ndi.label(crop, structure=structure)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = sorted(range(n), key=lambda i: (-int(counts[i]), i))
    objects = ndi.find_objects(labels)
    lesions: list[Lesion] = []
    for rank, i in enumerate(order, start=1):
        sl = objects[i]
        assert sl is not None
        local = labels[sl] == (i + 1)
        full = tuple(
            slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sl, strict=True)
        )
        lesions.append(Lesion(id=f"L{rank}", slices=(full[0], full[1], full[2]), mask=local))
    return lesions

"""Images in the radiological display convention, from any voxel order.

Every picture lungspread draws goes through :class:`DisplayGrid`: the volume is re-indexed (by
axis permutation and flips only, no resampling) so that its axes run towards patient Right,
Anterior and Superior, and 2D views are cut from that in the conventions radiologists read:

* axial: patient's right on the image's left, anterior at the top (viewed from the feet);
* coronal: patient's right on the image's left, superior at the top (viewed from the front);
* sagittal: anterior on the image's left, superior at the top.

Each view comes with its pixel size in mm (width, height), so images are drawn with their true
physical aspect ratio even when the slices are thicker than the pixels. An oblique volume is
shown along its nearest patient axes (not resampled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungspread.volume import Volume

#: Lung window (level -600 HU, width 1500 HU).
LUNG_WINDOW_HU = (-1350.0, 150.0)

#: Letters at the (left, right, top, bottom) edges of each view.
EDGE_LETTERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}


@dataclass(frozen=True)
class View:
    """A 2D image cut for display: ``image[row, col]`` with row 0 at the top."""

    name: str  # axial, coronal, sagittal
    image: np.ndarray
    pixel_mm: tuple[float, float]  # (width, height) of one pixel
    position_mm: float  # RAS coordinate of the cut along the view's normal axis
    letters: tuple[str, str, str, str]

    @property
    def size_mm(self) -> tuple[float, float]:
        h, w = self.image.shape[:2]
        return (w * self.pixel_mm[0], h * self.pixel_mm[1])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """matplotlib ``imshow`` extent (left, right, bottom, top) in mm, origin upper."""
        w, h = self.size_mm
        return (0.0, w, h, 0.0)


class DisplayGrid:
    """A volume (and any masks on its grid) re-indexed to RAS axis order, for cutting views."""

    def __init__(self, reference: Volume) -> None:
        from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

        self.reference = reference
        self._ornt = ornt_transform(io_orientation(reference.affine), axcodes2ornt("RAS"))
        spacing = np.asarray(reference.spacing)
        sp = np.zeros(3)
        for src, (dst, _flip) in enumerate(self._ornt):
            sp[int(dst)] = spacing[src]
        self.spacing = (float(sp[0]), float(sp[1]), float(sp[2]))
        shape = reference.shape
        self.shape = tuple(int(shape[int(np.where(self._ornt[:, 0] == a)[0][0])]) for a in range(3))
        # canonical index -> RAS mm (nearest-axis approximation for oblique volumes)
        inv = self._canonical_to_original()
        self.affine = reference.affine @ inv

    def _canonical_to_original(self) -> np.ndarray:
        """4x4 matrix mapping a canonical index to the original voxel index."""
        m = np.zeros((4, 4))
        m[3, 3] = 1.0
        for src, (dst, flip) in enumerate(self._ornt):
            d = int(dst)
            n = self.reference.shape[src]
            if flip < 0:
                m[src, d] = -1.0
                m[src, 3] = n - 1
            else:
                m[src, d] = 1.0
        return m

    def canonical(self, array: np.ndarray) -> np.ndarray:
        """``array`` (on the reference grid) viewed in RAS axis order (a view, no copy)."""
        from nibabel.orientations import apply_orientation

        out: np.ndarray = apply_orientation(array, self._ornt)
        return out

    def to_canonical_index(self, ijk: np.ndarray) -> np.ndarray:
        """Original voxel index -> canonical index."""
        inv = np.linalg.inv(self._canonical_to_original())
        out: np.ndarray = inv[:3, :3] @ np.asarray(ijk, dtype=float) + inv[:3, 3]
        return out

    def world(self, canonical_ijk: np.ndarray) -> np.ndarray:
        out: np.ndarray = (
            self.affine[:3, :3] @ np.asarray(canonical_ijk, float) + self.affine[:3, 3]
        )
        return out

    def view(self, canonical: np.ndarray, name: str, index: int) -> View:
        """Cut view ``name`` at canonical ``index`` along its normal axis from a canonical array."""
        sx, sy, sz = self.spacing
        if name == "axial":
            image = canonical[::-1, ::-1, index].T
            pixel = (sx, sy)
            pos = self.world(np.array([0.0, 0.0, index]))[2]
        elif name == "coronal":
            image = canonical[::-1, index, ::-1].T
            pixel = (sx, sz)
            pos = self.world(np.array([0.0, index, 0.0]))[1]
        elif name == "sagittal":
            image = canonical[index, ::-1, ::-1].T
            pixel = (sy, sz)
            pos = self.world(np.array([index, 0.0, 0.0]))[0]
        else:
            raise ValueError(f"unknown view {name!r}; expected axial, coronal or sagittal")
        return View(name, image, pixel, float(pos), EDGE_LETTERS[name])

    def display_point(self, name: str, canonical_ijk: np.ndarray) -> tuple[float, float]:
        """Where a canonical voxel centre falls in view ``name``: (x, y) in mm from the top left."""
        x, y, z = (float(v) for v in canonical_ijk)
        nx, ny, nz = self.shape
        sx, sy, sz = self.spacing
        if name == "axial":
            return ((nx - 1 - x + 0.5) * sx, (ny - 1 - y + 0.5) * sy)
        if name == "coronal":
            return ((nx - 1 - x + 0.5) * sx, (nz - 1 - z + 0.5) * sz)
        if name == "sagittal":
            return ((ny - 1 - y + 0.5) * sy, (nz - 1 - z + 0.5) * sz)
        raise ValueError(f"unknown view {name!r}")


def window(image: np.ndarray, lo_hu: float, hi_hu: float) -> np.ndarray:
    """HU -> 0..1 (float32) for a display window."""
    out: np.ndarray = np.clip((image.astype(np.float32) - lo_hu) / (hi_hu - lo_hu), 0.0, 1.0)
    return out


def nice_length_mm(width_mm: float, fraction: float = 0.2) -> float:
    """A round scale-bar length near ``fraction`` of the width: 1, 2, 5, 10, 20, 50, 100 mm."""
    target = max(width_mm * fraction, 1e-3)
    best = 1.0
    for v in (1, 2, 5, 10, 20, 50, 100, 200, 500):
        if v <= target:
            best = float(v)
    return best

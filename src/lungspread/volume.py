"""The one image type of lungspread: :class:`Volume`.

Conventions, stated once for the whole package:

* ``Volume.array`` is a 3D numpy array indexed ``array[i, j, k]``: ``i`` and ``j`` are the two
  in-plane axes of the stored image and ``k`` is the slice axis, exactly as NIfTI stores it and
  nibabel returns it. Nothing is transposed or flipped on reading, so a mask computed on
  ``array`` lines up voxel for voxel with the input file.
* ``Volume.affine`` is a 4x4 float64 matrix mapping a voxel index ``(i, j, k, 1)`` to patient
  millimetres in the **RAS+** frame: +x towards the patient's Right, +y Anterior,
  +z Superior (the NIfTI / nibabel / 3D Slicer world frame). DICOM, NRRD and MHA store LPS+
  (+x Left, +y Posterior); the readers and writers in :mod:`lungspread.io` convert with
  ``diag(-1, -1, 1)`` and nothing else in the package ever sees LPS.
* Spacing is in mm, volumes in mL (1 mL = 1000 mm^3), intensities of CT in HU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Converts between RAS+ and LPS+ world coordinates (it is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image: voxel array plus the affine that places it in patient space (RAS+, mm).

    ``meta`` carries non-geometric facts about the source (file name, modality, series
    description); it never contains anything needed to interpret the voxels.
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        aff = np.asarray(self.affine, dtype=np.float64)
        if arr.ndim != 3:
            raise ValueError(f"Volume needs a 3D array, got shape {arr.shape}")
        if aff.shape != (4, 4):
            raise ValueError(f"Volume needs a 4x4 affine, got shape {aff.shape}")
        if not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
            raise ValueError(f"Volume affine must be finite and invertible, got\n{aff}")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", aff)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_spacing(
        cls,
        array: npt.ArrayLike,
        spacing_mm: tuple[float, float, float] | npt.ArrayLike,
        origin_mm: tuple[float, float, float] | npt.ArrayLike = (0.0, 0.0, 0.0),
        meta: dict[str, Any] | None = None,
    ) -> Volume:
        """An axis-aligned volume: voxel axes along +x, +y, +z (RAS) with the given spacing."""
        affine = np.eye(4)
        affine[:3, :3] = np.diag(np.asarray(spacing_mm, dtype=np.float64))
        affine[:3, 3] = np.asarray(origin_mm, dtype=np.float64)
        return cls(np.asarray(array), affine, dict(meta or {}))

    def with_array(self, array: npt.ArrayLike, **meta: Any) -> Volume:
        """Same geometry, new voxels (for masks and derived images)."""
        arr = np.asarray(array)
        if arr.shape != self.shape:
            raise ValueError(f"new array shape {arr.shape} differs from volume shape {self.shape}")
        return Volume(arr, self.affine.copy(), {**self.meta, **meta})

    # -- geometry -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k (lengths of the affine's columns)."""
        sp = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(sp[0]), float(sp[1]), float(sp[2]))

    @property
    def voxel_volume_mm3(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit RAS directions of the i, j, k axes."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def origin(self) -> np.ndarray:
        """RAS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    @property
    def is_oblique(self) -> bool:
        """True when a voxel axis is not parallel to a patient axis."""
        d = np.abs(self.direction)
        return bool(np.any((d > 1e-6) & (d < 1 - 1e-6)))

    def axis_codes(self) -> tuple[str, str, str]:
        """Closest patient direction of each voxel axis, e.g. ``('L', 'P', 'S')``."""
        names = (("L", "R"), ("P", "A"), ("I", "S"))
        codes = []
        for col in self.direction.T:
            ax = int(np.argmax(np.abs(col)))
            codes.append(names[ax][1] if col[ax] > 0 else names[ax][0])
        return (codes[0], codes[1], codes[2])

    def slice_axis(self) -> int:
        """Voxel axis closest to the patient's superior-inferior axis."""
        return int(np.argmax(np.abs(self.direction[2, :])))

    def index_to_world(self, ijk: npt.ArrayLike) -> np.ndarray:
        """Voxel indices (N, 3) or (3,) -> RAS mm."""
        pts = np.asarray(ijk, dtype=np.float64)
        out: np.ndarray = pts @ self.affine[:3, :3].T + self.affine[:3, 3]
        return out

    def world_to_index(self, xyz: npt.ArrayLike) -> np.ndarray:
        """RAS mm (N, 3) or (3,) -> fractional voxel indices."""
        inv = np.linalg.inv(self.affine)
        pts = np.asarray(xyz, dtype=np.float64)
        out: np.ndarray = pts @ inv[:3, :3].T + inv[:3, 3]
        return out

    def same_grid(self, other: Volume, atol_mm: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and (within ``atol_mm``) the same affine."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine, other.affine, atol=atol_mm, rtol=0)
        )

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing_mm=({sp}), "
            f"axes={''.join(self.axis_codes())})"
        )

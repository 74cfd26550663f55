"""Voxel grids and signed-distance primitives for the phantom generator.

The phantom is built in an *anatomical frame*: millimetres, +x towards the patient's right,
+y anterior, +z superior (the RAS+ directions), origin on the midline at the centre of the
chest's front-to-back extent, at the height of the carina. World (scanner) coordinates are
the anatomical ones plus a patient offset (see :mod:`lungspread.phantom.make`).

Internal arrays are stored ``(k, j, i)`` in C order (slices outermost), which is the
``(i, j, k)`` Fortran order of NIfTI: the :class:`~lungspread.volume.Volume` handed to users
is a transposed view, with no copy. A :class:`Grid` only needs the 1D voxel-centre
coordinates of each axis because every phantom grid is axis aligned (its axes may point
either way along x, y and z, which is how the orientation variants are made).

Signed distances are negative inside a shape, in mm. :func:`coverage` turns one into the
fraction of a voxel covered by the shape (a linear ramp one voxel wide), which gives the
partial-volume edges of a real scanner without rendering at super-resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lungspread.errors import InputError

F32 = np.float32
BoxSlices = tuple[slice, slice, slice]

#: Named sizes: array shape (i, j, k) and voxel spacing (mm) of the default grid.
SIZES: dict[str, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    "small": ((96, 96, 64), (3.6, 3.6, 5.0)),
    "medium": ((192, 192, 128), (1.8, 1.8, 2.5)),
    "full": ((512, 512, 256), (0.68, 0.68, 1.25)),
}

#: Field of view (mm along i, j, k) used when only a shape or only a spacing is given.
DEFAULT_EXTENT_MM: tuple[float, float, float] = (345.6, 345.6, 320.0)


def parse_orientation(code: str) -> tuple[int, int, int]:
    """Axis codes like ``"LPS"`` (nibabel's convention: where each of i, j, k points).

    Returns the sign of each voxel axis in RAS+: ``"LPS"`` -> ``(-1, -1, 1)``. The slice axis
    k is always the superior-inferior one; i is left-right and j posterior-anterior.
    """
    c = str(code).upper()
    if len(c) != 3 or c[0] not in "LR" or c[1] not in "PA" or c[2] not in "IS":
        raise InputError(
            "orientation must be three letters: L or R, then P or A, then I or S "
            f"(for example 'LPS' or 'RAS'); got {code!r}"
        )
    return (1 if c[0] == "R" else -1, 1 if c[1] == "A" else -1, 1 if c[2] == "S" else -1)


def resolve_grid(
    size: str | Sequence[int], spacing_mm: Sequence[float] | None
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Shape (i, j, k) and spacing (mm) from a named size or a shape, and an optional spacing.

    A named size with an explicit spacing keeps the named size's field of view, so that the
    whole chest is still covered; a shape without a spacing spreads the default field of view
    over that shape; a shape with a spacing is taken as it is (a smaller field of view cuts
    the body, as a tight reconstruction field does).
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise InputError(f"unknown phantom size {size!r}; expected one of {sorted(SIZES)}")
        shape, default_sp = SIZES[size]
        if spacing_mm is None:
            return shape, default_sp
        sp = _check_spacing(spacing_mm)
        extent = [n * s for n, s in zip(shape, default_sp, strict=True)]
        new_shape = tuple(max(8, round(e / s)) for e, s in zip(extent, sp, strict=True))
        return (new_shape[0], new_shape[1], new_shape[2]), sp
    dims = tuple(int(n) for n in size)
    if len(dims) != 3 or min(dims) < 8:
        raise InputError(f"phantom shape must be three sizes of at least 8 voxels, got {size!r}")
    if spacing_mm is None:
        sp2 = tuple(e / n for e, n in zip(DEFAULT_EXTENT_MM, dims, strict=True))
        return (dims[0], dims[1], dims[2]), (sp2[0], sp2[1], sp2[2])
    return (dims[0], dims[1], dims[2]), _check_spacing(spacing_mm)


def _check_spacing(spacing_mm: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(np.isfinite(s) and 0.1 <= s <= 20.0 for s in sp):
        raise InputError(
            f"spacing_mm must be three values between 0.1 and 20 mm, got {spacing_mm!r}"
        )
    return (sp[0], sp[1], sp[2])


@dataclass(frozen=True)
class Grid:
    """An axis-aligned grid given by the anatomical coordinates (mm) of its voxel centres.

    ``x`` runs along i, ``y`` along j, ``z`` along k; each may be increasing or decreasing.
    Arrays on the grid are indexed ``[k, j, i]``.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x", "y", "z"):
            c = np.asarray(getattr(self, name), dtype=np.float64)
            object.__setattr__(self, name, c)
            object.__setattr__(self, f"_{name}32", c.astype(F32))

    @property
    def z_range(self) -> tuple[float, float]:
        """Lowest and highest slice position (mm)."""
        if len(self.z) == 0:
            return (np.inf, -np.inf)
        return (float(min(self.z[0], self.z[-1])), float(max(self.z[0], self.z[-1])))

    @classmethod
    def regular(cls, lo: Sequence[float], hi: Sequence[float], step_mm: float) -> Grid:
        """An increasing grid covering the box [lo, hi] with the given step (for planning)."""
        axes = [
            np.arange(a, b + 0.5 * step_mm, step_mm, dtype=np.float64)
            for a, b in zip(lo, hi, strict=True)
        ]
        return cls(axes[0], axes[1], axes[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nk, nj, ni)``."""
        return (len(self.z), len(self.y), len(self.x))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along i, j, k."""

        def step(c: np.ndarray) -> float:
            return float(abs(c[1] - c[0])) if len(c) > 1 else 1.0

        return (step(self.x), step(self.y), step(self.z))

    @property
    def voxel_mm3(self) -> float:
        sx, sy, sz = self.spacing
        return sx * sy * sz

    def chunk(self, k0: int, k1: int) -> Grid:
        """The slab of slices ``k0:k1``."""
        return Grid(self.x, self.y, self.z[k0:k1])

    def box(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> BoxSlices | None:
        """Index slices ``(k, j, i)`` of the voxels whose centres lie in [lo, hi] (mm), or None."""
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        out = []
        for c, a, b in (
            (self.z, lo_a[2], hi_a[2]),
            (self.y, lo_a[1], hi_a[1]),
            (self.x, lo_a[0], hi_a[0]),
        ):
            r = _index_range(c, float(a), float(b))
            if r is None:
                return None
            out.append(slice(r[0], r[1]))
        return (out[0], out[1], out[2])

    def mesh(self, box: BoxSlices | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable float32 coordinates ``Z (nk,1,1), Y (1,nj,1), X (1,1,ni)`` of a box."""
        if box is None:
            box = (slice(None), slice(None), slice(None))
        zz = self._z32[box[0]][:, None, None]  # type: ignore[attr-defined]
        yy = self._y32[box[1]][None, :, None]  # type: ignore[attr-defined]
        xx = self._x32[box[2]][None, None, :]  # type: ignore[attr-defined]
        return zz, yy, xx

    def boxes(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Index ranges of many boxes at once: (N, 6) ``k0, k1, j0, j1, i0, i1`` (empty: k1<=k0)."""
        out = np.empty((len(lo), 6), np.int64)
        for col, c, ax in ((0, self.z, 2), (2, self.y, 1), (4, self.x, 0)):
            n = len(c)
            step = (c[1] - c[0]) if n > 1 else 1.0
            a = (lo[:, ax] - c[0]) / step
            b = (hi[:, ax] - c[0]) / step
            out[:, col] = np.maximum(0, np.ceil(np.minimum(a, b) - 1e-9))
            out[:, col + 1] = np.minimum(n, np.floor(np.maximum(a, b) + 1e-9) + 1)
        return out

    def fractional_index(self, pts: np.ndarray) -> np.ndarray:
        """Anatomical points (N, 3) as fractional ``(k, j, i)`` indices."""
        out = np.empty((len(pts), 3), dtype=np.float64)
        for col, c, p in ((0, self.z, pts[:, 2]), (1, self.y, pts[:, 1]), (2, self.x, pts[:, 0])):
            step = (c[1] - c[0]) if len(c) > 1 else 1.0
            out[:, col] = (p - c[0]) / step
        return out


def _index_range(c: np.ndarray, lo: float, hi: float) -> tuple[int, int] | None:
    n = len(c)
    if n == 0:
        return None
    step = (c[1] - c[0]) if n > 1 else 1.0
    a = (lo - c[0]) / step
    b = (hi - c[0]) / step
    i0 = max(0, int(np.ceil(min(a, b) - 1e-9)))
    i1 = min(n, int(np.floor(max(a, b) + 1e-9)) + 1)
    if i1 <= i0:
        return None
    return i0, i1


# --------------------------------------------------------------------------------------------
# Signed distances (mm, negative inside) and coverage


def coverage(sdf: np.ndarray, width_mm: float) -> np.ndarray:
    """Fraction of a voxel inside a shape, from its signed distance: a one-voxel linear ramp."""
    out = np.multiply(sdf, F32(-1.0 / width_mm), dtype=F32)
    out += F32(0.5)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def lerp_into(dst: np.ndarray, frac: np.ndarray, value: float | np.ndarray) -> None:
    """``dst += frac * (value - dst)`` in place (paint ``value`` with partial coverage)."""
    tmp = np.subtract(value, dst, dtype=F32)
    tmp *= frac
    dst += tmp


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two signed distances (polynomial smooth minimum, blend radius ``k`` mm)."""
    h = np.abs(a - b)
    np.subtract(F32(k), h, out=h)
    np.maximum(h, 0.0, out=h)
    h *= h
    h *= F32(0.25 / k)
    out = np.minimum(a, b)
    out -= h
    return out


def sd_segment(
    zz: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    ra: float,
    rb: float,
) -> np.ndarray:
    """Signed distance to a tapered capsule from point ``a`` (radius ``ra``) to ``b`` (``rb``)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    bx, by, bz = (F32(b[0] - a[0]), F32(b[1] - a[1]), F32(b[2] - a[2]))
    px = xx - F32(a[0])
    py = yy - F32(a[1])
    pz = zz - F32(a[2])
    ll = float(bx * bx + by * by + bz * bz)
    if ll < 1e-12:
        d = np.sqrt(px * px + py * py + pz * pz)
        d -= F32(max(ra, rb))
        return d
    t = px * F32(bx / ll) + py * F32(by / ll) + pz * F32(bz / ll)
    np.clip(t, 0.0, 1.0, out=t)
    dx = px - t * bx
    dx *= dx
    dy = py - t * by
    dy *= dy
    dx += dy
    del dy
    dz = pz - t * bz
    dz *= dz
    dx += dz
    del dz
    d = np.sqrt(dx, out=dx)
    if ra == rb:
        d -= F32(ra)
    else:
        t *= F32(rb - ra)
        t += F32(ra)
        d -= t
    return d


def sd_ellipsoid(
    zz: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    center: npt.ArrayLike,
    radii: npt.ArrayLike,
    rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Approximate signed distance to an ellipsoid (exact on the axes, good near the surface).

    ``rotation`` (3x3, rows = the ellipsoid's axes in the anatomical frame) orients it.
    """
    center = np.asarray(center, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    px = xx - F32(center[0])
    py = yy - F32(center[1])
    pz = zz - F32(center[2])
    if rotation is None:
        u, v, w = px, py, pz
    else:
        rot = np.asarray(rotation, dtype=np.float64)
        u = px * F32(rot[0, 0]) + py * F32(rot[0, 1]) + pz * F32(rot[0, 2])
        v = px * F32(rot[1, 0]) + py * F32(rot[1, 1]) + pz * F32(rot[1, 2])
        w = px * F32(rot[2, 0]) + py * F32(rot[2, 1]) + pz * F32(rot[2, 2])
    ra, rb, rc = (float(r) for r in radii)
    k0 = (u / F32(ra)) ** 2 + (v / F32(rb)) ** 2 + (w / F32(rc)) ** 2
    k1 = (u / F32(ra * ra)) ** 2 + (v / F32(rb * rb)) ** 2 + (w / F32(rc * rc)) ** 2
    np.sqrt(k0, out=k0)
    np.sqrt(k1, out=k1)
    np.maximum(k1, F32(1e-6), out=k1)
    d = k0 - F32(1.0)
    d *= k0
    d /= k1
    return np.asarray(d, dtype=F32)


def rotation_from_axis(axis: npt.ArrayLike, roll: float = 0.0) -> np.ndarray:
    """A rotation whose first row is the unit ``axis`` (3x3, rows orthonormal)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    ref = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    b = np.cross(a, ref)
    b /= np.linalg.norm(b)
    c = np.cross(a, b)
    cr, sr = np.cos(roll), np.sin(roll)
    b2 = cr * b + sr * c
    c2 = -sr * b + cr * c
    return np.stack([a, b2, c2])

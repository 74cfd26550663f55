"""Simple 3D shapes (tubes along polylines, ellipsoids) that paint themselves onto a grid.

Each shape is a list of *pieces*, each with a bounding box, so that work is proportional to
the volume a shape occupies, not to the whole grid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from lungspread.phantom.geometry import (
    F32,
    BoxSlices,
    Grid,
    coverage,
    lerp_into,
    sd_ellipsoid,
    sd_segment,
    smin,
)

SdfFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Piece:
    lo: np.ndarray
    hi: np.ndarray
    sdf: SdfFn


@dataclass(frozen=True)
class Tube:
    """A tube along a polyline; the radius is interpolated linearly between the vertices."""

    points: np.ndarray
    radii: np.ndarray

    @classmethod
    def of(cls, points: npt.ArrayLike, radii: npt.ArrayLike) -> Tube:
        p = np.asarray(points, dtype=np.float64)
        r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(p),)).copy()
        return cls(p, r)

    def pieces(self, grow: float = 0.0) -> Iterator[Piece]:
        for p in self.base_pieces:
            yield Piece(p.lo - grow, p.hi + grow, p.sdf) if grow else p

    @cached_property
    def base_pieces(self) -> tuple[Piece, ...]:
        out = []
        for a, b, ra, rb in zip(
            self.points[:-1], self.points[1:], self.radii[:-1], self.radii[1:], strict=True
        ):
            rmax = max(ra, rb)
            lo = np.minimum(a, b) - rmax
            hi = np.maximum(a, b) + rmax

            def fn(
                zz: np.ndarray,
                yy: np.ndarray,
                xx: np.ndarray,
                a: np.ndarray = a,
                b: np.ndarray = b,
                ra: float = ra,
                rb: float = rb,
            ) -> np.ndarray:
                return sd_segment(zz, yy, xx, a, b, ra, rb)

            out.append(Piece(lo, hi, fn))
        return tuple(out)


@dataclass(frozen=True)
class Blob:
    """An ellipsoid (optionally rotated: rows of ``rotation`` are its axes)."""

    center: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        center: npt.ArrayLike,
        radii: npt.ArrayLike,
        rotation: np.ndarray | None = None,
    ) -> Blob:
        return cls(np.asarray(center, float), np.asarray(radii, float), rotation)

    def pieces(self, grow: float = 0.0) -> Iterator[Piece]:
        p = self.base_pieces[0]
        yield Piece(p.lo - grow, p.hi + grow, p.sdf) if grow else p

    @cached_property
    def base_pieces(self) -> tuple[Piece, ...]:
        r = float(np.max(self.radii))
        c = self.center

        def fn(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            return sd_ellipsoid(zz, yy, xx, c, self.radii, self.rotation)

        return (Piece(c - r, c + r, fn),)


@dataclass(frozen=True)
class Custom:
    """Any signed-distance function with a bounding box."""

    lo: np.ndarray
    hi: np.ndarray
    fn: SdfFn = field(repr=False)

    def pieces(self, grow: float = 0.0) -> Iterator[Piece]:
        yield Piece(self.lo - grow, self.hi + grow, self.fn)


Shape = Tube | Blob | Custom


def _boxes(grid: Grid, shape: Shape, grow: float) -> Iterator[tuple[BoxSlices, SdfFn]]:
    z_lo, z_hi = grid.z_range
    for piece in shape.pieces(grow):
        if piece.hi[2] < z_lo or piece.lo[2] > z_hi:
            continue
        box = grid.box(piece.lo, piece.hi)
        if box is not None:
            yield box, piece.sdf


def paint(
    hu: np.ndarray,
    grid: Grid,
    shape: Shape,
    value: float,
    width_mm: float,
    offset_mm: float = 0.0,
    weight: np.ndarray | None = None,
    mask_out: np.ndarray | None = None,
) -> None:
    """Paint ``value`` into ``hu`` where the shape (grown by ``-offset_mm``) covers the voxels.

    ``weight`` (same grid) scales the coverage, e.g. to stay inside the lungs; ``mask_out``
    (uint8, same grid) gets 1 where the voxel centre is inside the shape.
    """
    for box, fn in _boxes(grid, shape, width_mm - offset_mm):
        zz, yy, xx = grid.mesh(box)
        sdf = fn(zz, yy, xx)
        if offset_mm:
            sdf += F32(offset_mm)
        frac = coverage(sdf, width_mm)
        if weight is not None:
            frac *= weight[box]
        lerp_into(hu[box], frac, value)
        if mask_out is not None:
            view = mask_out[box]
            view |= (sdf < 0).astype(np.uint8)


def union_into(
    field_: np.ndarray, grid: Grid, shape: Shape, grow_mm: float, blend_mm: float
) -> None:
    """``field_ = smooth_min(field_, sdf(shape) - grow_mm)`` inside the shape's boxes."""
    for box, fn in _boxes(grid, shape, grow_mm + blend_mm + 1.0):
        zz, yy, xx = grid.mesh(box)
        sdf = fn(zz, yy, xx)
        sdf -= F32(grow_mm)
        view = field_[box]
        if blend_mm > 0:
            view[...] = smin(view, sdf, blend_mm)
        else:
            np.minimum(view, sdf, out=view)

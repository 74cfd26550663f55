"""Opacities that are not tumor but look like faint ones: the negatives a model must learn.

Real chest CTs hold hazy densities that a tumor model confuses with ground-glass nodules.
Two common ones are drawn here, both in the lower lungs, where they are most frequent:

* ``dependent``: dependent atelectasis, a hazy band under the posterior (dorsal) pleura,
  a few millimetres thick and a few centimetres long, denser towards the pleura
  (about -750 to -450 HU), from lung collapsing under its own weight in a supine patient.
* ``plate``: plate-like (discoid) atelectasis, a thin flat sheet of 1.5-3.5 mm, 2-6 cm
  across, in any orientation, denser (about -500 to -200 HU).

Both raise the lung's value towards theirs without erasing the vessels inside them (a voxel
never gets darker), and only where there is lung (weighted by the lung coverage). They are
never labelled tumor, and they keep clear of the phantom's tumors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.phantom.geometry import F32, Grid, coverage, rotation_from_axis
from lungspread.phantom.shapes import Blob
from lungspread.phantom.tumors import PlanningView, Tumor

MIMIC_KINDS = ("dependent", "plate")

#: The most mimics per phantom that the dataset builders and the CLI accept.
MAX_PER_CASE = 20

#: How far (mm) a mimic's outer extent keeps from a tumor's.
TUMOR_CLEARANCE_MM = 8.0


@dataclass(frozen=True)
class Mimic:
    """One non-tumor opacity: nested ellipsoids (outermost first), each with its value."""

    kind: str
    center: np.ndarray
    layers: tuple[tuple[Blob, float, float], ...]  # shape, HU, edge width (mm)

    @property
    def reach_mm(self) -> float:
        return float(max(np.max(b.radii) for b, _, _ in self.layers))

    def describe(self) -> dict[str, Any]:
        outer, inner = self.layers[0], self.layers[-1]
        return {
            "kind": self.kind,
            "center_mm": [round(float(c), 2) for c in self.center],
            "radii_mm": [round(float(r), 2) for r in outer[0].radii],
            "hu": round(float(inner[1]), 1),
        }


def draw_mimics(
    rng: np.random.Generator, count: int, view: PlanningView, tumors: list[Tumor]
) -> list[Mimic]:
    """Draw ``count`` mimics (kinds at random) in the lower lungs, clear of ``tumors``.

    Fewer come back when the lungs have no room left for one.
    """
    check_count(count)
    if count == 0:
        return []
    sites = _sites(view)
    out: list[Mimic] = []
    for _ in range(int(count)):
        kind = str(rng.choice(MIMIC_KINDS))
        for _try in range(30):
            mimic = _make(rng, kind, sites)
            if mimic is None:
                break
            if _clear(mimic, tumors, out):
                out.append(mimic)
                break
    return out


def check_count(count: object) -> None:
    """An :class:`InputError` unless ``count`` is a whole number >= 0."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InputError(f"mimics must be a non-negative integer, got {count!r}")


def render_mimics(mimics: list[Mimic], grid: Grid, hu: np.ndarray, lung_frac: np.ndarray) -> None:
    """Raise ``hu`` (float32, ``(k, j, i)`` on ``grid``) towards each mimic's values in lung."""
    for mimic in mimics:
        for blob, value, width in mimic.layers:
            for piece in blob.pieces(width):
                box = grid.box(piece.lo, piece.hi)
                if box is None:
                    continue
                zz, yy, xx = grid.mesh(box)
                frac = coverage(piece.sdf(zz, yy, xx), width)
                frac *= lung_frac[box].astype(F32)
                view = hu[box]
                raised = view + frac * (F32(value) - view)
                np.maximum(view, raised, out=view)


@dataclass(frozen=True)
class _Sites:
    dorsal: np.ndarray  # (N, 3) subpleural points whose pleura faces backwards, mm
    dorsal_normal: np.ndarray  # (N, 3) outward unit normals there
    deep: np.ndarray  # (M, 3) points at least 10 mm inside the lungs


def _sites(view: PlanningView) -> _Sites:
    g, sdf = view.grid, view.sdf_lung
    inside = view.side > 0
    kk_all = np.nonzero(inside.any(axis=(1, 2)))[0]
    if len(kk_all) == 0:
        return _Sites(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)))
    z_lo, z_hi = g.z[kk_all.min()], g.z[kk_all.max()]
    lower = g.z < z_lo + 0.6 * (z_hi - z_lo)  # the lower 60% of the lungs
    grad = np.gradient(sdf.astype(np.float64), g.z, g.y, g.x)  # d/dz, d/dy, d/dx
    norm = np.sqrt(grad[0] ** 2 + grad[1] ** 2 + grad[2] ** 2) + 1e-9
    ny = grad[1] / norm
    # Dorsal: the pleura faces backwards, in the back half of the lungs (the lung in front
    # of the heart has surfaces facing backwards too).
    _, j_in, _ = np.nonzero(inside)
    back = g.y < np.median(g.y[j_in])
    band = inside & (sdf > -6.0) & (sdf < -1.0) & (ny < -0.7)
    band &= lower[:, None, None] & back[None, :, None]
    deep = inside & (sdf < -10.0) & lower[:, None, None]

    k, j, i = np.nonzero(band)
    dorsal = np.stack([g.x[i], g.y[j], g.z[k]], axis=1)
    normals = np.stack([grad[2][k, j, i], grad[1][k, j, i], grad[0][k, j, i]], axis=1)
    normals /= norm[k, j, i][:, None]
    k, j, i = np.nonzero(deep)
    return _Sites(dorsal, normals, np.stack([g.x[i], g.y[j], g.z[k]], axis=1))


def _make(rng: np.random.Generator, kind: str, sites: _Sites) -> Mimic | None:
    if kind == "dependent":
        if len(sites.dorsal) == 0:
            return None
        n = int(rng.integers(len(sites.dorsal)))
        normal = sites.dorsal_normal[n]
        # Centre the band on the pleura: it reaches into the lung by its thickness.
        center = sites.dorsal[n] + normal * rng.uniform(-1.0, 2.0)
        # Axes: thin along the pleura's normal; long along the body axis and across.
        rot = rotation_from_axis(normal, roll=float(rng.uniform(0, np.pi)))
        radii = np.array([rng.uniform(4.0, 10.0), rng.uniform(15.0, 35.0), rng.uniform(15.0, 40.0)])
        dense = float(rng.uniform(-700.0, -450.0))
        haze = float(rng.uniform(-800.0, -720.0))
        return Mimic(
            kind,
            center,
            (
                (Blob.of(center, radii * np.array([1.6, 1.25, 1.25]), rot), haze, 4.0),
                (Blob.of(center, radii, rot), dense, 3.0),
            ),
        )
    if len(sites.deep) == 0:
        return None
    center = sites.deep[int(rng.integers(len(sites.deep)))] + rng.uniform(-2.0, 2.0, 3)
    # Any orientation: on CT such sheets show as lines in one view and haze in another.
    rot = rotation_from_axis(rng.normal(size=3), roll=float(rng.uniform(0, np.pi)))
    radii = np.array([rng.uniform(0.75, 1.75), rng.uniform(10.0, 30.0), rng.uniform(5.0, 14.0)])
    value = float(rng.uniform(-500.0, -200.0))
    return Mimic(kind, center, ((Blob.of(center, radii, rot), value, 1.0),))


def _clear(mimic: Mimic, tumors: list[Tumor], others: list[Mimic]) -> bool:
    reach = mimic.reach_mm + TUMOR_CLEARANCE_MM
    if any(np.linalg.norm(mimic.center - t.center) < reach + t.reach_mm for t in tumors):
        return False
    return all(np.linalg.norm(mimic.center - m.center) > mimic.reach_mm for m in others)

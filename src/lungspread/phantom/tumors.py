"""Lung tumors with exact masks: shapes, densities, places in the lung, and their rendering.

A tumor is a star-shaped solid around its centre: a radius for every direction, stored as a
table over (polar, azimuth) angles. Round tumors are slightly stretched spheres; lobulated
ones carry a few broad bumps; spiculated ones carry many narrow spikes; irregular ones have
bumps and dents of all widths and a stronger stretch. The table is scaled so that the
designed solid has the volume of a sphere of the requested diameter (``diameter_mm`` is an
equivalent-sphere diameter before clipping to the lung).

The ground-truth mask is the set of voxels whose centre lies inside the solid *and* inside
the lung it was placed in, so a tumor against the chest wall or the mediastinum is flattened
against it and stays inside the lung label, as a radiologist's outline would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.phantom.geometry import F32, Grid, coverage
from lungspread.phantom.vessels import Tree

SHAPES = ("round", "lobulated", "spiculated", "irregular")
DENSITIES = ("solid", "part-solid", "ground-glass")
LOCATIONS = ("central", "juxtavascular", "juxtapleural", "mediastinal")
SIDES = ("right", "left")

_P_SHAPE = (0.3, 0.25, 0.25, 0.2)
_P_DENSITY = (0.6, 0.2, 0.2)
_P_LOCATION = (0.35, 0.25, 0.25, 0.15)
_CHOICES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "shape": (SHAPES, _P_SHAPE),
    "density": (DENSITIES, _P_DENSITY),
    "location": (LOCATIONS, _P_LOCATION),
    "side": (SIDES, (0.55, 0.45)),
}
N_THETA, N_PHI = 120, 240

#: CT values (HU) of ground-glass tissue, drawn uniformly per tumor. Calibrated on real nodules:
#: the 5th-95th percentiles of the median HU inside the masks of the 140 sub-solid LIDC-IDRI
#: training crops (``lungspread.data.trainset``; patients 0001/0002 excluded) are -750 and
#: -490. (The range was -680 to -380 before, denser than most real ground glass; a model
#: trained on those phantoms missed the faint part of LIDC-IDRI-0002's ground-glass lesion.)
GROUND_GLASS_HU = (-760.0, -480.0)


@dataclass(frozen=True)
class TumorSpec:
    """What to put in: any field left ``None`` is drawn at random."""

    shape: str | None = None
    density: str | None = None
    location: str | None = None
    side: str | None = None
    diameter_mm: float | None = None

    def __post_init__(self) -> None:
        for name, (valid, _p) in _CHOICES.items():
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise InputError(f"tumor {name} must be one of {list(valid)}, got {value!r}")
        d = self.diameter_mm
        if d is not None and not (3.0 <= float(d) <= 80.0):
            raise InputError(f"tumor diameter_mm must be between 3 and 80 mm, got {d!r}")


TumorKinds = Sequence[TumorSpec | Mapping[str, Any]] | Mapping[str, Sequence[str]] | None


@dataclass
class Tumor:
    """A placed tumor (anatomical frame)."""

    id: int
    shape: str
    density: str
    location: str
    side: str
    diameter_mm: float
    center: np.ndarray
    rotation: np.ndarray
    stretch: np.ndarray
    radius_table: np.ndarray  # (N_THETA, N_PHI) radii in the stretched frame (mm)
    hu: float  # value of the (outer) tissue
    core_fraction: float  # part-solid: solid core radius / outer radius
    core_hu: float
    texture: list[tuple[np.ndarray, float, float]] = field(default_factory=list)
    necrosis: float = 0.0

    @property
    def reach_mm(self) -> float:
        return float(self.radius_table.max() * self.stretch.max())


def draw_specs(rng: np.random.Generator, count: int | None, kinds: TumorKinds) -> list[TumorSpec]:
    """The list of tumors to place: from ``kinds`` (explicit specs or allowed values) and count."""
    allowed: dict[str, tuple[str, ...]] = {}
    specs: list[TumorSpec] | None = None
    if kinds is not None and isinstance(kinds, Mapping):
        for key, values in kinds.items():
            if key not in _CHOICES:
                raise InputError(f"tumor_kinds keys must be among {sorted(_CHOICES)}, got {key!r}")
            vals = (values,) if isinstance(values, str) else tuple(values)
            bad = [v for v in vals if v not in _CHOICES[key][0]]
            if bad or not vals:
                raise InputError(
                    f"tumor_kinds[{key!r}] must list values among "
                    f"{list(_CHOICES[key][0])}, got {values!r}"
                )
            allowed[key] = vals
    elif kinds is not None:
        specs = [k if isinstance(k, TumorSpec) else TumorSpec(**dict(k)) for k in kinds]
        if count is not None and count != len(specs):
            raise InputError(
                f"tumors={count} disagrees with the {len(specs)} tumor specs in tumor_kinds"
            )
    if specs is None:
        if count is None:
            count = int(rng.choice(6, p=[0.12, 0.38, 0.25, 0.14, 0.07, 0.04]))
        if count < 0 or count > 20:
            raise InputError(f"tumors must be between 0 and 20, got {count}")
        specs = [TumorSpec() for _ in range(count)]
    out = []
    for spec in specs:
        fields: dict[str, Any] = {}
        for name, (valid, probs) in _CHOICES.items():
            value = getattr(spec, name)
            if value is None:
                opts = allowed.get(name, valid)
                p = np.array([probs[valid.index(o)] for o in opts])
                value = str(opts[int(rng.choice(len(opts), p=p / p.sum()))])
            fields[name] = value
        d = spec.diameter_mm
        if d is None:
            if rng.random() < 0.8:
                d = float(np.exp(rng.uniform(np.log(3.0), np.log(30.0))))
            else:
                d = float(np.exp(rng.uniform(np.log(30.0), np.log(80.0))))
        fields["diameter_mm"] = float(d)
        out.append(TumorSpec(**fields))
    return out


def _bump_table(rng: np.random.Generator, shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Radius table (unit mean) and the stretch of the solid for one shape kind."""
    th = (np.arange(N_THETA) + 0.5) * np.pi / N_THETA
    ph = (np.arange(N_PHI) + 0.5) * 2 * np.pi / N_PHI
    st, ct = np.sin(th)[:, None], np.cos(th)[:, None]
    dirs = np.stack(
        [st * np.cos(ph)[None], st * np.sin(ph)[None], np.broadcast_to(ct, (N_THETA, N_PHI))], -1
    )
    r = np.ones((N_THETA, N_PHI))

    def bumps(n: int, amp: tuple[float, float], kappa: tuple[float, float], signed: bool) -> None:
        nonlocal r
        for _ in range(n):
            v = rng.normal(size=3)
            v /= np.linalg.norm(v)
            a = rng.uniform(*amp) * (rng.choice([-1.0, 1.0]) if signed else 1.0)
            k = np.exp(rng.uniform(np.log(kappa[0]), np.log(kappa[1])))
            r = r + a * np.exp(k * (dirs @ v - 1.0))

    if shape == "round":
        stretch = rng.uniform(0.88, 1.12, 3)
        bumps(3, (0.01, 0.04), (1.0, 3.0), True)
    elif shape == "lobulated":
        stretch = rng.uniform(0.85, 1.15, 3)
        bumps(int(rng.integers(4, 9)), (0.2, 0.45), (5.0, 14.0), False)
    elif shape == "spiculated":
        stretch = rng.uniform(0.85, 1.15, 3)
        bumps(int(rng.integers(2, 5)), (0.05, 0.15), (3.0, 8.0), False)
        bumps(int(rng.integers(8, 22)), (0.5, 1.4), (40.0, 160.0), False)
    else:
        stretch = rng.uniform(0.7, 1.3, 3)
        bumps(int(rng.integers(8, 18)), (0.08, 0.3), (2.0, 25.0), True)
    r = np.maximum(r, 0.35)
    # unit equivalent volume: mean of r^3 over the sphere (area weights sin(theta)) = 1
    wts = np.broadcast_to(st, r.shape)
    mean_r3 = float((r**3 * wts).sum() / wts.sum()) * float(np.prod(stretch))
    return r / mean_r3 ** (1 / 3), stretch


def make_tumor(rng: np.random.Generator, spec: TumorSpec, tid: int, center: np.ndarray) -> Tumor:
    """Shape and tissue values for a spec placed at ``center``."""
    assert spec.shape and spec.density and spec.location and spec.side and spec.diameter_mm
    table, stretch = _bump_table(rng, spec.shape)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    solid = float(rng.uniform(5, 55))
    ggo = float(rng.uniform(*GROUND_GLASS_HU))
    core = 0.0
    if spec.density == "solid":
        hu, core_hu = solid, solid
    elif spec.density == "ground-glass":
        hu, core_hu = ggo, ggo
    else:
        hu, core_hu, core = ggo, solid, float(rng.uniform(0.3, 0.65))
    tex_amp = 12.0 if spec.density == "solid" else 45.0
    texture = []
    for _ in range(4):
        k = rng.normal(size=3)
        k *= 2 * np.pi / rng.uniform(3.0, 12.0) / np.linalg.norm(k)
        texture.append((k, float(rng.uniform(0, 2 * np.pi)), tex_amp / 2))
    necrosis = 0.0
    if spec.density == "solid" and spec.diameter_mm > 35 and rng.random() < 0.4:
        necrosis = float(rng.uniform(0.35, 0.6))
    return Tumor(
        tid,
        spec.shape,
        spec.density,
        spec.location,
        spec.side,
        float(spec.diameter_mm),
        np.asarray(center, np.float64),
        q,
        stretch,
        table * spec.diameter_mm / 2,
        hu,
        core,
        core_hu,
        texture,
        necrosis,
    )


# ---------------------------------------------------------------------------------------------
# Placement


@dataclass
class PlanningView:
    """Coarse fields used to place tumors (anatomical frame)."""

    grid: Grid
    sdf_lung: np.ndarray
    sdf_cav: np.ndarray
    sdf_env: np.ndarray
    side: np.ndarray  # 1 right, 2 left, 0 outside (planning grid)
    vessels: list[Tree]


def place_tumors(
    rng: np.random.Generator, specs: list[TumorSpec], view: PlanningView
) -> list[Tumor]:
    """Find a place for each spec; shrink or move a tumor that does not fit where asked."""
    placed: list[Tumor] = []
    g = view.grid
    step = g.spacing[0]
    for n, spec0 in enumerate(specs):
        spec = spec0
        tumor = None
        for attempt in range(8):
            shrink = 0.75**attempt
            d = max(3.0, spec0.diameter_mm * shrink) if spec0.diameter_mm else 10.0
            spec = replace(spec, diameter_mm=d)
            trial = make_tumor(rng, spec, n + 1, np.zeros(3))
            center = _find_center(rng, spec, trial.reach_mm, view, placed, step)
            if center is not None:
                trial.center = center
                tumor = trial
                break
            if attempt == 5 and spec.location != "central":
                spec = replace(spec, location="central")
        if tumor is None:
            continue  # nowhere left in this lung for it
        tumor.id = len(placed) + 1
        placed.append(tumor)
    return placed


def _find_center(
    rng: np.random.Generator,
    spec: TumorSpec,
    reach: float,
    view: PlanningView,
    placed: list[Tumor],
    step: float,
) -> np.ndarray | None:
    g = view.grid
    r = float(spec.diameter_mm or 10.0) / 2
    side_label = 1 if spec.side == "right" else 2
    in_side = view.side == side_label
    lung, cav, env = view.sdf_lung, view.sdf_cav, view.sdf_env
    if spec.location == "central":
        ok = in_side & (lung < -(r + 3.0))
    elif spec.location == "juxtapleural":
        ok = (
            in_side
            & (cav > -0.6 * r - step / 2)
            & (cav < -0.2 * r)
            & (np.abs(lung - cav) < 0.5)
            & (env > r + 4.0)
        )
    elif spec.location == "mediastinal":
        ok = (
            in_side
            & (env < 0.6 * r + step / 2)
            & (env > 0.2 * r)
            & (np.abs(lung + env) < 0.5)
            & (cav < -(r + 4.0))
        )
    else:
        return _juxtavascular(rng, spec, reach, view, placed)
    kk, jj, ii = np.nonzero(ok)
    if len(kk) == 0:
        return None
    order = rng.permutation(len(kk))[:400]
    for n in order:
        c = np.array([g.x[ii[n]], g.y[jj[n]], g.z[kk[n]]]) + rng.uniform(-0.4, 0.4, 3) * step
        if _clear(c, reach, placed):
            return c
    return None


def _juxtavascular(
    rng: np.random.Generator,
    spec: TumorSpec,
    reach: float,
    view: PlanningView,
    placed: list[Tumor],
) -> np.ndarray | None:
    r = float(spec.diameter_mm or 10.0) / 2
    side_label = 1 if spec.side == "right" else 2
    cands = []
    for tree in view.vessels:
        mid = 0.5 * (tree.a + tree.b)
        sel = (tree.ra >= 1.2) & (tree.ra <= 6.0)
        for i in np.nonzero(sel)[0]:
            cands.append((tree, int(i), mid[i]))
    if not cands:
        return None
    for n in rng.permutation(len(cands))[:300]:
        tree, i, _ = cands[n]
        a, b = tree.a[i], tree.b[i]
        u = b - a
        ln = np.linalg.norm(u)
        if ln < 1e-6:
            continue
        u /= ln
        p = a + u * ln * rng.uniform(0.2, 0.8)
        perp = np.cross(u, rng.normal(size=3))
        perp /= np.linalg.norm(perp)
        c = p + perp * (r + 0.4 * tree.ra[i])
        lab, sdf = _sample(view, c)
        if lab == side_label and sdf < -(r + 2.0) and _clear(c, reach, placed):
            return c
    return None


def _sample(view: PlanningView, c: np.ndarray) -> tuple[int, float]:
    fi = np.rint(view.grid.fractional_index(c[None])[0]).astype(int)
    if np.any(fi < 0) or np.any(fi >= np.array(view.grid.shape)):
        return 0, 1e3
    k, j, i = fi
    return int(view.side[k, j, i]), float(view.sdf_lung[k, j, i])


def _clear(c: np.ndarray, reach: float, placed: list[Tumor]) -> bool:
    return all(np.linalg.norm(c - t.center) > reach + t.reach_mm + 3.0 for t in placed)


# ---------------------------------------------------------------------------------------------
# Rendering


def tumor_sdf(
    t: Tumor, zz: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance (approximate, mm) to the tumor and the direction-table radius (mm)."""
    px = xx - F32(t.center[0])
    py = yy - F32(t.center[1])
    pz = zz - F32(t.center[2])
    rot = t.rotation.astype(F32)
    s = t.stretch.astype(F32)
    u = (px * rot[0, 0] + py * rot[0, 1] + pz * rot[0, 2]) / s[0]
    v = (px * rot[1, 0] + py * rot[1, 1] + pz * rot[1, 2]) / s[1]
    w = (px * rot[2, 0] + py * rot[2, 1] + pz * rot[2, 2]) / s[2]
    rho = np.sqrt(u * u + v * v + w * w)
    ct = np.clip(w / np.maximum(rho, F32(1e-6)), -1, 1)
    ti = np.clip((np.arccos(ct) * (N_THETA / np.pi)).astype(np.int32), 0, N_THETA - 1)
    pi = (np.arctan2(v, u) * (N_PHI / (2 * np.pi))).astype(np.int32) % N_PHI
    rad = t.radius_table.astype(F32)[ti, pi]
    sdf = (rho - rad) * F32(float(s.min()))
    return sdf, rad


def render_tumor(
    t: Tumor,
    grid: Grid,
    hu: np.ndarray,
    lungs: np.ndarray,
    lung_frac: np.ndarray,
    lesion_labels: np.ndarray,
) -> int:
    """Paint one tumor and write its label; returns the number of voxels in its mask."""
    w = float(min(grid.spacing[0], grid.spacing[1]))
    reach = t.reach_mm + 2 * w
    box = grid.box(t.center - reach, t.center + reach)
    if box is None:
        return 0
    zz, yy, xx = grid.mesh(box)
    sdf, rad = tumor_sdf(t, zz, yy, xx)
    side_label = 1 if t.side == "right" else 2
    in_lung = lungs[box] == side_label
    mask = (sdf < 0) & in_lung
    if not mask.any():
        # Too small for the grid: keep the lung voxel nearest to the tumor's centre.
        cand = np.where(in_lung, sdf, np.inf)
        if not np.isfinite(cand).any():
            return 0
        mask = np.zeros_like(in_lung)
        mask[np.unravel_index(int(np.argmin(cand)), cand.shape)] = True
    edge = w + (1.5 if t.density != "solid" else 0.0)
    frac = coverage(sdf, edge) * lung_frac[box].astype(F32)
    frac *= in_lung | (lungs[box] == 0)
    np.maximum(frac, mask.astype(F32), out=frac)
    value = np.full(sdf.shape, F32(t.hu), dtype=F32)
    if t.core_fraction > 0:
        core = coverage(sdf + rad * F32(1 - t.core_fraction), w)
        value += core * F32(t.core_hu - t.hu)
    if t.necrosis > 0:
        nec = coverage(sdf + rad * F32(1 - t.necrosis), 2 * w)
        value -= nec * F32(22.0)
    px = xx - F32(t.center[0])
    py = yy - F32(t.center[1])
    pz = zz - F32(t.center[2])
    for k, phase, amp in t.texture:
        arg = px * F32(k[0]) + py * F32(k[1]) + pz * F32(k[2]) + F32(phase)
        value += F32(amp) * np.cos(arg)
    view = hu[box]
    view += frac * np.maximum(value - view, F32(0.0))
    labels = lesion_labels[box]
    labels[mask] = t.id
    return int(mask.sum())

"""``make_phantom``: one synthetic chest CT with exact ground truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.phantom.acquisition import Acquisition, acquire
from lungspread.phantom.anatomy import Anatomy, plan_fields, render_anatomy, sample_anatomy
from lungspread.phantom.geometry import F32, Grid, parse_orientation, resolve_grid
from lungspread.phantom.mimics import check_count, draw_mimics, render_mimics
from lungspread.phantom.tumors import (
    PlanningView,
    TumorKinds,
    draw_specs,
    place_tumors,
    render_tumor,
)
from lungspread.phantom.vessels import (
    Tree,
    grow_tree,
    lung_points,
    offset_tree,
    paint_tubes,
    splat_tubes,
)
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: Bumped when a change alters the phantoms made from a given seed.
GENERATOR_VERSION = 1

#: Points per lung per tree: one terminal branch per point (about one per 1.3 mL of lung).
TREE_POINTS = 3000
LEAF_RADIUS_MM = 0.45


@dataclass
class Phantom:
    """A synthetic chest CT and its ground truth, all on the same grid.

    * ``ct``: int16 HU.
    * ``tumor``: uint8 0/1 tumor mask.
    * ``lungs``: uint8, 0 background, 1 the patient's right lung, 2 the left lung. Tumors
      in a lung lie inside its label; the trachea and the main bronchi do not.
    * ``lesions``: one dict per tumor (see :func:`make_phantom`).
    * ``lesion_labels``: uint8, 0 background, else the ``id`` of the lesion.
    * ``airways``: uint8 0/1 air lumen of the trachea and the bronchi drawn.
    * ``body``: uint8 0/1 inside the skin.
    * ``meta``: seed, generator version, anatomy and acquisition parameters, timings.
    """

    ct: Volume
    tumor: Volume
    lungs: Volume
    lesions: list[dict[str, Any]]
    lesion_labels: Volume
    airways: Volume | None = None
    body: Volume | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def make_phantom(
    seed: int,
    size: str | tuple[int, int, int] = "small",
    spacing_mm: tuple[float, float, float] | None = None,
    tumors: int | None = None,
    tumor_kinds: TumorKinds = None,
    orientation: str = "LPS",
    acquisition: Acquisition | None = None,
    mimics: int = 0,
) -> Phantom:
    """Make a synthetic chest CT with exact masks of its tumors and lungs.

    ``seed`` fixes everything: the same seed gives the same patient, tumors and noise. The
    patient and the tumors do not depend on ``size``, ``spacing_mm`` or the acquisition,
    so one seed rendered at several resolutions shows the same anatomy.

    ``size``: ``"small"`` (96 x 96 x 64 at 3.6 x 3.6 x 5 mm, for tests), ``"medium"``
    (192 x 192 x 128 at 1.8 x 1.8 x 2.5 mm), ``"full"`` (512 x 512 x 256 at 0.68 x 0.68 x
    1.25 mm), or a shape ``(i, j, k)``. ``spacing_mm`` with a named size keeps its field of
    view; with a shape it sets the field of view (shape x spacing).

    ``tumors``: how many (default: 0 to 5 drawn from the seed). ``tumor_kinds``: either a
    mapping that restricts the random draws, e.g. ``{"shape": ["spiculated"], "location":
    ["juxtapleural", "mediastinal"]}`` (keys ``shape``, ``density``, ``location``, ``side``),
    or a list of :class:`~lungspread.phantom.TumorSpec` (or dicts with its fields), one
    tumor each, e.g. ``[{"location": "juxtapleural", "diameter_mm": 20}]``.

    ``orientation``: axis codes of the array (nibabel convention): ``"LPS"`` (default; the
    affine is ``diag(-sx, -sy, sz)`` like the LIDC NIfTI files), ``"RAS"``, ``"LPI"``, ...
    ``acquisition`` overrides the scanner settings otherwise drawn from the seed (noise, kernel
    blur, slice thickness, reconstruction circle); its ``orientation`` is ignored in favour of
    the ``orientation`` argument.

    ``mimics``: how many non-tumor opacities to add in the lower lungs (dependent and
    plate-like atelectasis, :mod:`lungspread.phantom.mimics`): hazy densities that a tumor
    model must learn to leave alone. They are never in the tumor mask; ``meta["mimics"]``
    lists them. Default 0, so that phantoms made before they existed stay the same; their
    own random stream leaves everything else unchanged.

    Each lesion dict holds ``id``, ``center_mm`` (RAS, centroid of its voxels), ``diameter_mm``
    (equivalent-sphere diameter of the designed solid), ``equivalent_diameter_mm`` and
    ``volume_ml`` (from its voxels), ``voxels``, ``shape``, ``density``, ``location``, ``side``
    and ``hu`` (the tissue value drawn).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 4)
        t0 = now

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    check_count(mimics)
    shape, spacing = resolve_grid(size, spacing_mm)
    signs = parse_orientation(orientation)
    acq_in = acquisition or Acquisition()
    # Seven streams; the first six are the same as when there were six.
    streams = np.random.SeedSequence([int(seed), GENERATOR_VERSION]).spawn(7)
    rng_anat, rng_tree, rng_tumor, rng_acq, rng_noise, rng_place, rng_mimic = (
        np.random.default_rng(s) for s in streams
    )
    an = sample_anatomy(rng_anat)
    # Where the patient lies in the scanner (world = anatomical + offset).
    offset = np.array(
        [rng_anat.normal(0, 6), rng_anat.uniform(-25, 20), rng_anat.uniform(-260, -90)]
    )
    acq = Acquisition(
        orientation.upper(),
        acq_in.noise_hu,
        acq_in.noise_hu_ref,
        acq_in.psf_fwhm_mm,
        acq_in.slice_thickness_mm,
        acq_in.fov_fill_hu,
        acq_in.fov_circle,
    ).resolved(rng_acq, spacing)
    grid, affine = _scan_grid(an, shape, spacing, signs, offset)
    lap("setup")

    # Coarse fields for the trees and the tumors (independent of the output grid).
    z_lo = an.z_top - 330.0
    pgrid, pf = plan_fields(an, (z_lo, an.z_top + 5))
    side = np.where(pgrid.x[None, None, :] > pf.septum_x, 1, 2).astype(np.uint8)
    side = np.where(pf.sdf_lung < 0, side, 0).astype(np.uint8)
    lap("plan")
    trees = _grow_trees(an, pgrid, pf.sdf_lung, side, rng_tree)
    lap("trees")

    labels = render_anatomy(an, grid)
    lap("anatomy")
    _render_trees(an, grid, labels.hu, labels.lung_frac, labels.lungs, labels.airways, trees)
    lap("vessels")

    specs = draw_specs(rng_tumor, tumors, tumor_kinds)
    view = PlanningView(
        pgrid, pf.sdf_lung, pf.sdf_cav, pf.sdf_env, side, trees["arteries"] + trees["veins"]
    )
    placed = place_tumors(rng_place, specs, view)
    drawn_mimics = draw_mimics(rng_mimic, mimics, view, placed)
    render_mimics(drawn_mimics, grid, labels.hu, labels.lung_frac)
    lesion_labels = np.zeros(grid.shape, np.uint8)
    counts = {
        t.id: render_tumor(t, grid, labels.hu, labels.lungs, labels.lung_frac, lesion_labels)
        for t in placed
    }
    lap("tumors")

    gain = _noise_gain(an, grid)
    ct = acquire(labels.hu, spacing, acq, rng_noise, gain)
    lap("acquisition")

    def vol(arr: np.ndarray, **meta: Any) -> Volume:
        return Volume(arr.transpose(2, 1, 0), affine.copy(), meta)

    lesions = _lesion_table(placed, counts, lesion_labels, affine, grid)
    tumor_mask = (lesion_labels > 0).astype(np.uint8)
    meta: dict[str, Any] = {
        "generator": "lungspread.phantom",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": size if isinstance(size, str) else list(size),
        "shape": list(shape),
        "spacing_mm": list(spacing),
        "acquisition": acq.as_dict(),
        "anatomy": _anatomy_summary(an),
        "carina_mm": [round(float(v), 3) for v in offset],
        "requested_tumors": len(specs),
        "mimics": [m.describe() for m in drawn_mimics],
        "timings_s": timings,
    }
    lap("finish")
    meta["timings_s"]["total"] = round(sum(timings.values()), 4)
    return Phantom(
        ct=vol(ct, modality="CT", source=f"phantom(seed={seed})"),
        tumor=vol(tumor_mask),
        lungs=vol(labels.lungs),
        lesions=lesions,
        lesion_labels=vol(lesion_labels),
        airways=vol(labels.airways),
        body=vol(labels.body),
        meta=meta,
    )


def _scan_grid(
    an: Anatomy,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    signs: tuple[int, int, int],
    offset: np.ndarray,
) -> tuple[Grid, np.ndarray]:
    """The output grid in anatomical coordinates and its affine (voxel -> RAS world mm).

    The reconstruction field is centred on the scanner axis (world x = y = 0); the scan runs
    from the top of the chest down over the slice range.
    """
    ni, nj, nk = shape
    sx, sy, sz = spacing
    idx = [np.arange(n, dtype=np.float64) for n in shape]
    x_w = signs[0] * sx * (idx[0] - (ni - 1) / 2)
    y_w = signs[1] * sy * (idx[1] - (nj - 1) / 2)
    z_top_w = an.z_top + offset[2]
    z_w = z_top_w - sz * (nk - 0.5) + sz * idx[2]  # ascending
    if signs[2] < 0:
        z_w = z_w[::-1].copy()
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = signs[0] * sx, signs[1] * sy, signs[2] * sz
    affine[:3, 3] = [x_w[0], y_w[0], z_w[0]]
    grid = Grid(x_w - offset[0], y_w - offset[1], z_w - offset[2])
    return grid, affine


def _grow_trees(
    an: Anatomy,
    pgrid: Grid,
    sdf_lung: np.ndarray,
    side: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, list[Tree]]:
    """Bronchi with their arteries, and veins, for each lung."""
    out: dict[str, list[Tree]] = {"airways": [], "arteries": [], "veins": []}
    for name, label in (("right", 1), ("left", 2)):
        sel = side == label
        pts = lung_points(pgrid, sdf_lung, sel, TREE_POINTS, rng)
        if len(pts) < 10:
            continue
        root = an.hila["airway_root"][name]
        airway = grow_tree(pts, root, rng, LEAF_RADIUS_MM)
        lumen = 0.8 * airway.ra
        wall = 0.18 * lumen + 0.25
        gap = airway.ra + lumen + wall + 0.4
        arteries = offset_tree(airway, gap, rng)
        arteries.a[airway.parent < 0] = an.hila["artery_root"][name]
        out["airways"].append(airway)
        out["arteries"].append(arteries)
        # Veins: upper and lower trees draining to the superior and inferior pulmonary veins.
        vpts = lung_points(pgrid, sdf_lung, sel, TREE_POINTS, rng)
        sup, inf = an.hila["vein_roots"][name]
        cut = 0.5 * (sup[2] + inf[2])
        for root_v, part in ((sup, vpts[:, 2] >= cut), (inf, vpts[:, 2] < cut)):
            if part.sum() >= 5:
                out["veins"].append(grow_tree(vpts[part], root_v, rng, LEAF_RADIUS_MM))
    return out


def _render_trees(
    an: Anatomy,
    grid: Grid,
    hu: np.ndarray,
    lung_frac: np.ndarray,
    lungs: np.ndarray,
    airway_mask: np.ndarray,
    trees: dict[str, list[Tree]],
) -> None:
    sx, sy, _ = grid.spacing
    thin = 1.0 * min(sx, sy)
    blood = an.hu["blood"]
    lung = an.hu["lung"]
    weight = lung_frac
    vessels = trees["arteries"] + trees["veins"]
    for tree in vessels:
        small = tree.ra < thin
        splat_tubes(
            hu,
            grid,
            tree.a[small],
            tree.b[small],
            tree.ra[small],
            tree.rb[small],
            blood - lung,
            weight,
        )
    # Splats of vessels about a voxel wide can pile up above blood: clip them in the lungs.
    lungs_box = _bbox(lungs)
    if lungs_box is not None:
        view = hu[lungs_box]
        cap = np.where(lungs[lungs_box] > 0, F32(blood), F32(1e4))
        np.minimum(view, cap, out=view)
    for tree in vessels:
        big = tree.ra >= thin
        paint_tubes(hu, grid, tree.a[big], tree.b[big], tree.ra[big], tree.rb[big], blood, weight)
    wall_hu = an.hu["airway_wall"]
    for tree in trees["airways"]:
        lumen_a, lumen_b = 0.8 * tree.ra, 0.8 * tree.rb
        wall_a, wall_b = lumen_a * 1.18 + 0.25, lumen_b * 1.18 + 0.25
        vis = lumen_a >= 1.1  # smaller bronchi are hardly visible on CT
        big = vis & (lumen_a >= thin)
        small = vis & ~big
        if small.any():
            # below the voxel size: only the net effect of wall (denser) and lumen (air)
            area_w = wall_a[small] ** 2 - lumen_a[small] ** 2
            area_l = lumen_a[small] ** 2
            net = ((wall_hu - lung) * area_w + (-1000 - lung) * area_l) / wall_a[small] ** 2
            splat_tubes(
                hu, grid, tree.a[small], tree.b[small], wall_a[small], wall_b[small], net, weight
            )
        paint_tubes(hu, grid, tree.a[big], tree.b[big], wall_a[big], wall_b[big], wall_hu, weight)
        paint_tubes(
            hu,
            grid,
            tree.a[big],
            tree.b[big],
            lumen_a[big],
            lumen_b[big],
            -1000.0,
            weight,
            mask_out=airway_mask,
        )


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Index box of the non-zero voxels of a uint8 array (k, j, i)."""
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.nonzero(mask.max(axis=other))[0]
        if len(nz) == 0:
            return None
        out.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return (out[0], out[1], out[2])


def _noise_gain(an: Anatomy, grid: Grid) -> np.ndarray:
    """Relative noise level in-plane: about 1 in the body (more at its centre), 0.2 in air.

    Real scans show 30-50 HU of noise in soft tissue but only 5-7 HU in the air around the
    patient (LIDC 0001 and 0002).
    """
    xx = grid.x[None, :]
    yy = grid.y[:, None]
    q = (xx / (an.half_width * 1.05)) ** 2 + (yy / (an.half_depth * 1.02)) ** 2
    inside = 1.0 / (1.0 + np.exp(-(1.0 - q) * 12.0))
    return np.asarray(0.2 + 0.8 * inside + 0.25 * np.clip(1 - q, 0, 1), np.float32)


def _lesion_table(
    placed: Sequence[Any],
    counts: dict[int, int],
    lesion_labels: np.ndarray,
    affine: np.ndarray,
    grid: Grid,
) -> list[dict[str, Any]]:
    vox_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    out = []
    for t in placed:
        n = counts.get(t.id, 0)
        if n == 0:
            continue
        reach = t.reach_mm + 3 * max(grid.spacing)
        box = grid.box(t.center - reach, t.center + reach)
        assert box is not None
        kk, jj, ii = np.nonzero(lesion_labels[box] == t.id)
        ijk = np.stack([ii + box[2].start, jj + box[1].start, kk + box[0].start], axis=1).astype(
            np.float64
        )
        centre = ijk.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
        volume_ml = n * vox_ml
        out.append(
            {
                "id": int(t.id),
                "center_mm": [round(float(c), 3) for c in centre],
                "diameter_mm": round(float(t.diameter_mm), 3),
                "equivalent_diameter_mm": round(
                    float((6 * volume_ml * 1000 / np.pi) ** (1 / 3)), 3
                ),
                "volume_ml": float(volume_ml),
                "voxels": int(n),
                "shape": t.shape,
                "density": t.density,
                "location": t.location,
                "side": t.side,
                "hu": round(float(t.hu), 1),
            }
        )
    return out


def _anatomy_summary(an: Anatomy) -> dict[str, Any]:
    return {
        "width_scale": round(an.sw, 4),
        "depth_scale": round(an.sap, 4),
        "height_scale": round(an.sz, 4),
        "fat_mm": round(an.fat_mm, 2),
        "contrast": an.contrast,
        "breasts": an.breasts,
        "table": an.table,
        "lung_hu": round(an.hu["lung"], 1),
        "blood_hu": round(an.hu["blood"], 1),
    }

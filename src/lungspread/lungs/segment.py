"""Lung masks from HU alone: the classical pipeline, on a coarse grid, refined at full resolution.

Steps (coarse grid of about 2 x 2 x 2.5 mm, block means of HU, canonical axis order):

1. Body: the largest connected component of tissue (HU >= threshold), holes filled slice by
   slice. Air outside it (room air, scanner padding of -2048/-3024, air between the patient and
   the table) is outside air.
2. Air inside the body (HU < threshold) minus the trachea and main bronchi (:mod:`.airway`).
3. The lungs are the large air components; if the two lungs touch they are split
   (:mod:`.split`); the side of each comes from its centroid's world x.
4. Vessels and other holes are filled (per slice, size-limited, and in 3D). Then each lung is
   closed with a ball of ``ball_radius_mm`` (a rolling ball along the pleura, so a tumor
   touching the chest wall or the mediastinum that the threshold left out comes back) and,
   slice by slice, the hollows of the lung's convex hull on the chest-wall side are filled
   (large tumors on the costal pleura). Hollows that open towards the mediastinum (heart,
   hilum, aorta, spine) are not filled by the hull step, so the heart is never swallowed.
   What these steps added grows by ``margin_voxels`` into the tissue around it: their
   surface is a chord across the tumor while the pleura it stands for bulges outwards.
5. Back on the full grid: each coarse block takes its label; blocks on a lung edge that were
   air or outside are decided voxel by voxel by the HU threshold (plus the pleural
   partial-volume layer, ``outer_edge``), so the edge follows the pleura at full resolution,
   while the tissue that step 4 chose to include (vessels, tumors) stays inside whole.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from lungspread.errors import InputError
from lungspread.lungs._grid import WorkGrid, block_mean, canonical_grid, full_index
from lungspread.lungs._morph import capped, fill_holes_per_slice, inplane_structure
from lungspread.lungs.airway import find_airway
from lungspread.lungs.split import LEFT, MIN_LUNG_ML, RIGHT, select_and_split
from lungspread.volume import Volume

log = logging.getLogger(__name__)

_CROSS = ndi.generate_binary_structure(3, 1)
#: Holes in a slice up to this area are always filled (vessels); larger ones (a tumor, the
#: top of the diaphragm's dome) only when lung closes them below.
SMALL_HOLE_MM2 = 300.0
#: Coarse voxels above this are bone (or calcium); hollows holding them are no tumor.
BONE_HU = 180.0
#: How far below a stack of hollows or holes lung must close it (a tumor's lower side).
CAP_LOOK_MM = 40.0
#: Only added pieces of at least this volume (a small tumor) grow by the margin.
MARGIN_MIN_ML = 0.02


@dataclass(frozen=True)
class LungOptions:
    """Parameters of :func:`segment_lungs` (the defaults suit adult chest CT)."""

    air_threshold_hu: float = -400.0
    """Voxels below this are air-like (lung parenchyma, airways, outside air)."""
    working_spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.5)
    """Target voxel size of the coarse grid (x, y, z); the factors are whole numbers."""
    ball_radius_mm: float = 15.0
    """Radius of the rolling ball that brings pleura-attached tumors into the lung."""
    hull_fill: bool = True
    """Also fill the chest-wall-side hollows of each lung's per-slice convex hull."""
    margin_voxels: int = 2
    """Coarse voxels (about 2 mm each) by which tissue added by the ball and hull steps
    grows outwards into the tissue around it."""
    refine_edges: bool = True
    """Decide edge voxels at full resolution by HU (else plain nearest upsampling)."""
    outer_edge: bool = True
    """At full resolution, tissue voxels touching lung air in-plane count as lung: the edge
    sits on the pleura, so partial-volume voxels and a tumor's pleural rim stay inside."""
    outer_edge_max_hu: float = 0.0
    """...but only those below this HU (partial volume; not the solid chest wall)."""


@dataclass
class CoarseResult:
    """Intermediate masks on the coarse grid (canonical axis order), for tests and debugging."""

    grid: WorkGrid
    hu: np.ndarray
    body: np.ndarray
    airway: np.ndarray
    lungs_air: np.ndarray
    """uint8 labels of the air-only lungs (before filling)."""
    labels: np.ndarray
    """uint8 labels after filling vessels and pleura-attached tissue."""
    solid: np.ndarray
    """Lung blocks that keep their label whole at full resolution (filled vessels, tumors)."""
    timings_s: dict[str, float] = field(default_factory=dict)


def segment_lungs(ct: Volume, options: LungOptions | None = None) -> Volume:
    """Label the lungs of a chest CT: uint8 on the CT's grid, 0 outside, 1 right, 2 left.

    Right and left are the patient's (decided through the affine in RAS+ world space), as in
    the lungmask convention. Raises :class:`~lungspread.errors.InputError` when no lung-like
    air is found.
    """
    labels, _ = segment_lungs_timed(ct, options)
    return labels


def segment_lungs_timed(
    ct: Volume, options: LungOptions | None = None
) -> tuple[Volume, dict[str, float]]:
    """:func:`segment_lungs` plus the seconds spent in each stage."""
    opts = options or LungOptions()
    t0 = time.perf_counter()
    grid = canonical_grid(ct, opts.working_spacing_mm)
    canon = grid.to_canonical(np.asarray(ct.array))
    source = ct.meta.get("source")
    coarse = segment_coarse(canon, grid, opts, None if source is None else str(source))
    t1 = time.perf_counter()
    full = to_full_resolution(coarse, canon, opts)
    arr = grid.from_canonical(full)
    t2 = time.perf_counter()
    timings = {**coarse.timings_s, "full_resolution": t2 - t1, "total": t2 - t0}
    meta = {k: v for k, v in ct.meta.items() if k in ("source", "format")}
    out = Volume(arr, ct.affine.copy(), {**meta, "labels": {"1": "right lung", "2": "left lung"}})
    return out, timings


def segment_coarse(
    canon: np.ndarray, grid: WorkGrid, opts: LungOptions, source: str | None = None
) -> CoarseResult:
    """Steps 1-4 on the coarse grid (``source`` names the file in error messages)."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    hu = block_mean(canon, grid)
    thr = opts.air_threshold_hu
    times["downsample"] = time.perf_counter() - t

    t = time.perf_counter()
    tissue = hu >= thr
    body = _largest_component(tissue)
    body = ndi.binary_fill_holes(body, structure=inplane_structure(1))
    air = body & ~tissue
    times["body"] = time.perf_counter() - t

    t = time.perf_counter()
    airway = find_airway(hu, body, grid)
    # the lumen plus one voxel: the wall, whose partial-volume blocks bridge airway and lung
    airway = ndi.binary_dilation(airway, structure=inplane_structure(2)) & air
    times["airway"] = time.perf_counter() - t

    t = time.perf_counter()
    candidates = air & ~airway
    lungs_air = select_and_split(candidates, hu, body, grid)
    if not lungs_air.any():
        raise InputError(
            f"no lung found: expected air-filled lungs (HU < {thr:.0f}) of at least "
            f"{MIN_LUNG_ML:.0f} mL inside the body, found "
            f"{air.sum() * grid.coarse_voxel_ml:.0f} mL of air inside the body in all",
            source,
        )
    times["select_split"] = time.perf_counter() - t

    t = time.perf_counter()
    labels, solid = fill_lungs(lungs_air, body, airway, hu, grid, opts)
    times["fill"] = time.perf_counter() - t
    return CoarseResult(grid, hu, body, airway, lungs_air, labels, solid, times)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndi.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    out: np.ndarray = lab == int(sizes.argmax())
    return out


def _bbox(mask: np.ndarray, pad: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.nonzero(mask.any(axis=other))[0]
        lo = max(int(idx[0]) - pad[ax], 0)
        hi = min(int(idx[-1]) + pad[ax] + 1, mask.shape[ax])
        out.append(slice(lo, hi))
    return (out[0], out[1], out[2])


def _closing_ball(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` (two Euclidean distance transforms)."""
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in spacing]
    m = np.pad(mask, [(p, p) for p in pad])
    dilated = ndi.distance_transform_edt(~m, sampling=spacing) <= radius_mm
    closed = ndi.distance_transform_edt(dilated, sampling=spacing) > radius_mm
    inner = tuple(slice(p, p + n) for p, n in zip(pad, mask.shape, strict=True))
    out: np.ndarray = closed[inner] | mask
    return out


def fill_lungs(
    lungs_air: np.ndarray,
    body: np.ndarray,
    airway: np.ndarray,
    hu: np.ndarray,
    grid: WorkGrid,
    opts: LungOptions,
) -> tuple[np.ndarray, np.ndarray]:
    """Fill vessels and holes, then bring pleura-attached tissue into each lung (step 4).

    Returns the labels and the ``solid`` mask: lung voxels that are tissue the pipeline chose
    to include (filled holes and vessels, added tumors and their margin), which the
    full-resolution step keeps whole instead of re-deciding them by HU.
    """
    sp = grid.coarse_spacing_mm
    # keep well away from the airway lumen and wall (about 4 mm)
    airway_zone = ndi.binary_dilation(airway, structure=inplane_structure(2), iterations=2)
    allowed = body & ~airway_zone
    present = [lbl for lbl in (RIGHT, LEFT) if (lungs_air == lbl).any()]
    small_px = SMALL_HOLE_MM2 / (sp[0] * sp[1])
    down = -grid.superior_sign
    look = max(1, int(np.ceil(CAP_LOOK_MM / sp[2])))

    # vessels and other holes, each lung on its own
    filled: dict[int, np.ndarray] = {}
    for lbl in present:
        m = lungs_air == lbl
        box = _bbox(m, (1, 1, 1))
        full = np.zeros_like(m)
        full[box] = ndi.binary_fill_holes(
            fill_holes_per_slice(m[box], small_px=small_px, down=down, look_slices=look)
        )
        filled[lbl] = full
    filled_any = np.zeros_like(lungs_air, dtype=bool)
    out = np.zeros(lungs_air.shape, dtype=np.uint8)
    for lbl in present:
        out[filled[lbl] & (out == 0)] = lbl
        filled_any |= filled[lbl]

    # the hull step looks at the lungs as they are before the ball: after it, a tumor's
    # hollow would be half filled and no longer look like one
    hull_added = out.copy()
    if opts.hull_fill and len(present) == 2:
        _fill_hull_hollows(hull_added, allowed, body, hu, sp, down, look)
    if opts.ball_radius_mm > 0:
        for lbl in present:
            m = filled[lbl]
            box = _bbox(m, (1, 1, 1))  # a closing stays within the bounding box
            closed = np.zeros_like(m)
            closed[box] = _closing_ball(m[box], opts.ball_radius_mm, sp)
            out[closed & allowed & ~filled_any & (out == 0)] = lbl
    take = (out == 0) & (hull_added > 0)
    out[take] = hull_added[take]

    added = (out > 0) & ~filled_any
    # Kept whole at full resolution: added pieces that reach below the lung's surface (a
    # tumor, however small). Pieces that lie wholly on the surface are slivers of a digital
    # pleura (partial-volume voxels that are mostly tissue) and stay with the HU decision.
    solid = _reaching_inside(added, out > 0) | (filled_any & (lungs_air == 0))
    # The ball's and the hull's surface is a chord or an inward arc across the tumor, while
    # the pleura it replaces bulges outwards: tumor tissue beyond it would be lost. So the
    # thick part of what was added grows by ``margin_voxels`` into the tissue around it.
    seeds = _thick_components(added, MARGIN_MIN_ML / grid.coarse_voxel_ml)
    solid |= seeds
    for _ in range(opts.margin_voxels):
        grown = ndi.maximum_filter(np.where(seeds, out, 0), footprint=_CROSS)
        ring = (grown > 0) & (out == 0) & allowed
        out[ring] = grown[ring]
        seeds |= ring
        solid |= ring

    for lbl in present:
        m = out == lbl
        box = _bbox(m, (1, 1, 1))
        crop = fill_holes_per_slice(m[box], small_px=small_px, down=down, look_slices=look)
        sub = out[box]
        sub[crop & (sub == 0)] = lbl
    return out, solid & (out > 0)


def _reaching_inside(added: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Connected pieces of ``added`` (6-neighbourhood) with a voxel off the lung's surface."""
    inner = added & ndi.binary_erosion(lungs, structure=_CROSS)
    lab, n = ndi.label(added, structure=_CROSS)
    if n == 0:
        return added
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(lab[inner])] = True
    keep[0] = False
    out: np.ndarray = keep[lab]
    return out


def _thick_components(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """The parts of ``mask`` that survive an opening by the 6-neighbourhood (no slivers) with
    their rim, in connected pieces of at least ``min_voxels``."""
    core = ndi.binary_opening(mask, structure=_CROSS)
    # give back the thin rim of those parts (two steps), not slivers further along the pleura
    core = ndi.binary_dilation(core, structure=_CROSS, iterations=2, mask=mask)
    lab, n = ndi.label(core, structure=np.ones((3, 3, 3), dtype=bool))
    if n == 0:
        return core
    keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_voxels
    keep[0] = False
    out: np.ndarray = keep[lab]
    return out


def _fill_hull_hollows(
    labels: np.ndarray,
    allowed: np.ndarray,
    body: np.ndarray,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    down: int,
    look_slices: int,
) -> None:
    """Per slice, fill each lung's convex-hull hollows that open onto the chest wall only.

    A hollow is a connected part of (the lung's convex hull minus the lung) within a slice.
    Its open side (the hull's chord) faces the chest wall when the pixels just beyond it are
    nearer the body's surface than the other lung; it faces the mediastinum (heart, hilum,
    aorta, spine) when they are nearer the other lung. Only hollows whose open side mostly
    faces the chest wall are filled: a tumor on the costal pleura comes in, the heart does
    not. One-pixel slivers along a digital pleura, hollows with bone in them (a rib's or the
    sternum's impression), and stacks of hollows that lung does not close below (the
    diaphragm's dome or the heart seen through a crescent of lung) are left open too.
    """
    both_present = (labels == RIGHT).any(axis=(0, 1)) & (labels == LEFT).any(axis=(0, 1))
    ks = np.nonzero(both_present)[0]
    if ks.size == 0:
        return
    box = _bbox(labels > 0, (2, 2, 0))
    box = (box[0], box[1], slice(int(ks[0]), int(ks[-1]) + 1))
    sub = labels[box]
    shape = sub.shape
    hull = {RIGHT: np.zeros(shape, bool), LEFT: np.zeros(shape, bool)}
    outline = {}
    for lbl in (RIGHT, LEFT):
        m = sub == lbl
        outline[lbl] = m & ~ndi.binary_erosion(m, structure=inplane_structure(1))
    for k in range(shape[2]):
        pts_r = np.argwhere(outline[RIGHT][:, :, k])
        pts_l = np.argwhere(outline[LEFT][:, :, k])
        if pts_r.shape[0] < 8 or pts_l.shape[0] < 8:
            continue
        vr = _hull_vertices(pts_r)
        vl = _hull_vertices(pts_l)
        hull[RIGHT][:, :, k] = _polygon_mask(vr, shape[:2])
        hull[LEFT][:, :, k] = _polygon_mask(vl, shape[:2])
    touch = inplane_structure(2)
    al = allowed[box]
    # the body's surface in these slices, in the box's index frame
    body_k = body[:, :, box[2]]
    skin = _edge_points(body_k)
    offset = np.array([-box[0].start, -box[1].start, 0])
    for lbl, other in ((RIGHT, LEFT), (LEFT, RIGHT)):
        own = sub == lbl
        hollow = hull[lbl] & ~own & (sub != other) & al
        if not hollow.any():
            continue
        hlab, n = ndi.label(hollow, structure=touch)
        # the pixels just beyond each hollow's open side (outside the lung's own hull): more
        # of them nearer the body's surface (chest wall) than the other lung (mediastinum)
        beyond = ndi.maximum_filter(hlab, footprint=touch)
        rim = ~hull[lbl] & (beyond > 0)
        pts = np.argwhere(rim)
        wall = (
            _nearest_mm(skin, pts, spacing, offset)
            < _nearest_mm(_edge_points(sub == other), pts, spacing)
            if pts.size
            else np.zeros(0, dtype=bool)
        )
        ids = beyond[rim]
        to_wall = np.bincount(ids[wall], minlength=n + 1)
        to_mediastinum = np.bincount(ids[~wall], minlength=n + 1)
        keep = to_wall > to_mediastinum
        # a hollow with bone in it is a rib's or the sternum's impression, not a tumor
        sizes = np.bincount(hlab.ravel(), minlength=n + 1)
        bony = np.bincount(hlab[hu[box] > BONE_HU], minlength=n + 1)
        keep &= bony < 0.1 * sizes
        # more than a one-pixel sliver: some pixel has its whole 3x3 neighbourhood inside
        deep = ndi.binary_erosion(hollow, structure=touch)
        thick = np.zeros(n + 1, dtype=bool)
        thick[np.unique(hlab[deep])] = True
        keep &= thick
        keep[0] = False
        add = capped(keep[hlab], labels == lbl, down, look_slices, box) & (sub == 0)
        sub[add] = lbl


def _edge_points(mask: np.ndarray) -> np.ndarray:
    """Indices (N, 3) of the pixels of ``mask`` on its in-slice boundary."""
    edge = mask & ~ndi.binary_erosion(mask, structure=inplane_structure(1), border_value=0)
    return np.argwhere(edge)


def _nearest_mm(
    points: np.ndarray,
    queries: np.ndarray,
    spacing: tuple[float, float, float],
    offset: np.ndarray | None = None,
) -> np.ndarray:
    """In-slice distance (mm) from each query (N, 3 indices) to the nearest of ``points`` in
    the same slice (inf where that slice has none). ``offset`` shifts ``points`` first."""
    from scipy.spatial import cKDTree

    if points.shape[0] == 0:
        return np.full(queries.shape[0], np.inf)
    pts = points + (0 if offset is None else offset)
    # slices far apart in the third coordinate: the nearest point is always in the same slice
    far = 1e6
    scale = np.array([spacing[0], spacing[1], far])
    dist, _ = cKDTree(pts * scale).query(queries * scale)
    out: np.ndarray = np.where(dist < far / 2, dist, np.inf)
    return out


_CORNERS = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])


def _hull_vertices(points: np.ndarray) -> np.ndarray:
    """Vertices (in order) of the convex hull of pixels given by their centres (N, 2): the
    hull of their corners, so that every pixel lies wholly inside."""
    from scipy.spatial import ConvexHull

    corners = (points[:, None, :] + _CORNERS[None, :, :]).reshape(-1, 2)
    hull = ConvexHull(corners)
    out: np.ndarray = corners[hull.vertices]
    return out


def _polygon_mask(vertices: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels whose centres lie inside a convex polygon (vertices as row, col), row by row."""
    a = vertices
    b = np.roll(vertices, -1, axis=0)
    rows = np.arange(shape[0], dtype=np.float64)[None, :]
    r0, r1 = a[:, 0:1], b[:, 0:1]
    c0, c1 = a[:, 1:2], b[:, 1:2]
    span = (rows >= np.minimum(r0, r1)) & (rows <= np.maximum(r0, r1)) & (r0 != r1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = c0 + (rows - r0) / (r1 - r0) * (c1 - c0)
    lo = np.where(span, cross, np.inf).min(axis=0)
    hi = np.where(span, cross, -np.inf).max(axis=0)
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    out: np.ndarray = (cols >= lo[:, None]) & (cols <= hi[:, None])
    return out


def to_full_resolution(coarse: CoarseResult, canon: np.ndarray, opts: LungOptions) -> np.ndarray:
    """Step 5: coarse labels -> full canonical grid, edge blocks decided by HU voxel by voxel.

    Every voxel takes its block's label; then in each block on a lung edge (a label change in
    its 3x3x3 coarse neighbourhood) that is not solid tissue the pipeline chose to include, a
    voxel is lung when its HU is below the threshold or, with ``outer_edge``, when it touches
    such a voxel within its slice (the pleural partial-volume layer).
    """
    grid = coarse.grid
    labels = coarse.labels
    f = grid.factors
    n = grid.coarse_shape
    big_n = grid.full_shape
    out = np.zeros(big_n, dtype=np.uint8)
    if not labels.any():
        return out
    cbox = _bbox(labels > 0, (1, 1, 1))
    fbox = tuple(
        slice(s.start * fa, big_n[a] if s.stop >= n[a] else s.stop * fa)
        for a, (s, fa) in enumerate(zip(cbox, f, strict=True))
    )
    idx = [full_index(n[a], f[a], big_n[a])[fbox[a]] for a in range(3)]
    out[fbox] = labels[np.ix_(idx[0], idx[1], idx[2])]
    if not opts.refine_edges:
        return out

    lab_c = labels[cbox]
    hi = ndi.maximum_filter(lab_c, size=3)
    lo = ndi.minimum_filter(lab_c, size=3)
    edge = (hi != lo) & ~coarse.solid[cbox]
    airway_zone = ndi.binary_dilation(coarse.airway[cbox], iterations=1)
    edge &= ~((lab_c == 0) & (airway_zone | ~coarse.body[cbox]))
    cand = np.where(lab_c > 0, lab_c, hi)[edge]
    coords = np.argwhere(edge)
    if coords.size == 0:
        return out
    offs = np.stack(np.meshgrid(*[np.arange(fa) for fa in f], indexing="ij"), axis=-1)
    offs = offs.reshape(-1, 3)
    thr = opts.air_threshold_hu
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
    chunk = 32768  # blocks per pass, to bound memory
    for s in range(0, coords.shape[0], chunk):
        c = coords[s : s + chunk]
        fi = [
            np.minimum((c[:, a, None] + cbox[a].start) * f[a] + offs[None, :, a], big_n[a] - 1)
            .ravel()
            .astype(np.intp)
            for a in range(3)
        ]
        is_air = canon[fi[0], fi[1], fi[2]] < thr
        lung = is_air.copy()
        if opts.outer_edge:
            soft = canon[fi[0], fi[1], fi[2]] < opts.outer_edge_max_hu
            for di, dj in steps:
                ii = np.clip(fi[0] + di, 0, big_n[0] - 1)
                jj = np.clip(fi[1] + dj, 0, big_n[1] - 1)
                lung |= canon[ii, jj, fi[2]] < thr
            # tissue next to air only counts where the block itself holds lung air
            has_air = is_air.reshape(c.shape[0], -1).any(axis=1)
            lung &= (np.repeat(has_air, offs.shape[0]) & soft) | is_air
        lab = np.repeat(cand[s : s + chunk], offs.shape[0])
        out[fi[0], fi[1], fi[2]] = np.where(lung, lab, 0).astype(np.uint8)
    return out

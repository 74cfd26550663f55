"""Branching trees of bronchi, pulmonary arteries and pulmonary veins that fill the lungs.

Trees grow by recursive space division, after Kitaoka et al. (J Appl Physiol 1999): a branch
supplies a set of points spread through the lung; it heads towards their centroid, stops
part of the way there, and the set is cut in two by a plane that contains the branch and
splits the set across its widest spread; each half gets a daughter branch. Radii follow
Murray's law from the number of points a branch supplies (r ~ n^(1/3)), so vessels thin
towards the periphery and branch asymmetrically like real ones. All branches of one
generation are processed together (no Python recursion), so a tree of thousands of branches
grows in milliseconds.

Bronchi and arteries run together (an artery beside each bronchus, as in real lungs); the
veins are a separate tree rooted at the left atrium that interleaves with them.

Rendering: branches thicker than about a voxel are drawn as tapered capsules with partial
volume; thinner ones are splatted (their volume spread trilinearly over the voxels they pass
through), which is what a scanner does with structures below its resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungspread.phantom.geometry import F32, Grid, coverage, sd_segment

MURRAY_EXPONENT = 3.0


@dataclass
class Tree:
    """Branches as segments ``a -> b`` with radii ``ra -> rb`` (mm), children after parents."""

    a: np.ndarray  # (m, 3)
    b: np.ndarray  # (m, 3)
    ra: np.ndarray  # (m,)
    rb: np.ndarray  # (m,)
    parent: np.ndarray  # (m,) index of the parent branch, -1 for the root
    npts: np.ndarray  # (m,) points supplied

    def __len__(self) -> int:
        return len(self.a)


def grow_tree(
    points: np.ndarray,
    root: np.ndarray,
    rng: np.random.Generator,
    r_leaf_mm: float,
    length_fraction: tuple[float, float] = (0.32, 0.5),
    max_generations: int = 40,
) -> Tree:
    """Grow one tree from ``root`` that supplies every point in ``points`` (N, 3)."""
    pts = np.asarray(points, np.float64)
    n = len(pts)
    gid = np.zeros(n, np.int64)  # group of each point, -1 when its branch has ended
    starts = np.asarray(root, np.float64)[None, :]
    parents = np.array([-1])
    out_a: list[np.ndarray] = []
    out_b: list[np.ndarray] = []
    out_r: list[np.ndarray] = []
    out_p: list[np.ndarray] = []
    out_n: list[np.ndarray] = []
    n_emitted = 0
    for gen in range(max_generations):
        live = gid >= 0
        if not live.any():
            break
        g = len(starts)
        cnt = np.bincount(gid[live], minlength=g).astype(np.float64)
        cent = (
            np.stack(
                [np.bincount(gid[live], weights=pts[live, d], minlength=g) for d in range(3)],
                axis=1,
            )
            / np.maximum(cnt, 1)[:, None]
        )
        v = cent - starts
        length = np.linalg.norm(v, axis=1)
        radius = r_leaf_mm * np.maximum(cnt, 1) ** (1.0 / MURRAY_EXPONENT)
        leaf = (cnt <= 1) | (length < 1.5 * radius) | (gen == max_generations - 1)
        frac = rng.uniform(*length_fraction, size=g)
        step = np.maximum(frac * length, np.minimum(length, 2.5 * radius))
        unit = v / np.maximum(length, 1e-9)[:, None]
        ends = np.where(leaf[:, None], cent, starts + unit * step[:, None])
        keep = cnt > 0
        idx_new = np.full(g, -1, np.int64)
        idx_new[keep] = n_emitted + np.arange(int(keep.sum()))
        out_a.append(starts[keep])
        out_b.append(ends[keep])
        out_r.append(radius[keep])
        out_p.append(parents[keep])
        out_n.append(cnt[keep])
        n_emitted += int(keep.sum())
        # Split each non-leaf group across its widest spread perpendicular to the branch.
        split = keep & ~leaf
        pg = gid.copy()
        pg[~live] = -1
        ended = (pg >= 0) & ~split[np.maximum(pg, 0)]
        gid[ended] = -1
        live = gid >= 0
        if not live.any():
            break
        d = pts[live] - cent[gid[live]]
        cov = np.zeros((g, 3, 3))
        for i in range(3):
            for j in range(i, 3):
                c = np.bincount(gid[live], weights=d[:, i] * d[:, j], minlength=g)
                cov[:, i, j] = c
                cov[:, j, i] = c
        proj = np.eye(3)[None] - unit[:, :, None] * unit[:, None, :]
        m = proj @ cov @ proj
        _, vecs = np.linalg.eigh(m)
        normal = vecs[:, :, 2]
        side = (np.einsum("ij,ij->i", d, normal[gid[live]]) > 0).astype(np.int64)
        # New groups: two per split group (empty halves simply vanish next round).
        rank = np.cumsum(split) - 1
        child = 2 * rank[gid[live]] + side
        gid_live = gid[live]
        gid[live] = child
        n_split = int(split.sum())
        split_idx = np.nonzero(split)[0]
        starts = np.repeat(ends[split_idx], 2, axis=0)
        parents = np.repeat(idx_new[split_idx], 2)
        del gid_live
        if n_split == 0:
            break
    a = np.concatenate(out_a)
    b = np.concatenate(out_b)
    ra = np.concatenate(out_r)
    parent = np.concatenate(out_p)
    npts = np.concatenate(out_n)
    # Taper: each branch ends with the radius of its thickest child (leaves narrow to 75 %).
    rb = ra * 0.75
    has_parent = parent >= 0
    np.maximum.at(rb, parent[has_parent], ra[has_parent])
    rb = np.minimum(rb, ra)
    return Tree(a, b, ra, rb, parent, npts)


def offset_tree(tree: Tree, gap_mm: np.ndarray, rng: np.random.Generator) -> Tree:
    """A companion tree beside ``tree`` (arteries beside bronchi): every node shifted sideways.

    Node shifts are perpendicular to the branch arriving at the node and are shared by the
    branches that meet there, so the companion tree stays connected.
    """
    u = tree.b - tree.a
    u /= np.maximum(np.linalg.norm(u, axis=1), 1e-9)[:, None]
    ref = np.where(
        np.abs(u[:, 2:3]) < 0.85, np.array([[0.0, 0.0, 1.0]]), np.array([[1.0, 0.0, 0.0]])
    )
    side = np.cross(u, ref)
    side /= np.maximum(np.linalg.norm(side, axis=1), 1e-9)[:, None]
    flip = np.where(rng.random(len(tree)) < 0.5, -1.0, 1.0)
    # children inherit their parent's side so the companion does not swap sides at each fork
    for i in range(len(tree)):
        p = tree.parent[i]
        if p >= 0:
            flip[i] = flip[p] if np.dot(side[i], side[p]) >= 0 else -flip[p]
    shift_end = side * (flip * gap_mm)[:, None]
    shift_start = np.where(tree.parent[:, None] >= 0, shift_end[np.maximum(tree.parent, 0)], 0.0)
    return Tree(tree.a + shift_start, tree.b + shift_end, tree.ra, tree.rb, tree.parent, tree.npts)


def lung_points(
    grid: Grid,
    sdf_lung: np.ndarray,
    select: np.ndarray,
    n: int,
    rng: np.random.Generator,
    inset_mm: float = 2.0,
) -> np.ndarray:
    """``n`` points spread through the voxels of ``select`` inside the lung.

    The outer 3 cm get up to twice the density, so that thin vessels reach towards the pleura
    as they do in real lungs.
    """
    ok = select & (sdf_lung < -inset_mm)
    kk, jj, ii = np.nonzero(ok)
    if len(kk) == 0:
        return np.zeros((0, 3))
    depth = -sdf_lung[kk, jj, ii]
    p = 1.0 + 1.0 * np.clip(1.0 - depth / 30.0, 0.0, 1.0)
    pick = rng.choice(len(kk), size=min(n, len(kk)), replace=False, p=p / p.sum())
    sx, sy, sz = grid.spacing
    pts = np.stack([grid.x[ii[pick]], grid.y[jj[pick]], grid.z[kk[pick]]], axis=1)
    pts += rng.uniform(-0.5, 0.5, size=pts.shape) * np.array([sx, sy, sz])
    return pts


# ---------------------------------------------------------------------------------------------
# Rendering


def paint_tubes(
    hu: np.ndarray,
    grid: Grid,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    value: float,
    weight: np.ndarray | None,
    mask_out: np.ndarray | None = None,
) -> None:
    """Draw tapered capsules (partial volume) into ``hu``; ``weight`` scales the coverage."""
    sx, sy, _ = grid.spacing
    w = float(min(sx, sy))
    margin = np.maximum(ra, rb) + w
    lo = np.minimum(a, b) - margin[:, None]
    hi = np.maximum(a, b) + margin[:, None]
    boxes = grid.boxes(lo, hi)
    ok = (boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2]) & (boxes[:, 5] > boxes[:, 4])
    val = F32(value)
    for n in np.nonzero(ok)[0]:
        k0, k1, j0, j1, i0, i1 = boxes[n]
        box = (slice(k0, k1), slice(j0, j1), slice(i0, i1))
        zz, yy, xx = grid.mesh(box)
        sdf = sd_segment(zz, yy, xx, a[n], b[n], float(ra[n]), float(rb[n]))
        frac = coverage(sdf, w)
        if weight is not None:
            frac *= weight[box]
        view = hu[box]
        view += frac * (val - view)
        if mask_out is not None:
            mview = mask_out[box]
            mview |= (sdf < 0) & (frac > 0.25)


def splat_tubes(
    hu: np.ndarray,
    grid: Grid,
    a: np.ndarray,
    b: np.ndarray,
    ra: np.ndarray,
    rb: np.ndarray,
    delta_hu: float | np.ndarray,
    weight: np.ndarray | None,
) -> None:
    """Add thin tubes as volume spread trilinearly: ``hu += delta * tube volume / voxel``."""
    if len(a) == 0:
        return
    h = 0.5 * min(grid.spacing)
    seg_len = np.linalg.norm(b - a, axis=1)
    ns = np.maximum(1, np.ceil(seg_len / h)).astype(np.int64)
    seg = np.repeat(np.arange(len(a)), ns)
    first = np.repeat(np.cumsum(ns) - ns, ns)
    t = (np.arange(len(seg)) - first + 0.5) / ns[seg]
    pts = a[seg] + (b - a)[seg] * t[:, None]
    r = ra[seg] + (rb - ra)[seg] * t
    dl = seg_len[seg] / ns[seg]
    dh = np.broadcast_to(np.asarray(delta_hu, np.float64), (len(a),))[seg]
    wt = np.pi * r * r * dl / grid.voxel_mm3 * dh
    fi = grid.fractional_index(pts)
    base = np.floor(fi).astype(np.int64)
    frac = fi - base
    shape = np.array(grid.shape)
    flat = hu.reshape(-1)
    wflat = None if weight is None else weight.reshape(-1)
    for corner in range(8):
        off = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        idx = base + off
        cw = np.prod(np.where(off == 1, frac, 1 - frac), axis=1) * wt
        ok = np.all((idx >= 0) & (idx < shape), axis=1)
        lin = np.ravel_multi_index(tuple(idx[ok].T), grid.shape)
        vals = cw[ok]
        if wflat is not None:
            vals = vals * wflat[lin].astype(np.float64)
        np.add.at(flat, lin, vals.astype(F32))

"""Where lesions sit relative to the lungs: side, zone, lobe, pleura, lung involvement.

Lung label maps follow the lungmask convention: 0 background, 1 right lung, 2 left lung.
Lobe maps follow lungmask's LTRCLobes convention: 1 left upper, 2 left lower, 3 right upper,
4 right middle, 5 right lower. Zones: 1 upper, 2 middle, 3 lower third of each lung by height
(world z of voxel centres, the lung's lowest to highest voxel split in three equal heights).

The pleura is taken as the surface of the lung mask (costal, mediastinal and diaphragmatic
pleura alike; at the hilum the mask's surface is the hilum). Distances between a lesion and
that surface are gaps between voxel boxes, not between voxel centres: two voxels that share a
face, edge or corner are 0 mm apart, two voxels with one voxel between them along x are one
x-spacing apart. See :func:`gap_mm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from lungspread.errors import GeometryError, InputError
from lungspread.spread.lesions import Lesion
from lungspread.volume import Volume

SIDE_NAMES = {1: "right", 2: "left"}
ZONE_NAMES = {1: "upper", 2: "middle", 3: "lower"}
LOBE_NAMES = {
    1: "left_upper",
    2: "left_lower",
    3: "right_upper",
    4: "right_middle",
    5: "right_lower",
}
#: Lobe label -> lung label (1 right, 2 left).
LOBE_SIDE = {1: 2, 2: 2, 3: 1, 4: 1, 5: 1}


def _describe(vol: Volume) -> str:
    sp = "x".join(f"{s:.4g}" for s in vol.spacing)
    org = ", ".join(f"{o:.4g}" for o in vol.origin)
    return f"shape {vol.shape}, spacing {sp} mm, origin ({org}) mm"


def check_same_grid(ref: Volume, other: Volume, ref_name: str, other_name: str) -> None:
    """Raise :class:`GeometryError` unless ``other`` lies on ``ref``'s voxel grid.

    The tolerance is 1 % of the smallest voxel spacing on every affine entry.
    """
    atol = 0.01 * min(ref.spacing)
    if ref.shape == other.shape and np.allclose(ref.affine, other.affine, atol=atol, rtol=0):
        return
    raise GeometryError(
        f"{other_name} ({_describe(other)}) is not on the {ref_name} grid "
        f"({_describe(ref)}); resample it onto the {ref_name} first",
        other.meta.get("source"),
    )


def _chunks(n: int, size: int = 32) -> list[slice]:
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def world_coordinate(affine: np.ndarray, row: int, shape: tuple[int, ...], ks: slice) -> np.ndarray:
    """World coordinate ``row`` (0 x, 1 y, 2 z) of the voxel centres of slab ``[:, :, ks]``."""
    a = affine[row]
    i = np.arange(shape[0], dtype=np.float64)[:, None, None] * a[0]
    j = np.arange(shape[1], dtype=np.float64)[None, :, None] * a[1]
    k = np.arange(ks.start, ks.stop, dtype=np.float64)[None, None, :] * a[2]
    out: np.ndarray = i + j + k + a[3]
    return out


def split_binary_lungs(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Label a 0/1 mask of both lungs 1 (right) / 2 (left) at the plane x = centroid x (RAS)."""
    centroid = mask_centroid_mm(mask, affine)
    out = np.zeros(mask.shape, dtype=np.uint8)
    for ks in _chunks(mask.shape[2]):
        x = world_coordinate(affine, 0, mask.shape, ks)
        m = mask[:, :, ks]
        out[:, :, ks] = np.where(m, np.where(x > centroid[0], 1, 2), 0).astype(np.uint8)
    return out


def lung_labels(lungs: Volume) -> tuple[np.ndarray, list[str]]:
    """The lung map as uint8 0/1 (right)/2 (left), and notes. Refuses other values."""
    arr = lungs.array
    source = lungs.meta.get("source")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"lung mask must hold labels 0/1/2, found dtype {arr.dtype}", source)
    counts = label_counts(arr, 2)
    if counts is None:
        bad = sorted(set(np.unique(arr).tolist()) - {0, 1, 2})
        shown = ", ".join(f"{v:g}" for v in bad[:6])
        raise InputError(
            f"lung mask must hold 0 (background), 1 (right lung), 2 (left lung); found {shown} "
            "(a lobe map? pass it with --lobes)",
            source,
        )
    labels = arr.astype(np.uint8, copy=False)
    notes: list[str] = []
    if counts[1] and not counts[2]:
        labels = split_binary_lungs(labels == 1, lungs.affine)
        notes.append(
            "lung mask holds only label 1: read as a mask of both lungs and split into right "
            "and left at the plane through its centroid (x, RAS); pass a 1 = right / 2 = left "
            "map to avoid this"
        )
    return labels, notes


def label_counts(arr: np.ndarray, max_label: int) -> list[int] | None:
    """Voxel count of each label 0..max_label, or None when other values occur.

    One comparison pass per label: faster than ``np.unique`` or ``bincount`` on whole grids.
    """
    counts = [int(np.count_nonzero(arr == v)) for v in range(max_label + 1)]
    return counts if sum(counts) == arr.size else None


def lobe_labels(lobes: Volume) -> np.ndarray:
    """The lobe map as uint8 0..5 (lungmask LTRCLobes convention). Refuses other values."""
    arr = lobes.array
    if label_counts(arr, 5) is None:
        bad = sorted(set(np.unique(arr).tolist()) - set(range(6)))
        shown = ", ".join(f"{v:g}" for v in bad[:6])
        raise InputError(
            "lobe map must hold 0 and 1-5 (1 left upper, 2 left lower, 3 right upper, "
            f"4 right middle, 5 right lower); found {shown}",
            lobes.meta.get("source"),
        )
    out: np.ndarray = arr.astype(np.uint8, copy=False)
    return out


def lungs_from_lobes(lobes: np.ndarray) -> np.ndarray:
    """Lung map (1 right, 2 left) from a lobe map."""
    table = np.zeros(256, dtype=np.uint8)
    for lobe, side in LOBE_SIDE.items():
        table[lobe] = side
    out: np.ndarray = table[lobes]
    return out


def mask_centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Centroid (RAS mm) of a bool mask, from per-axis projections (no index arrays)."""
    n = float(np.count_nonzero(mask))
    if n == 0:
        return np.full(3, math.nan)
    ijk = np.empty(3)
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        counts = np.count_nonzero(mask, axis=other)
        ijk[ax] = float(np.dot(counts, np.arange(mask.shape[ax]))) / n
    out: np.ndarray = affine[:3, :3] @ ijk + affine[:3, 3]
    return out


def mask_bbox_mm(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS box (min, max, mm) around the voxel centres of a bool mask.

    Exact for axis-aligned grids; for oblique grids it is the box around the mapped corners
    of the voxel-index box, so slightly larger than the mask.
    """
    lo, hi = [], []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        hit = np.flatnonzero(mask.any(axis=other))
        if hit.size == 0:
            nan = np.full(3, math.nan)
            return nan, nan
        lo.append(hit[0])
        hi.append(hit[-1])
    corners = np.array(
        [
            [(lo, hi)[a][0], (lo, hi)[b][1], (lo, hi)[c][2]]
            for a in (0, 1)
            for b in (0, 1)
            for c in (0, 1)
        ],
        dtype=np.float64,
    )
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def world_z_range(mask: np.ndarray, affine: np.ndarray) -> tuple[float, float]:
    """Lowest and highest world z (mm) of the voxel centres of a bool mask."""
    row = affine[2, :3]
    scale = float(np.abs(row).max())
    if scale > 0 and np.count_nonzero(np.abs(row) > 1e-9 * scale) == 1:
        ax = int(np.argmax(np.abs(row)))  # z depends on one voxel axis only: use a projection
        other = tuple(a for a in range(3) if a != ax)
        hit = np.flatnonzero(mask.any(axis=other))
        zs = row[ax] * hit[[0, -1]].astype(np.float64) + affine[2, 3]
        return float(zs.min()), float(zs.max())
    zmin, zmax = math.inf, -math.inf
    for ks in _chunks(mask.shape[2]):
        m = mask[:, :, ks]
        if not m.any():
            continue
        z = np.broadcast_to(world_coordinate(affine, 2, mask.shape, ks), m.shape)[m]
        zmin, zmax = min(zmin, float(z.min())), max(zmax, float(z.max()))
    return zmin, zmax


@dataclass
class LungContext:
    """The lung, zone and lobe maps on the tumor's grid, and how they were obtained."""

    labels: np.ndarray  # uint8: 0 none, 1 right, 2 left
    affine: np.ndarray
    source: str
    lobes: np.ndarray | None = None
    zones: np.ndarray | None = None  # uint8 0..3, when a zone map is used
    zone_source: str = "thirds of each lung's height (world z)"
    z_ranges: dict[int, tuple[float, float]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {s: int(np.count_nonzero(self.labels == s)) for s in (1, 2)}
        if self.zones is None:
            for side in (1, 2):
                if self.counts[side]:
                    self.z_ranges[side] = world_z_range(self.labels == side, self.affine)

    def zone_codes(self, idx: np.ndarray) -> np.ndarray:
        """Zone code (0 outside the lungs, 1 upper, 2 middle, 3 lower) of voxels ``idx`` (N, 3)."""
        if self.zones is not None:
            out: np.ndarray = self.zones[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.uint8)
            return out
        side = self.labels[idx[:, 0], idx[:, 1], idx[:, 2]]
        z = idx.astype(np.float64) @ self.affine[2, :3] + self.affine[2, 3]
        codes = np.zeros(len(idx), dtype=np.uint8)
        for s, (zmin, zmax) in self.z_ranges.items():
            sel = side == s
            h = (zmax - zmin) / 3.0
            codes[sel] = np.where(z[sel] > zmax - h, 1, np.where(z[sel] < zmin + h, 3, 2))
        return codes

    def summary(self) -> dict[str, object]:
        """``right_ml``, ``left_ml``, ``total_ml`` and each lung's centroid and box (RAS mm)."""
        vox_ml = float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0
        out: dict[str, object] = {
            "right_ml": self.counts[1] * vox_ml,
            "left_ml": self.counts[2] * vox_ml,
            "total_ml": (self.counts[1] + self.counts[2]) * vox_ml,
        }
        both = self.labels > 0
        lo, hi = mask_bbox_mm(both, self.affine)
        out["centroid_mm"] = mask_centroid_mm(both, self.affine).tolist()
        out["bbox_min_mm"] = lo.tolist()
        out["bbox_max_mm"] = hi.tolist()
        out["source"] = self.source
        out["zone_source"] = self.zone_source
        return out


def gap_mm(
    lesion: Lesion,
    target: Callable[[tuple[slice, slice, slice]], np.ndarray],
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    start_margin_mm: float = 20.0,
) -> float | None:
    """Smallest gap (mm) between the lesion's voxels and the voxels where ``target`` is true.

    ``target(region)`` returns the bool target map over a region of the full grid. The gap
    between two voxels is the distance between their boxes: per axis ``max(|di| - 1, 0)``
    voxels, combined with the spacing (exact for orthogonal affines). It is computed as the
    Euclidean distance transform (``sampling=spacing``) to the target dilated by one voxel in
    all 26 directions, in a box around the lesion that grows until the answer is certain.
    Returns None when no target voxel exists in the whole image.
    """
    sp = np.asarray(spacing, dtype=np.float64)
    margin_mm = start_margin_mm
    cube = np.ones((3, 3, 3), dtype=bool)
    while True:
        m = tuple(math.ceil(margin_mm / s) + 1 for s in sp)
        region = lesion.padded_slices((m[0], m[1], m[2]), shape)
        covers_all = all(r.start == 0 and r.stop == n for r, n in zip(region, shape, strict=True))
        tgt = target(region)
        if tgt.any():
            les = lesion.mask_in(region)
            near = ndi.binary_dilation(tgt, structure=cube)
            if (near & les).any():
                return 0.0
            dist = ndi.distance_transform_edt(~near, sampling=sp)
            d = float(dist[les].min())
            # Voxels beyond the region lie at least this far from the lesion.
            limits = []
            for ax in range(3):
                lo_room = lesion.slices[ax].start - region[ax].start
                hi_room = region[ax].stop - lesion.slices[ax].stop
                if region[ax].start > 0:
                    limits.append(lo_room * sp[ax])
                if region[ax].stop < shape[ax]:
                    limits.append(hi_room * sp[ax])
            if not limits or d <= min(limits):
                return d
        elif covers_all:
            return None
        margin_mm *= 2.0

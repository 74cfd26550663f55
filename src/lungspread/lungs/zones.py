"""Upper, middle and lower zones of each lung, and lung volumes in mL.

Zones split each lung separately into thirds of its height along the patient's superior axis
(world z, RAS+ mm), whatever the array's axis order or obliquity: a voxel's world z comes from
the affine. The extent of a lung is that of its voxel centres.
"""

from __future__ import annotations

import numpy as np

from lungspread.lungs.split import LEFT, RIGHT
from lungspread.volume import Volume

UPPER, MIDDLE, LOWER = 1, 2, 3
ZONE_NAMES = {UPPER: "upper", MIDDLE: "middle", LOWER: "lower"}
SIDE_NAMES = {RIGHT: "right", LEFT: "left"}

#: Axis-2 slabs per chunk when world z is evaluated voxel by voxel (oblique inputs).
_CHUNK = 16


def _world_z_chunks(
    lungs: Volume, box: tuple[slice, slice, slice]
) -> list[tuple[slice, np.ndarray]]:
    """World z (float32) of the voxels in ``box``, in chunks along array axis 2."""
    a = lungs.affine[2]
    i = np.arange(box[0].start, box[0].stop, dtype=np.float64) * a[0]
    j = np.arange(box[1].start, box[1].stop, dtype=np.float64) * a[1]
    out = []
    for k0 in range(box[2].start, box[2].stop, _CHUNK):
        k1 = min(k0 + _CHUNK, box[2].stop)
        k = np.arange(k0, k1, dtype=np.float64) * a[2] + a[3]
        z = (i[:, None, None] + j[None, :, None] + k[None, None, :]).astype(np.float32)
        out.append((slice(k0, k1), z))
    return out


def _box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.nonzero(mask.any(axis=other))[0]
        if idx.size == 0:
            return None
        out.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return (out[0], out[1], out[2])


def _cuts(zmin: float, zmax: float) -> tuple[float, float]:
    height = zmax - zmin
    return zmax - height / 3.0, zmin + height / 3.0


def _zone_of(z: np.ndarray, upper_cut: float, lower_cut: float) -> np.ndarray:
    out: np.ndarray = np.where(
        z >= upper_cut, UPPER, np.where(z > lower_cut, MIDDLE, LOWER)
    ).astype(np.uint8)
    return out


def lung_zones(lungs: Volume) -> Volume:
    """Zones of a lung label map: uint8, 0 outside, 1 upper, 2 middle, 3 lower third.

    Each lung (label 1 right, 2 left) is cut on its own into three slabs of equal height along
    world z (the patient's S axis); a voxel whose centre lies exactly on a cut goes to the
    higher zone.
    """
    arr = np.asarray(lungs.array)
    out = np.zeros(arr.shape, dtype=np.uint8)
    box = _box(arr > 0)
    if box is None:
        return lungs.with_array(out, labels=dict(_ZONE_LABELS))
    sub = arr[box]
    osub = out[box]
    a = lungs.affine[2]
    ax = int(np.argmax(np.abs(a[:3])))
    if all(abs(a[o]) <= 1e-9 * abs(a[ax]) for o in range(3) if o != ax):
        _zones_axis_aligned(sub, osub, ax, box, a)
    else:
        _zones_oblique(lungs, sub, osub, box)
    return lungs.with_array(out, labels=dict(_ZONE_LABELS))


_ZONE_LABELS = {"1": "upper", "2": "middle", "3": "lower"}


def _zones_axis_aligned(
    sub: np.ndarray, osub: np.ndarray, ax: int, box: tuple[slice, slice, slice], a: np.ndarray
) -> None:
    """World z depends on one array axis only: decide zones slab by slab."""
    others = tuple(o for o in range(3) if o != ax)
    z = np.arange(box[ax].start, box[ax].stop, dtype=np.float64) * a[ax] + a[3]
    sub_m = np.moveaxis(sub, ax, 2)
    out_m = np.moveaxis(osub, ax, 2)
    for lbl in (RIGHT, LEFT):
        present = (sub == lbl).any(axis=others)
        if not present.any():
            continue
        zone = _zone_of(z, *_cuts(float(z[present].min()), float(z[present].max())))
        for value in (UPPER, MIDDLE, LOWER):
            idx = np.nonzero((zone == value) & present)[0]
            if idx.size == 0:
                continue
            rng = slice(int(idx[0]), int(idx[-1]) + 1)  # z is monotonic in the index
            view = out_m[:, :, rng]
            view[sub_m[:, :, rng] == lbl] = value


def _zones_oblique(
    lungs: Volume, sub: np.ndarray, osub: np.ndarray, box: tuple[slice, slice, slice]
) -> None:
    """General case: world z voxel by voxel, in chunks along array axis 2."""
    chunks = _world_z_chunks(lungs, box)
    k0 = box[2].start
    for lbl in (RIGHT, LEFT):
        zmin, zmax = np.inf, -np.inf
        for ks, z in chunks:
            m = sub[:, :, ks.start - k0 : ks.stop - k0] == lbl
            if m.any():
                zmin = min(zmin, float(z[m].min()))
                zmax = max(zmax, float(z[m].max()))
        if not np.isfinite(zmin):
            continue
        cuts = _cuts(zmin, zmax)
        for ks, z in chunks:
            rel = slice(ks.start - k0, ks.stop - k0)
            m = sub[:, :, rel] == lbl
            view = osub[:, :, rel]
            view[m] = _zone_of(z[m], *cuts)


def lung_volumes_ml(lungs: Volume) -> dict[str, float]:
    """``right_ml``, ``left_ml`` and ``total_ml`` of a lung label map (1 right, 2 left)."""
    arr = np.asarray(lungs.array)
    ml = lungs.voxel_volume_mm3 / 1000.0
    right = float(np.count_nonzero(arr == RIGHT)) * ml
    left = float(np.count_nonzero(arr == LEFT)) * ml
    return {"right_ml": right, "left_ml": left, "total_ml": right + left}


def zone_volumes_ml(lungs: Volume, zones: Volume) -> dict[str, float]:
    """Volume of each lung's zones, e.g. ``right_upper_ml``, ``left_lower_ml`` (6 keys)."""
    lab = np.asarray(lungs.array)
    zon = np.asarray(zones.array)
    ml = lungs.voxel_volume_mm3 / 1000.0
    out = {f"{s}_{z}_ml": 0.0 for s in SIDE_NAMES.values() for z in ZONE_NAMES.values()}
    box = _box(lab > 0)
    if box is None:
        return out
    code = lab[box].astype(np.uint8) * np.uint8(4) + zon[box].astype(np.uint8)
    for side, sname in SIDE_NAMES.items():
        for zone, zname in ZONE_NAMES.items():
            n = np.count_nonzero(code == side * 4 + zone)
            out[f"{sname}_{zname}_ml"] = float(n) * ml
    return out

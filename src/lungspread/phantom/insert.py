"""Put real nodules (LIDC crops in HU with their masks) into phantom or real lungs.

A crop is resampled onto the target grid around ``center_mm`` (trilinear, with an optional
rotation, flips and scale for augmentation) and blended in: inside the nodule mask and a
feathered rim around it, target voxels are raised towards the nodule's values (never
lowered), so the nodule's own texture replaces lung parenchyma while vessels, chest wall and
the target's noise around it stay as they were. The new tumor mask is the resampled nodule
mask (>= 0.5), restricted to the lungs when a lung label is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lungspread.errors import GeometryError, InputError
from lungspread.volume import Volume

if TYPE_CHECKING:
    from lungspread.phantom.make import Phantom


def insert_nodule(
    phantom_or_ct: Volume | Phantom,
    tumor_mask: Volume | None,
    nodule_hu: np.ndarray,
    nodule_mask: np.ndarray,
    nodule_spacing_mm: Sequence[float],
    center_mm: npt.ArrayLike,
    *,
    lungs: Volume | None = None,
    feather_mm: float = 1.5,
    rotation: np.ndarray | None = None,
    scale: float = 1.0,
    contrast: float = 1.0,
) -> tuple[Volume, Volume]:
    """Blend a nodule crop into a CT; returns the new CT and the new tumor mask (0/1).

    ``phantom_or_ct``: a :class:`~lungspread.volume.Volume` in HU or a
    :class:`~lungspread.phantom.Phantom` (then its tumor mask and lungs are used unless
    given). ``nodule_hu``/``nodule_mask``: the crop's arrays (i, j, k) at
    ``nodule_spacing_mm``; the crop's axes are taken along the patient's x, y, z (use
    ``rotation``, a 3x3 orthonormal matrix, to turn it). ``center_mm``: RAS world point where
    the centroid of the nodule mask goes. ``scale`` enlarges or shrinks the nodule.
    ``lungs``: a lung label on the CT's grid; the nodule is kept inside it. ``contrast``
    (0-1] fades the nodule towards the lung it replaces: 0.6 keeps 60% of its excess HU over
    the lung (a fainter ground-glass nodule with the same texture and extent).
    """
    from scipy import ndimage as ndi

    ct, mask_in, lungs_in = _unpack(phantom_or_ct, tumor_mask, lungs)
    hu = np.asarray(nodule_hu, dtype=np.float32)
    nm = np.asarray(nodule_mask) > 0
    if hu.ndim != 3 or hu.shape != nm.shape:
        raise InputError(
            "nodule_hu and nodule_mask must be 3D arrays of one shape, "
            f"got {hu.shape} and {nm.shape}"
        )
    if not nm.any():
        raise InputError("nodule_mask is empty")
    sp = np.asarray(nodule_spacing_mm, dtype=np.float64)
    if sp.shape != (3,) or np.any(sp <= 0):
        raise InputError(
            f"nodule_spacing_mm must be three positive values, got {nodule_spacing_mm!r}"
        )
    if not (0.2 <= scale <= 5.0):
        raise InputError(f"scale must be between 0.2 and 5, got {scale}")
    if not (0.0 < contrast <= 1.0):
        raise InputError(f"contrast must be in (0, 1], got {contrast}")
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
        raise InputError("rotation must be a 3x3 orthonormal matrix")
    for other, name in ((mask_in, "tumor_mask"), (lungs_in, "lungs")):
        if other is not None and not ct.same_grid(other):
            raise GeometryError(f"{name} is not on the CT's grid ({other.shape} vs {ct.shape})")

    centroid = np.argwhere(nm).mean(axis=0)
    extent = np.asarray(hu.shape) * sp * scale
    half = 0.5 * float(np.linalg.norm(extent)) + feather_mm + 2 * max(ct.spacing)
    c = np.asarray(center_mm, dtype=np.float64)
    lo_idx, hi_idx = _index_box(ct, c - half, c + half)
    if lo_idx is None or hi_idx is None:
        raise GeometryError(f"center_mm {list(c)} puts the nodule outside the CT")
    ii, jj, kk = (np.arange(lo_idx[a], hi_idx[a]) for a in range(3))
    grid_idx = np.stack(np.meshgrid(ii, jj, kk, indexing="ij"), axis=-1).reshape(-1, 3)
    world = grid_idx @ ct.affine[:3, :3].T + ct.affine[:3, 3]
    local = (world - c) @ rot  # into the crop's frame (rot maps crop -> patient)
    crop_idx = local / (sp * scale) + centroid
    coords = crop_idx.T
    shape = (len(ii), len(jj), len(kk))
    m_res = ndi.map_coordinates(nm.astype(np.float32), coords, order=1, cval=0.0).reshape(shape)
    h_res = ndi.map_coordinates(hu, coords, order=1, mode="nearest").reshape(shape)
    inside = m_res >= 0.5
    box = tuple(slice(lo_idx[a], hi_idx[a]) for a in range(3))
    if lungs_in is not None:
        in_lung = np.asarray(lungs_in.array)[box] > 0
        inside &= in_lung
    else:
        in_lung = np.ones(shape, dtype=bool)
    if not inside.any():
        raise GeometryError(
            f"the nodule at {list(np.round(c, 1))} mm falls outside the lungs (or the grid)"
        )
    # Feathered weight: 1 inside, falling to 0 over feather_mm outside the nodule.
    if feather_mm > 0:
        dist = ndi.distance_transform_edt(~inside, sampling=ct.spacing)
        alpha = np.clip(1.0 - dist / feather_mm, 0.0, 1.0).astype(np.float32)
    else:
        alpha = inside.astype(np.float32)
    alpha *= in_lung
    out = np.array(ct.array, copy=True)
    region = out[box].astype(np.float32)
    region += alpha * contrast * np.maximum(h_res - region, 0.0)
    info = np.iinfo(out.dtype) if np.issubdtype(out.dtype, np.integer) else None
    if info is not None:
        region = np.clip(np.rint(region), info.min, info.max)
    out[box] = region.astype(out.dtype)
    new_mask = (
        np.zeros(ct.shape, np.uint8)
        if mask_in is None
        else (np.asarray(mask_in.array) > 0).astype(np.uint8)
    )
    new_mask[box] |= inside.astype(np.uint8)
    return ct.with_array(out), ct.with_array(new_mask)


def _unpack(
    obj: Volume | Phantom, tumor_mask: Volume | None, lungs: Volume | None
) -> tuple[Volume, Volume | None, Volume | None]:
    if isinstance(obj, Volume):
        return obj, tumor_mask, lungs
    ct = getattr(obj, "ct", None)
    if not isinstance(ct, Volume):
        raise InputError(f"expected a Volume or a Phantom, got {type(obj).__name__}")
    return (
        ct,
        tumor_mask if tumor_mask is not None else obj.tumor,
        lungs if lungs is not None else obj.lungs,
    )


def _index_box(
    vol: Volume, lo_mm: np.ndarray, hi_mm: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    corners = np.array(
        [
            [a, b, cc]
            for a in (lo_mm[0], hi_mm[0])
            for b in (lo_mm[1], hi_mm[1])
            for cc in (lo_mm[2], hi_mm[2])
        ]
    )
    idx = vol.world_to_index(corners)
    lo = np.maximum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 1, np.asarray(vol.shape))
    if np.any(hi <= lo):
        return None, None
    return lo, hi


def lung_site(
    lungs: Volume,
    rng: np.random.Generator,
    min_depth_mm: float = 5.0,
    side: int | None = None,
) -> np.ndarray:
    """A random RAS point (mm) in the lungs at least ``min_depth_mm`` from their boundary.

    ``side``: 1 right lung, 2 left lung, ``None`` either. For placing nodules.
    """
    from scipy import ndimage as ndi

    lab = np.asarray(lungs.array)
    sel = lab > 0 if side is None else lab == side
    if not sel.any():
        raise InputError(
            "the lung label is empty" if side is None else f"no voxel with label {side}"
        )
    depth = ndi.distance_transform_edt(sel, sampling=lungs.spacing)
    cand = np.argwhere(depth >= min_depth_mm)
    if len(cand) == 0:
        raise InputError(f"no lung voxel lies {min_depth_mm} mm from the lung boundary")
    pick = cand[int(rng.integers(len(cand)))]
    return lungs.index_to_world(pick.astype(np.float64))

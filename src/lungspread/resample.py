"""Resampling volumes in world space: to a new voxel spacing, or onto another volume's grid.

Both functions treat a volume as covering its voxels' full extent (each voxel a box centred on
its index): a target voxel centre that lies inside that extent gets a value (interpolated, or
the nearest voxel; within half a voxel of the edge the edge value is used), one outside gets
``fill_value``.

When the two grids' axes are parallel (the usual case: same orientation, different spacing or
field of view, possibly axes flipped or permuted) the work is done one axis at a time, which is
exact for linear and nearest interpolation and much faster than a general 3D interpolation.
Otherwise ``scipy.ndimage.affine_transform`` interpolates in 3D.

Linear interpolation (``order=1``) returns float32; nearest (``order=0``, for label maps)
keeps the dtype; ``order=3`` is a cubic spline in float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lungspread.volume import Volume

_EPS = 1e-6  # index-space tolerance for "on the edge of the extent"


def _axis_permutation(m: np.ndarray, tol: float = 1e-9) -> list[int] | None:
    """For a 3x3 matrix with one nonzero per row and column, the column of each row."""
    perm = []
    for row in m:
        nz = np.flatnonzero(np.abs(row) > tol * max(1.0, float(np.abs(m).max())))
        if nz.size != 1:
            return None
        perm.append(int(nz[0]))
    return perm if sorted(perm) == [0, 1, 2] else None


def _resample_axis(
    arr: np.ndarray, axis: int, coords: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``arr`` along ``axis`` at fractional ``coords``; also return the inside mask."""
    n = arr.shape[axis]
    inside = (coords >= -0.5 - _EPS) & (coords <= n - 0.5 + _EPS)
    if order == 0:
        idx = np.clip(np.floor(coords + 0.5), 0, n - 1).astype(np.intp)
        return np.take(arr, idx, axis=axis), inside
    c = np.clip(coords, 0.0, n - 1.0)
    i0 = np.clip(np.floor(c).astype(np.intp), 0, max(n - 2, 0))
    w = (c - i0).astype(np.float32)
    a = np.take(arr, i0, axis=axis).astype(np.float32, copy=False)
    if n == 1:
        return a, inside
    b = np.take(arr, i0 + 1, axis=axis).astype(np.float32, copy=False)
    shape = [1, 1, 1]
    shape[axis] = -1
    wb = w.reshape(shape)
    b -= a
    b *= wb
    a += b
    return a, inside


def _separable(
    arr: np.ndarray,
    scales: Sequence[float],
    offsets: Sequence[float],
    out_shape: Sequence[int],
    order: int,
    fill_value: float,
) -> np.ndarray:
    """out[i', j', k'] = arr at index (offsets + scales * (i', j', k')), one axis at a time."""
    coords = [offsets[a] + scales[a] * np.arange(out_shape[a]) for a in range(3)]
    # Shrinking axes first keeps the intermediate arrays small.
    ratio = [out_shape[a] / arr.shape[a] for a in range(3)]
    out = arr
    masks: list[np.ndarray] = [np.ones(0, bool)] * 3
    for a in sorted(range(3), key=lambda x: ratio[x]):
        out, masks[a] = _resample_axis(out, a, coords[a], order)
    if order > 0 and out.dtype != np.float32:
        out = out.astype(np.float32)
    if not all(m.all() for m in masks):
        inside = masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :]
        out = np.array(out, copy=True)
        out[~inside] = fill_value
    return np.asfortranarray(out)


def _general(
    arr: np.ndarray,
    matrix: np.ndarray,
    offset: np.ndarray,
    out_shape: Sequence[int],
    order: int,
    fill_value: float,
) -> np.ndarray:
    from scipy import ndimage

    src = arr if order == 0 else arr.astype(np.float32, copy=False)
    # Extent rule: points within half a voxel outside the index range take the edge value.
    padded = np.pad(src, 1, mode="edge")
    out = ndimage.affine_transform(
        padded,
        matrix,
        offset=offset + 1.0,
        output_shape=tuple(int(s) for s in out_shape),
        order=order,
        mode="constant",
        cval=fill_value,
        prefilter=order > 1,
    )
    # Points outside the half-voxel margin but inside the padded frame: fill explicitly
    # (one output slice at a time to keep the coordinate arrays small).
    ni, nj, nk = (int(s) for s in out_shape)
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    plane = np.stack([ii.ravel(), jj.ravel()]).astype(np.float64)
    n = np.asarray(arr.shape, dtype=np.float64)[:, None]
    for k in range(nk):
        pos = matrix[:, :2] @ plane + (matrix[:, 2] * k + offset)[:, None]
        inside = np.all((pos >= -0.5 - _EPS) & (pos <= n - 0.5 + _EPS), axis=0)
        out[:, :, k][~inside.reshape(ni, nj)] = fill_value
    return np.asfortranarray(out)


def _default_fill(volume: Volume, order: int, fill_value: float | None) -> float:
    if fill_value is not None:
        return float(fill_value)
    if order == 0 or volume.array.size == 0:
        return 0.0
    return float(np.min(volume.array))


def _resample_onto(
    volume: Volume,
    affine: np.ndarray,
    shape: Sequence[int],
    order: int,
    fill_value: float | None,
    meta: Mapping[str, object],
) -> Volume:
    if order not in (0, 1, 3):
        raise ValueError(f"order must be 0 (nearest), 1 (linear) or 3 (cubic), got {order}")
    fill = _default_fill(volume, order, fill_value)
    # source index = M @ target index + t
    m_full = np.linalg.inv(volume.affine) @ affine
    m, t = m_full[:3, :3], m_full[:3, 3]
    arr = volume.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8 if order == 0 else np.float32)
    perm = _axis_permutation(m) if order in (0, 1) else None
    if perm is not None:
        # source axis r follows target axis perm[r]; put source axes in target order first.
        inv = [0, 0, 0]
        for r, c in enumerate(perm):
            inv[c] = r
        src = np.transpose(arr, inv)
        scales = [float(m[inv[c], c]) for c in range(3)]
        offsets = [float(t[inv[c]]) for c in range(3)]
        out = _separable(src, scales, offsets, shape, order, fill)
    else:
        out = _general(arr, m, t, shape, order, fill)
    if order == 0:
        out = out.astype(volume.array.dtype, copy=False)
    return Volume(out, affine, {**volume.meta, **meta})


def resample_to_spacing(
    volume: Volume,
    spacing_mm: float | Sequence[float],
    order: int = 1,
    fill_value: float | None = None,
) -> Volume:
    """Resample to voxels of ``spacing_mm`` (one value or one per axis i, j, k), same orientation.

    The new grid has ``round(n * old / new)`` voxels per axis (at least 1) and is centred on
    the old field of view, so when ``n * old / new`` is a whole number the outer voxel edges
    coincide exactly. The direction of each axis is kept; the affine's columns get the new
    spacing and its origin moves to the new first voxel centre.
    """
    sp_new = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(sp_new)) or np.any(sp_new <= 0):
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    sp_old = np.asarray(volume.spacing)
    n_old = np.asarray(volume.shape, dtype=np.float64)
    n_new = np.maximum(np.rint(n_old * sp_old / sp_new), 1).astype(int)
    direction = volume.direction
    centre_old = volume.index_to_world((n_old - 1) / 2)
    affine = np.eye(4)
    affine[:3, :3] = direction * sp_new[None, :]
    affine[:3, 3] = centre_old - affine[:3, :3] @ ((n_new - 1) / 2)
    meta = {"resampled_from_spacing_mm": [float(s) for s in sp_old]}
    return _resample_onto(volume, affine, tuple(int(s) for s in n_new), order, fill_value, meta)


def resample_like(
    volume: Volume,
    reference: Volume,
    order: int = 1,
    fill_value: float | None = None,
) -> Volume:
    """Resample ``volume`` onto ``reference``'s grid (shape and affine), in world space.

    Use ``order=0`` for label maps (nearest voxel, dtype kept) and ``order=1`` for images.
    Target voxels outside ``volume``'s extent get ``fill_value`` (default: 0 for ``order=0``,
    the volume's minimum, e.g. air for a CT, otherwise).
    """
    return _resample_onto(volume, reference.affine.copy(), reference.shape, order, fill_value, {})

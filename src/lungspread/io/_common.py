"""Helpers shared by the readers: size limits, dimension handling, wrapping foreign errors.

Every reader turns whatever a third-party library raises on a broken file into an
:class:`~lungspread.errors.InputError` that names the file (see :func:`foreign_errors`), and
checks the size a header announces with :func:`check_size` *before* any voxel data is read.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lungspread.errors import InputError, LungspreadError

#: Largest number of voxels a reader accepts (2048^3).
MAX_VOXELS = 2048**3
#: Largest in-memory size of the voxel array a reader accepts (8 GiB).
MAX_BYTES = 8 * 1024**3

#: Voxel types a Volume may hold after reading.
SUPPORTED_DTYPES = frozenset(
    np.dtype(t).name
    for t in (
        np.bool_,
        np.int8,
        np.uint8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
    )
)


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters (for messages built from exceptions)."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


@contextlib.contextmanager
def foreign_errors(path: str | Path, what: str) -> Iterator[None]:
    """Turn any non-lungspread exception raised inside the block into an InputError.

    ``what`` says what failed, e.g. ``"not a readable NRRD file"``; the original exception's
    type and first words follow it in the message.
    """
    try:
        yield
    except LungspreadError:
        raise
    except MemoryError as exc:
        raise InputError(f"{what}: not enough memory to read it", path) from exc
    except RecursionError as exc:
        raise InputError(f"{what}: nested too deeply", path) from exc
    except Exception as exc:
        raise InputError(f"{what} ({type(exc).__name__}: {one_line(exc)})", path) from exc


def format_size(nbytes: float) -> str:
    """Bytes in human units, e.g. ``'7.3 TiB'``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value = float(nbytes)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} EiB"  # pragma: no cover


def check_size(
    shape: Sequence[int],
    itemsize: int,
    path: str | Path,
    *,
    max_voxels: int = MAX_VOXELS,
    max_bytes: int = MAX_BYTES,
) -> None:
    """Refuse shapes a header announces that are invalid or too large to hold in memory.

    Called before any voxel data is read, so an absurd header fails fast with its size in the
    message instead of exhausting memory.
    """
    dims = [int(s) for s in shape]
    if any(d < 1 for d in dims):
        raise InputError(f"header gives invalid image dimensions {tuple(dims)}", path)
    n = math.prod(dims)
    nbytes = n * int(itemsize)
    dims_txt = "x".join(str(d) for d in dims)
    if n > max_voxels or nbytes > max_bytes:
        raise InputError(
            f"image too large: header says {dims_txt} = {n:,} voxels ({format_size(nbytes)} in "
            f"memory); the limit is {max_voxels:,} voxels and {format_size(max_bytes)}",
            path,
        )


def check_dtype(dtype: np.dtype, path: str | Path) -> None:
    """Refuse voxel types a Volume cannot hold (complex, RGB records, strings)."""
    if dtype.name not in SUPPORTED_DTYPES or dtype.fields is not None:
        raise InputError(
            f"unsupported voxel type {dtype}; expected integer, float or bool scalars", path
        )


def to_3d_shape(shape: Sequence[int], path: str | Path, what: str = "image") -> tuple[int, ...]:
    """The 3D shape of an image: trailing size-1 axes beyond 3 dropped, 2D lifted to one slice.

    A 4D image whose extra axis has more than one element (a time series, a vector image) is an
    InputError: lungspread needs one 3D volume.
    """
    dims = tuple(int(s) for s in shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims = dims[:-1]
    if len(dims) == 2:
        return (dims[0], dims[1], 1)
    if len(dims) == 3:
        return dims
    if len(dims) > 3:
        extra = "x".join(str(d) for d in dims[3:])
        raise InputError(
            f"expected a 3D {what}, found {len(dims)}D with shape {dims} ({extra} volumes or "
            "components); extract one 3D volume first",
            path,
        )
    raise InputError(f"expected a 3D {what}, found {len(dims)}D with shape {dims}", path)


def complete_affine_2d(affine: np.ndarray) -> np.ndarray:
    """Give a one-slice image whose third affine column is zero a unit normal (1 mm)."""
    out = np.array(affine, dtype=np.float64)
    if np.linalg.norm(out[:3, 2]) < 1e-12:
        n = np.cross(out[:3, 0], out[:3, 1])
        norm = np.linalg.norm(n)
        out[:3, 2] = n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    return out


def check_affine(affine: np.ndarray, path: str | Path, what: str = "header") -> np.ndarray:
    """A finite, invertible 4x4 float64 affine, or an InputError that shows it."""
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise InputError(f"{what} gives a non-finite voxel-to-world transform", path)
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        cols = np.array2string(aff[:3, :3], precision=3, separator=",").replace("\n", "")
        raise InputError(f"{what} gives a singular voxel-to-world matrix {cols}", path)
    return aff


def rescale_to_values(raw: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``raw * slope + intercept``: int16 when exact and in range, else int32, else float32.

    Computed one slice (last axis) at a time so that no wide temporary copy of the whole
    volume is made.
    """
    if slope == 1.0 and intercept == 0.0:
        return raw
    out_dtype: type[np.generic] = np.float32
    if raw.dtype.kind in "iub" and float(slope).is_integer() and float(intercept).is_integer():
        if raw.size == 0:
            return raw.astype(np.int16)
        lo, hi = int(raw.min()), int(raw.max())
        a, b = lo * int(slope) + int(intercept), hi * int(slope) + int(intercept)
        for cand in (np.int16, np.int32):
            info = np.iinfo(cand)
            if info.min <= min(a, b) and max(a, b) <= info.max:
                out_dtype = cand
                break
    out = np.empty(raw.shape, dtype=out_dtype, order="F")
    work = np.int64 if out_dtype != np.float32 else np.float64
    s, b0 = work(slope), work(intercept)
    if raw.ndim == 0:
        return np.asarray(raw.astype(work) * s + b0, dtype=out_dtype)
    for k in range(raw.shape[-1]):
        out[..., k] = raw[..., k].astype(work) * s + b0
    return out


def bounded_decompress(data: bytes, nbytes: int, path: str | Path, what: str) -> bytes:
    """Decompress gzip or zlib ``data`` to at most ``nbytes`` (no zip bombs); error if short."""
    try:
        dec = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, auto-detected
        out = dec.decompress(data, nbytes)
    except zlib.error as exc:
        raise InputError(f"{what}: compressed voxel data is corrupt ({exc})", path) from exc
    if len(out) < nbytes:
        raise InputError(
            f"{what}: voxel data is truncated: expected {nbytes:,} bytes after decompression, "
            f"found {len(out):,}",
            path,
        )
    return out

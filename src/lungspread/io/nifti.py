"""NIfTI-1/2 through nibabel. NIfTI's world frame is RAS+, the same as :class:`Volume`.

Reading keeps nibabel's array order and affine (sform when its code is set, else qform), so a
mask computed on the array overlays the file in nibabel and 3D Slicer. Writing stores the
affine in both sform and qform (code 1, scanner anatomical); NIfTI-1 keeps the affine in
float32, so an affine read from a NIfTI-1 file round-trips bit for bit and any other affine to
within float32 rounding (about 1e-5 mm at 300 mm from the origin) for other readers. So that
lungspread's own round trips are exact, the writer also stores the float64 affine as a NIfTI
comment extension; the reader uses it only when it rounds to the header's sform exactly (a file
whose sform was changed by another tool falls back to the sform).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lungspread.errors import InputError, OutputError
from lungspread.io._common import (
    check_affine,
    check_dtype,
    check_size,
    complete_affine_2d,
    foreign_errors,
    rescale_to_values,
    to_3d_shape,
)
from lungspread.volume import Volume

_EXACT_TAG = b"lungspread affine float64:"


def _exact_affine(img: Any, affine: np.ndarray) -> np.ndarray:
    """The float64 affine stored by :func:`write_nifti` if it matches the sform, else ``affine``."""
    header = img.header
    if int(header["sform_code"]) <= 0:
        return affine
    for ext in header.extensions:
        content = ext.get_content() if hasattr(ext, "get_content") else b""
        if not isinstance(content, bytes) or not content.startswith(_EXACT_TAG):
            continue
        try:
            values = [float(v) for v in content[len(_EXACT_TAG) :].split()]
        except ValueError:
            return affine
        if len(values) != 12:
            return affine
        exact = np.eye(4)
        exact[:3, :] = np.asarray(values, dtype=np.float64).reshape(3, 4)
        sform = np.asarray(header.get_sform(), dtype=np.float64)
        if np.all(np.isfinite(exact)) and np.array_equal(
            exact[:3].astype(np.float32), sform[:3].astype(np.float32)
        ):
            return exact
        return affine
    return affine


def _scaling(proxy: Any) -> tuple[float, float]:
    # nibabel moves scl_slope/scl_inter from the header into the array proxy on load
    slope, inter = getattr(proxy, "slope", None), getattr(proxy, "inter", None)
    s = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    i = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return s, i


def _read_voxels(path: Path, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel data in NIfTI (Fortran) order, read here rather than by nibabel so that a .nii.gz
    is decompressed once, straight into the array, and never past the size the header gives."""
    n = int(np.prod(shape, dtype=np.int64))
    nbytes = n * dtype.itemsize
    total = offset + nbytes
    if not path.name.lower().endswith(".gz"):
        size = path.stat().st_size
        if size < total:
            raise InputError(
                f"NIfTI voxel data is truncated: header says {nbytes:,} bytes from offset "
                f"{offset}, file has {size:,} bytes",
                path,
            )
        flat = np.fromfile(path, dtype=dtype, count=n, offset=offset)
        return flat.reshape(shape, order="F")
    buf = np.empty(total, dtype=np.uint8)  # not touched until filled
    pos = 0
    dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
    with open(path, "rb") as fh:
        while pos < total:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            while chunk and pos < total:
                piece = dec.decompress(chunk, total - pos)
                buf[pos : pos + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
                pos += len(piece)
                chunk = dec.unconsumed_tail
                if dec.eof:  # concatenated gzip members
                    chunk = dec.unused_data + chunk
                    dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
                    if not chunk.strip(b"\0"):
                        break
    if pos < total:
        raise InputError(
            f"NIfTI voxel data is truncated: header says {nbytes:,} bytes from offset {offset}, "
            f"the decompressed file has {max(pos - offset, 0):,}",
            path,
        )
    flat = buf[offset:].view(dtype)
    return flat.reshape(shape, order="F")


def read_nifti(path: Path) -> Volume:
    """Read a .nii or .nii.gz file. Scaled data (scl_slope/inter) is applied (int16 if exact)."""
    path = Path(path)
    nib_log = logging.getLogger("nibabel.global")
    was_disabled = nib_log.disabled
    nib_log.disabled = True  # nibabel prints header fix-ups of odd files to stderr
    try:
        with foreign_errors(path, "not a readable NIfTI file"):
            img = nib.load(str(path), mmap=False)
    finally:
        nib_log.disabled = was_disabled
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"expected a NIfTI image, found {type(img).__name__}", path)
    with foreign_errors(path, "NIfTI header is invalid"):
        header = img.header
        raw_shape = tuple(int(s) for s in img.shape)
        dtype = np.dtype(header.get_data_dtype())
        slope, inter = _scaling(img.dataobj)
        affine = _exact_affine(img, np.array(img.affine, dtype=np.float64))
        offset = int(img.dataobj.offset)  # type: ignore[attr-defined]  # vox_offset, fixed up
    check_dtype(dtype, path)
    if offset < 0:
        raise InputError(f"NIfTI header gives a negative data offset {offset}", path)
    shape = to_3d_shape(raw_shape, path)
    scaled = (slope, inter) != (1.0, 0.0)
    check_size(raw_shape, 4 if scaled else dtype.itemsize, path)
    if raw_shape != shape and len(raw_shape) == 2:
        affine = complete_affine_2d(affine)
    affine = check_affine(affine, path, "NIfTI header")
    with foreign_errors(path, "NIfTI voxel data could not be read"):
        raw = _read_voxels(path, offset, dtype, raw_shape)
    raw = raw.reshape(shape, order="F")
    arr = rescale_to_values(raw, slope, inter) if scaled else raw
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    meta: dict[str, Any] = {"source": str(path), "format": "nifti"}
    if int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0:
        meta["warning"] = "NIfTI header has no orientation (sform and qform codes 0)"
    return Volume(arr, affine, meta)


def _nifti_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        if arr.size == 0:
            return arr.astype(np.int32)
        lo, hi = int(arr.min()), int(arr.max())
        for cand in (np.int32, np.uint32):
            info = np.iinfo(cand)
            if info.min <= lo and hi <= info.max:
                return arr.astype(cand)
        return arr
    if arr.dtype.name not in ("int8", "uint8", "int16", "uint16", "int32", "uint32") and (
        arr.dtype.name not in ("float32", "float64")
    ):
        raise OutputError(f"cannot write voxel type {arr.dtype} to NIfTI", path)
    return arr


def write_nifti(volume: Volume, path: Path) -> None:
    """Write NIfTI-1 with sform and qform set to the volume's affine (code 1, scanner anat).

    bool is stored as uint8, float16 as float32, 64-bit integers as 32-bit when the values
    fit. A sheared affine (gantry tilt kept as is) is stored in the sform only (qform code 0).
    """
    path = Path(path)
    arr = _nifti_dtype(volume.array, path)
    affine = volume.affine
    img = nib.Nifti1Image(arr, affine, dtype=arr.dtype)
    img.set_sform(affine, code=1)
    rzs = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    if np.allclose(rzs.T @ rzs, np.eye(3), atol=1e-6):
        img.set_qform(affine, code=1)
    else:
        img.set_qform(None, code=0)
    img.header.set_xyzt_units(xyz="mm")
    img.header.set_slope_inter(1.0, 0.0)
    exact = " ".join(f"{float(v):.17g}" for v in affine[:3].ravel())
    img.header.extensions.append(
        nib.nifti1.Nifti1Extension("comment", _EXACT_TAG + b" " + exact.encode())
    )
    if path.name.lower().endswith(".gz"):
        # compresslevel 1: several times faster than nibabel's default 9, files ~10% larger.
        # mtime=0 keeps the file bytes identical between runs.
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as fh,
        ):
            img.to_stream(fh)
        return
    nib.save(img, str(path))

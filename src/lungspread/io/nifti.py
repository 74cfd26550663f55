"""NIfTI-1/2 through nibabel. NIfTI's world frame is RAS+, the same as :class:`Volume`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lungspread.errors import InputError
from lungspread.volume import Volume


def read_nifti(path: Path) -> Volume:
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for broken files
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"expected a NIfTI image, found {type(img).__name__}", path)
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        raise InputError(f"expected a 3D image, found a 2D image of shape {shape}", path)
    if len(shape) != 3:
        raise InputError(f"expected a 3D image, found {len(shape)}D of shape {img.shape}", path)
    try:
        # Scaled data as float only when slope/intercept are not the identity.
        proxy: Any = img.dataobj
        slope, inter = proxy.slope, proxy.inter
        if (slope in (None, 1.0) or np.isnan(slope)) and (inter in (None, 0.0) or np.isnan(inter)):
            arr = np.asarray(proxy.get_unscaled())
        else:
            arr = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise InputError(f"NIfTI voxel data could not be read ({exc})", path) from exc
    arr = arr.reshape(shape)
    affine = img.affine
    if (
        affine is None
        or not np.all(np.isfinite(affine))
        or abs(np.linalg.det(affine[:3, :3])) < 1e-12
    ):
        flat = "none" if affine is None else np.array2string(affine[:3].ravel(), precision=3)
        raise InputError(f"NIfTI header has a singular or non-finite affine {flat}", path)
    meta = {"source": str(path), "format": "nifti"}
    return Volume(arr, np.asarray(affine, dtype=np.float64), meta)


def write_nifti(volume: Volume, path: Path) -> None:
    """Write with sform and qform both set to the volume's affine (code 1, scanner anat)."""
    arr = volume.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    img = nib.Nifti1Image(arr, volume.affine)
    img.set_sform(volume.affine, code=1)
    img.set_qform(volume.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    nib.save(img, str(path))

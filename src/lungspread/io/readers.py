"""``read_volume``: any supported path -> :class:`Volume` (RAS+)."""

from __future__ import annotations

from pathlib import Path

from lungspread.errors import InputError
from lungspread.io.formats import format_of
from lungspread.volume import Volume


def read_volume(path: str | Path) -> Volume:
    """Read a NIfTI, NRRD or MetaImage file, or a DICOM series folder, into a Volume."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    fmt = format_of(p)
    if p.is_file() and p.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", p)
    if fmt == "nifti":
        from lungspread.io.nifti import read_nifti

        return read_nifti(p)
    if fmt == "nrrd":
        from lungspread.io.nrrd_io import read_nrrd

        return read_nrrd(p)
    if fmt == "meta":
        from lungspread.io.metaimage import read_metaimage

        return read_metaimage(p)
    if fmt == "dicom":
        from lungspread.io.dicom import read_dicom_series

        return read_dicom_series(p if p.is_dir() else p.parent)
    raise InputError(
        "unknown image format; expected .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd or a DICOM folder",
        p,
    )

"""``read_volume``: any supported path -> :class:`Volume` (RAS+).

Every failure is a :class:`~lungspread.errors.LungspreadError` that names the file: missing or
empty files, unknown formats, broken headers, truncated data, images too large to hold in
memory (refused from the header, before any voxel data is read), 4D images, and DICOM series
with missing slices, uneven spacing or gantry tilt. Whether the voxels look like a CT is a
separate question, answered by :func:`lungspread.ct_check.check_ct`.
"""

from __future__ import annotations

from pathlib import Path

from lungspread.errors import InputError
from lungspread.io.formats import format_of
from lungspread.volume import Volume


def _is_dicom_file(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def _series_uid_of(p: Path) -> str | None:
    import pydicom

    from lungspread.io._common import foreign_errors

    with foreign_errors(p, "not a readable DICOM file"):
        ds = pydicom.dcmread(str(p), stop_before_pixels=True, force=True)
        uid = ds.get("SeriesInstanceUID")
    return None if uid is None else str(uid)


def read_volume(
    path: str | Path,
    *,
    series_uid: str | None = None,
    allow_uneven: bool = False,
    allow_tilt: bool = False,
) -> Volume:
    """Read a NIfTI, NRRD or MetaImage file, or a DICOM series folder, into a Volume.

    ``series_uid``, ``allow_uneven`` and ``allow_tilt`` apply to DICOM only (see
    :func:`lungspread.io.dicom.read_dicom_series`). A single DICOM file reads its whole series
    from the file's folder.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", p)
    if p.is_file() and p.stat().st_size == 0:
        raise InputError("file is empty (0 bytes)", p)
    if not p.is_dir() and not p.is_file():
        raise InputError("not a regular file or folder", p)
    fmt = format_of(p)
    if fmt == "unknown" and p.is_file() and _is_dicom_file(p):
        fmt = "dicom"
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

        if p.is_file():
            series_uid = series_uid or _series_uid_of(p)
            p = p.parent
        return read_dicom_series(
            p, series_uid=series_uid, allow_uneven=allow_uneven, allow_tilt=allow_tilt
        )
    raise InputError(
        "unknown image format; expected .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd or a DICOM folder",
        p,
    )

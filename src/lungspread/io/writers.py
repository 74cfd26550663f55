"""``write_volume``: :class:`Volume` -> NIfTI, NRRD or MetaImage file with the same geometry."""

from __future__ import annotations

from pathlib import Path

from lungspread.errors import OutputError
from lungspread.io.formats import format_of
from lungspread.outputs import atomic_path
from lungspread.volume import Volume


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` to ``path`` (format from the suffix), atomically via a temp file.

    ``.nii``/``.nii.gz`` (NIfTI-1, affine in float32), ``.nrrd`` (gzip, affine exact) or
    ``.mha`` (zlib, affine exact). A failed write leaves no file behind.
    """
    p = Path(path)
    fmt = format_of(p) if not p.is_dir() else "dir"
    if fmt not in ("nifti", "nrrd", "meta"):
        raise OutputError("cannot write this format; use .nii.gz, .nii, .nrrd or .mha", p)
    if p.name.lower().endswith((".nhdr", ".mhd")):
        raise OutputError(
            "cannot write a detached header (.nhdr/.mhd); use .nrrd or .mha (one file)", p
        )
    with atomic_path(p) as tmp:
        if fmt == "nifti":
            from lungspread.io.nifti import write_nifti

            write_nifti(volume, tmp)
        elif fmt == "nrrd":
            from lungspread.io.nrrd_io import write_nrrd

            write_nrrd(volume, tmp)
        else:
            from lungspread.io.metaimage import write_metaimage

            write_metaimage(volume, tmp)
    return p

"""Which format a path is, by its name."""

from __future__ import annotations

from pathlib import Path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr", ".seg.nrrd")
META_SUFFIXES = (".mha", ".mhd")


def format_of(path: str | Path) -> str:
    """``"nifti"``, ``"nrrd"``, ``"meta"``, ``"dicom"`` (a folder) or ``"unknown"``."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir():
        return "dicom"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(NRRD_SUFFIXES):
        return "nrrd"
    if name.endswith(META_SUFFIXES):
        return "meta"
    if name.endswith(".dcm"):
        return "dicom"
    return "unknown"

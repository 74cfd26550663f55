"""``volume_info``: what ``lungspread info`` reports about an image (the library call behind it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.ct_check import CTCheck, check_ct
from lungspread.io.readers import read_volume
from lungspread.volume import Volume


@dataclass
class VolumeInfo:
    """Geometry and intensity summary of one image, plus its CT check."""

    source: str
    format: str
    shape: tuple[int, int, int]
    dtype: str
    spacing_mm: tuple[float, float, float]
    axis_codes: str
    oblique: bool
    origin_mm: tuple[float, float, float]
    extent_mm: tuple[float, float, float]
    value_min: float
    value_max: float
    ct: CTCheck
    dicom: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "format": self.format,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "spacing_mm": list(self.spacing_mm),
            "axis_codes": self.axis_codes,
            "oblique": self.oblique,
            "origin_mm_ras": list(self.origin_mm),
            "extent_mm": list(self.extent_mm),
            "value_min": self.value_min,
            "value_max": self.value_max,
            "ct_check": self.ct.to_dict(),
            "notes": list(self.notes),
        }
        if self.dicom is not None:
            out["dicom"] = {k: v for k, v in self.dicom.items() if k != "files"}
            out["dicom"]["n_files"] = len(self.dicom.get("files", []))
        return out


def volume_info(
    source: str | Path | Volume,
    *,
    force_ct: bool = False,
    series_uid: str | None = None,
    allow_uneven: bool = False,
    allow_tilt: bool = False,
) -> VolumeInfo:
    """Read ``source`` (a path or a Volume), check that it is a CT and summarize it.

    Raises the reader's errors and :class:`~lungspread.errors.NotCTError` unless ``force_ct``.
    """
    if isinstance(source, Volume):
        vol = source
    else:
        vol = read_volume(
            source, series_uid=series_uid, allow_uneven=allow_uneven, allow_tilt=allow_tilt
        )
    ct = check_ct(vol, force=force_ct)
    arr = vol.array
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        lo = float(finite.min()) if finite.size else float("nan")
        hi = float(finite.max()) if finite.size else float("nan")
    else:
        lo, hi = float(arr.min()), float(arr.max())
    sp = vol.spacing
    notes = [str(vol.meta[k]) for k in ("note", "warning") if k in vol.meta]
    dicom = vol.meta.get("dicom")
    if isinstance(dicom, dict):
        for key in ("resampled", "tilt_corrected_deg"):
            if key in dicom:
                notes.append(f"{key}: {dicom[key]}")
    return VolumeInfo(
        source=str(vol.meta.get("source", "<array>")),
        format=str(vol.meta.get("format", "array")),
        shape=vol.shape,
        dtype=str(arr.dtype),
        spacing_mm=sp,
        axis_codes="".join(vol.axis_codes()),
        oblique=vol.is_oblique,
        origin_mm=(float(vol.origin[0]), float(vol.origin[1]), float(vol.origin[2])),
        extent_mm=(vol.shape[0] * sp[0], vol.shape[1] * sp[1], vol.shape[2] * sp[2]),
        value_min=lo,
        value_max=hi,
        ct=ct,
        dicom=dicom if isinstance(dicom, dict) else None,
        notes=notes,
    )

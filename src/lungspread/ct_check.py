"""Does a volume look like a CT in Hounsfield units? Refuse it with a clear message if not.

A chest CT in HU has air (outside the body, in the lungs and airways) near -1000 and soft
tissue near 0..100. The check looks at robust percentiles of a subsample of the voxels and
refuses, with what it found:

* ``nonfinite`` -- NaN or infinite voxels (never forceable);
* ``single_slice`` / ``too_small`` -- a dimension of 1 (a 2D image) or fewer than
  :data:`MIN_VOXELS` voxels, where a 3D CT is needed (never forceable);
* ``constant`` -- every voxel has the same value;
* ``unit_range`` -- all values within [0, 1] (a normalized image or a mask);
* ``no_air`` -- no voxels near -1000 HU: an MRI, a CT without its rescale to HU (air at
  about +24 in raw units), or an image that is not a chest CT.

Padding outside the scanner's field of view (-2048, -3024, -32768) and metal (> 3000 HU) are
accepted. The intensity findings can be overridden with ``force=True`` (CLI ``--force-ct``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import NotCTError
from lungspread.volume import Volume

#: Fewest voxels a CT may have (a 10x10x10 crop); the LIDC nodule crops are >= 43x43x2.
MIN_VOXELS = 1000
#: HU window counted as air or lung parenchyma.
AIR_HU = (-1100.0, -700.0)
#: Fraction of (non-padding) voxels that must be air-like for a CT.
MIN_AIR_FRACTION = 0.002
#: Voxels at or below this value are treated as padding outside the field of view.
PADDING_BELOW_HU = -1500.0
#: Subsample size for the percentiles (a strided view, deterministic).
SAMPLE_VOXELS = 2_000_000


@dataclass(frozen=True)
class Finding:
    """One reason a volume does not look like a CT in HU."""

    code: str
    message: str
    forceable: bool = True


@dataclass
class CTCheck:
    """Result of :func:`check_ct`: statistics, findings, and whether the volume was forced."""

    shape: tuple[int, int, int]
    dtype: str
    stats: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    forced: bool = False

    @property
    def looks_like_ct(self) -> bool:
        return not self.findings

    @property
    def ok(self) -> bool:
        """True when the volume can be used as CT (it looks like one, or was forced)."""
        return self.looks_like_ct or (self.forced and all(f.forceable for f in self.findings))

    def summary(self) -> str:
        if self.looks_like_ct:
            lo, hi = self.stats.get("p0.5", float("nan")), self.stats.get("p99.5", float("nan"))
            air = 100 * self.stats.get("air_fraction", float("nan"))
            return f"looks like CT in HU (p0.5..p99.5 = {lo:.0f}..{hi:.0f}, {air:.1f}% air)"
        text = "; ".join(f.message for f in self.findings)
        return f"forced as CT despite: {text}" if self.forced else f"not CT: {text}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "looks_like_ct": self.looks_like_ct,
            "forced": self.forced,
            "findings": [{"code": f.code, "message": f.message} for f in self.findings],
            "stats": dict(self.stats),
        }


def _sample(arr: np.ndarray, n_max: int = SAMPLE_VOXELS) -> np.ndarray:
    if arr.size <= n_max:
        return np.asarray(arr).ravel()
    step = int(np.ceil((arr.size / n_max) ** (1 / 3)))
    return np.asarray(arr[::step, ::step, ::step]).ravel()


def _fmt(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}"


def assess_ct(volume: Volume) -> CTCheck:
    """The findings about ``volume`` without raising (see :func:`check_ct`)."""
    arr = volume.array
    check = CTCheck(shape=volume.shape, dtype=str(arr.dtype))
    findings = check.findings
    shape_txt = "x".join(str(s) for s in volume.shape)
    if 1 in volume.shape:
        findings.append(
            Finding(
                "single_slice",
                f"image is {shape_txt} voxels: a dimension of 1 (a 2D image or a single slice), "
                "where a 3D CT is needed",
                forceable=False,
            )
        )
    elif arr.size < MIN_VOXELS:
        findings.append(
            Finding(
                "too_small",
                f"image has only {arr.size} voxels ({shape_txt}); a CT needs at least {MIN_VOXELS}",
                forceable=False,
            )
        )
    if arr.size == 0:
        return check

    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        n_bad = int(arr.size - np.count_nonzero(finite))
        if n_bad:
            n_nan = int(np.count_nonzero(np.isnan(arr)))
            findings.append(
                Finding(
                    "nonfinite",
                    f"{n_bad:,} of {arr.size:,} voxels are not finite ({n_nan:,} NaN, "
                    f"{n_bad - n_nan:,} infinite)",
                    forceable=False,
                )
            )
            values = _sample(arr)
            values = values[np.isfinite(values)].astype(np.float64)
        else:
            values = _sample(arr).astype(np.float64)
    else:
        values = _sample(arr).astype(np.float64)
    if values.size == 0:
        return check

    vmin, vmax = float(values.min()), float(values.max())
    body = values[values > PADDING_BELOW_HU]
    if body.size == 0:
        body = values
    pcts = np.percentile(body, [0.5, 1, 5, 50, 95, 99, 99.5])
    air = float(np.mean((body >= AIR_HU[0]) & (body <= AIR_HU[1])))
    check.stats = {
        "min": vmin,
        "max": vmax,
        "p0.5": float(pcts[0]),
        "p1": float(pcts[1]),
        "p5": float(pcts[2]),
        "p50": float(pcts[3]),
        "p95": float(pcts[4]),
        "p99": float(pcts[5]),
        "p99.5": float(pcts[6]),
        "air_fraction": air,
        "padding_fraction": float(1.0 - body.size / values.size),
    }
    span = f"{_fmt(float(pcts[0]))}..{_fmt(float(pcts[6]))}"
    expected = "expected CT in HU (air about -1000, soft tissue 0..100)"
    if vmin == vmax:
        findings.append(
            Finding("constant", f"all voxels have the same value {_fmt(vmin)}; {expected}")
        )
    elif vmin >= -0.01 and vmax <= 1.01:
        findings.append(
            Finding(
                "unit_range",
                f"intensities span {_fmt(vmin)}..{_fmt(vmax)} (a normalized image or a mask); "
                f"{expected}",
            )
        )
    elif air < MIN_AIR_FRACTION:
        hint = (
            "looks like MRI, or CT without its rescale to HU"
            if vmin >= 0
            else "no air or lung in the image"
        )
        findings.append(
            Finding(
                "no_air",
                f"intensities span {span} (0.5-99.5th percentile) with "
                f"{100 * air:.2f}% of voxels near -1000 HU ({hint}); {expected}",
            )
        )
    return check


def check_ct(volume: Volume, source: str | Path | None = None, force: bool = False) -> CTCheck:
    """Check that ``volume`` looks like a CT in HU; raise :class:`NotCTError` if it does not.

    ``force=True`` accepts intensity findings (MRI-like, [0, 1], constant) and records them in
    the returned check; NaN/inf voxels and a missing third dimension are refused regardless.
    ``source`` names the file in the error message (default: ``volume.meta["source"]``).
    """
    check = assess_ct(volume)
    check.forced = bool(force) and bool(check.findings)
    if check.ok:
        return check
    src = source if source is not None else volume.meta.get("source")
    hard = [f for f in check.findings if not f.forceable]
    if hard:
        raise NotCTError("; ".join(f.message for f in hard), src)
    text = "; ".join(f.message for f in check.findings)
    raise NotCTError(f"{text}; pass --force-ct (force=True) to use it anyway", src)

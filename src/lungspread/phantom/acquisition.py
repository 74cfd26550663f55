"""What the scanner adds: slice thickness, blur, noise, the reconstruction circle, int16 HU.

Order, as in a real reconstruction: the slice sensitivity profile averages along z (slices
thicker than their spacing), quantum noise is added (stronger behind more tissue), and the
reconstruction kernel blurs in-plane, which also gives the noise its fine-grained correlated
texture. Outside the reconstruction circle scanners write a padding value (-1024, -2048 or
-3024 in the LIDC data); some phantoms have none, like a scan cropped to a square field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.phantom.geometry import F32, parse_orientation

#: Voxel volume (mm^3) at which ``noise_hu_ref`` is defined: 0.7 x 0.7 x 1.25 mm.
REFERENCE_VOXEL_MM3 = 0.7 * 0.7 * 1.25


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings of a phantom. ``None`` fields are drawn from the seed.

    ``noise_hu_ref`` is the noise standard deviation of a 0.7 x 0.7 x 1.25 mm voxel; the noise
    on the actual grid scales with the square root of the voxel volume (larger or thicker
    voxels average more photons), unless ``noise_hu`` sets it directly.
    """

    orientation: str = "LPS"
    noise_hu: float | None = None
    noise_hu_ref: float | None = None
    psf_fwhm_mm: float | None = None
    slice_thickness_mm: float | None = None
    fov_fill_hu: int | None = None  # value outside the reconstruction circle
    fov_circle: bool | None = None

    def __post_init__(self) -> None:
        parse_orientation(self.orientation)
        for name in ("noise_hu", "noise_hu_ref", "psf_fwhm_mm", "slice_thickness_mm"):
            v = getattr(self, name)
            if v is not None and (not np.isfinite(v) or v < 0):
                raise InputError(f"acquisition {name} must be a finite value >= 0, got {v!r}")
        t = self.slice_thickness_mm
        if t is not None and not 0.5 <= t <= 10:
            raise InputError(f"slice_thickness_mm must be between 0.5 and 10 mm, got {t}")

    def resolved(
        self, rng: np.random.Generator, spacing_mm: tuple[float, float, float]
    ) -> Acquisition:
        """Every field filled in: drawn from ``rng`` where it was ``None``."""
        thick = self.slice_thickness_mm
        if thick is None:
            thick = float(np.clip(spacing_mm[2] * rng.choice([1.0, 1.0, 1.25, 1.6]), 0.6, 5.0))
        ref = self.noise_hu_ref if self.noise_hu_ref is not None else float(rng.uniform(20, 50))
        vox = spacing_mm[0] * spacing_mm[1] * max(spacing_mm[2], thick)
        noise = self.noise_hu
        if noise is None:
            noise = max(1.5, ref * float(np.sqrt(REFERENCE_VOXEL_MM3 / vox)))
        psf = self.psf_fwhm_mm if self.psf_fwhm_mm is not None else float(rng.uniform(0.7, 1.4))
        circle = self.fov_circle if self.fov_circle is not None else bool(rng.random() < 0.8)
        fill = self.fov_fill_hu
        if fill is None:
            fill = int(rng.choice([-1024, -2048, -3024, -2000]))
        return Acquisition(self.orientation.upper(), noise, ref, psf, thick, fill, circle)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _taps(sigma_vox: float) -> np.ndarray:
    if sigma_vox < 0.15:
        return np.ones(1, F32)
    rad = max(1, int(np.ceil(3.0 * sigma_vox)))
    taps = np.exp(-0.5 * (np.arange(-rad, rad + 1) / sigma_vox) ** 2)
    return (taps / taps.sum()).astype(F32)


def acquire(
    hu: np.ndarray,
    spacing_mm: tuple[float, float, float],
    acq: Acquisition,
    rng: np.random.Generator,
    noise_gain_2d: np.ndarray,
) -> np.ndarray:
    """Apply thickness, noise, kernel blur and the field of view to ``hu`` (k, j, i; float32).

    ``noise_gain_2d`` (j, i) scales the noise in-plane (more noise behind thick anatomy).
    Works slice by slice (everything stays in cache). Returns int16 HU.
    """
    from scipy import ndimage as ndi

    assert acq.slice_thickness_mm is not None and acq.psf_fwhm_mm is not None
    assert acq.noise_hu is not None
    nk, nj, ni = hu.shape
    sx, sy, sz = spacing_mm
    extra_var = max(acq.slice_thickness_mm**2 - sz**2, 0.0) / 12.0
    tz = _taps(float(np.sqrt(extra_var)) / sz) if extra_var > 0 else np.ones(1, F32)
    sig = acq.psf_fwhm_mm / 2.3548
    tj, ti = _taps(sig / sy), _taps(sig / sx)
    keep = float((tj**2).sum() * (ti**2).sum())
    gain = (noise_gain_2d * F32(acq.noise_hu / np.sqrt(keep))).astype(F32)
    bank = _NoiseBank(rng, nk, nj, ni) if acq.noise_hu > 0 else None
    outside = None
    if acq.fov_circle:
        jj = (np.arange(nj) - (nj - 1) / 2) * sy
        ii = (np.arange(ni) - (ni - 1) / 2) * sx
        radius = min(nj * sy, ni * sx) / 2
        outside = (jj[:, None] ** 2 + ii[None, :] ** 2) > radius**2
        if not outside.any():
            outside = None
    fill = np.int16(acq.fov_fill_hu if acq.fov_fill_hu is not None else -1024)
    out = np.empty(hu.shape, np.int16)
    rz = len(tz) // 2
    cur = np.empty((nj, ni), F32)
    tmp = np.empty((nj, ni), F32)
    for k in range(nk):
        if rz:
            np.multiply(hu[k], tz[rz], out=cur)
            for t in range(1, rz + 1):
                cur += tz[rz + t] * (hu[min(k + t, nk - 1)] + hu[max(k - t, 0)])
        else:
            cur[...] = hu[k]
        if bank is not None:
            cur += bank.slice(k) * gain
        if len(tj) > 1:
            ndi.correlate1d(cur, tj, axis=0, mode="nearest", output=tmp)
            cur, tmp = tmp, cur
        if len(ti) > 1:
            ndi.correlate1d(cur, ti, axis=1, mode="nearest", output=tmp)
            cur, tmp = tmp, cur
        np.clip(cur, -3024, 3071, out=cur)
        np.rint(cur, out=cur)
        out[k] = cur
        if outside is not None:
            out[k][outside] = fill
    return out


class _NoiseBank:
    """White Gaussian noise slices; large volumes reuse a bank of fields with random shifts.

    Drawing 67 million normal numbers takes longer than the rest of the acquisition, so
    volumes over 64 slices of 256 x 256 draw 48 padded fields once and give each slice a
    randomly shifted and flipped window of one of them (distinct noise in every slice).
    """

    def __init__(self, rng: np.random.Generator, nk: int, nj: int, ni: int) -> None:
        self.rng = rng
        self.shape = (nj, ni)
        self.direct = nk * nj * ni <= 64 * 256 * 256
        self.pad = 0 if self.direct else 48
        if not self.direct:
            n = 48
            self.fields = rng.standard_normal((n, nj + self.pad, ni + self.pad), dtype=F32)
            self.pick = rng.integers(0, n, nk)
            self.offs = rng.integers(0, self.pad + 1, (nk, 2))
            self.flips = rng.integers(0, 2, (nk, 2)).astype(bool)

    def slice(self, k: int) -> np.ndarray:
        nj, ni = self.shape
        if self.direct:
            return self.rng.standard_normal(self.shape, dtype=F32)
        f = self.fields[self.pick[k]]
        oj, oi = self.offs[k]
        win = f[oj : oj + nj, oi : oi + ni]
        if self.flips[k, 0]:
            win = win[::-1]
        if self.flips[k, 1]:
            win = win[:, ::-1]
        return win

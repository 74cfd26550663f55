"""From a tumor probability map to a clean tumor mask.

Three steps, in this order, each documented by the numbers it reports:

1. **threshold**: voxels with probability >= ``threshold`` are candidate tumor;
2. **lesions**: connected components (26-connectivity, the same as the spread report) of the
   candidates; a component is dropped when its volume is below ``min_lesion_mm3``, when its
   highest probability is below ``min_peak_probability`` (a weak, diffuse response is
   rarely a tumor), or when less than ``min_fraction_in_lungs`` of its voxels lie within
   ``lung_margin_mm`` of the lung mask (tumors start in the lung; the margin keeps
   juxtapleural and mediastinal tumors that grow out of the lung mask);
3. what remains is the tumor mask (uint8, 0/1).

The lung test measures distances in mm (anisotropic spacing included) on a copy of the lung
mask subsampled to about a quarter of the margin, computed once, so it costs about the same
for one candidate lesion as for thousands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

#: 26-connectivity in 3D.
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class PostprocessOptions:
    """Settings of :func:`postprocess`; a model can set its own in ``model.json``'s
    ``extra["postprocess"]`` and callers can override each one."""

    threshold: float = 0.5
    min_lesion_mm3: float = 30.0
    min_peak_probability: float = 0.5
    lung_margin_mm: float = 10.0
    min_fraction_in_lungs: float = 0.25

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None, **overrides: Any) -> PostprocessOptions:
        """Options from a dict (unknown keys ignored) with non-None ``overrides`` on top."""
        known = set(cls.__dataclass_fields__)
        merged = {k: float(v) for k, v in (values or {}).items() if k in known and v is not None}
        merged.update({k: float(v) for k, v in overrides.items() if k in known and v is not None})
        return cls(**merged)

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class PostprocessResult:
    """The tumor mask and what each step kept or dropped."""

    mask: np.ndarray
    candidates: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(
        default_factory=lambda: {"too_small": 0, "low_probability": 0, "outside_lungs": 0}
    )

    def summary(self) -> dict[str, Any]:
        return {"candidates": self.candidates, "kept": self.kept, "dropped": dict(self.dropped)}


class _LungDistance:
    """Distance (mm) to the nearest lung voxel, on a grid subsampled to about
    ``margin_mm / 4`` per axis (exact where the spacing is already that coarse), computed once
    for all components: its error is at most about half a coarse voxel, small against the
    margin it is compared with."""

    def __init__(
        self, lungs: np.ndarray, spacing_mm: tuple[float, float, float], margin_mm: float
    ) -> None:
        self.step = [max(1, int(margin_mm / 4.0 / s)) for s in spacing_mm]
        coarse = np.asarray(lungs)[:: self.step[0], :: self.step[1], :: self.step[2]] > 0
        self.any = bool(coarse.any())
        sampling = [s * f for s, f in zip(spacing_mm, self.step, strict=True)]
        self.dist = ndimage.distance_transform_edt(~coarse, sampling=sampling) if self.any else None

    def fraction_within(self, coords: tuple[np.ndarray, ...], margin_mm: float) -> float:
        """Share of the voxels ``coords`` (index arrays) within ``margin_mm`` of the lungs."""
        if self.dist is None or coords[0].size == 0:
            return 0.0
        idx = tuple(
            np.clip(np.rint(c / f).astype(np.intp), 0, n - 1)
            for c, f, n in zip(coords, self.step, self.dist.shape, strict=True)
        )
        return float(np.count_nonzero(self.dist[idx] <= margin_mm)) / coords[0].size


def postprocess(
    probability: np.ndarray,
    spacing_mm: tuple[float, float, float],
    lungs: np.ndarray | None = None,
    options: PostprocessOptions | None = None,
) -> PostprocessResult:
    """Threshold ``probability`` and keep the components that look like lung tumors.

    ``probability`` (any float array, values in [0, 1]) and ``lungs`` (labels, > 0 is lung)
    share one grid with voxel size ``spacing_mm``. Without ``lungs`` the lung test is skipped.
    The result's mask is uint8 with values 0 and 1.
    """
    opts = options or PostprocessOptions()
    prob = np.asarray(probability)
    if lungs is not None and lungs.shape != prob.shape:
        raise ValueError(f"lung mask shape {lungs.shape} differs from probabilities {prob.shape}")
    candidates = prob >= opts.threshold
    labels, n = ndimage.label(candidates, structure=STRUCTURE_26)
    result = PostprocessResult(mask=np.zeros(prob.shape, dtype=np.uint8), candidates=int(n))
    if n == 0:
        return result
    voxel_mm3 = float(np.prod(spacing_mm))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    # highest probability per component, from the candidate voxels only (scipy's
    # ndimage.maximum sorts the whole volume: 5 s on a 35 M-voxel crop, against milliseconds)
    peaks_all = np.zeros(n + 1, dtype=np.float64)
    np.maximum.at(peaks_all, labels[candidates], prob[candidates])
    peaks = peaks_all[1:]
    boxes = ndimage.find_objects(labels)
    near: _LungDistance | None = None
    keep = np.zeros(n + 1, dtype=bool)
    for idx in range(1, n + 1):
        if sizes[idx] * voxel_mm3 < opts.min_lesion_mm3:
            result.dropped["too_small"] += 1
            continue
        if float(peaks[idx - 1]) < opts.min_peak_probability:
            result.dropped["low_probability"] += 1
            continue
        box = boxes[idx - 1]
        if lungs is not None and box is not None:
            if near is None:
                near = _LungDistance(lungs, spacing_mm, opts.lung_margin_mm)
            local = np.nonzero(labels[box] == idx)
            coords = tuple(c + sl.start for c, sl in zip(local, box, strict=True))
            frac = near.fraction_within(coords, opts.lung_margin_mm)
            if frac < opts.min_fraction_in_lungs:
                result.dropped["outside_lungs"] += 1
                continue
        keep[idx] = True
    result.kept = int(keep.sum())
    result.mask = keep[labels].astype(np.uint8)
    return result

"""Intensity normalization by modality, as nnU-Net (v2) does it.

* ``"CT"`` (case-insensitive): intensities of the *foreground* voxels (label > 0) are sampled
  over the training set (nnU-Net's ``DatasetFingerprintExtractor``: per case
  ``10**8 // n_cases`` draws with replacement, ``RandomState(1234)``); the 0.5 and 99.5
  percentiles give the clipping window and the mean and standard deviation of the (unclipped)
  samples give the z-score (nnU-Net's ``CTNormalization``):
  ``(clip(x, p0.5, p99.5) - mean) / max(std, 1e-8)``.
* any other modality: per-image z-score, ``(x - x.mean()) / max(x.std(), 1e-8)``
  (nnU-Net's ``ZScoreNormalization`` without a mask).

The parameters are the ``normalization`` field of :class:`lungspread.models.checkpoint.ModelSpec`:
``{"scheme": "ct", "clip_hu": [lo, hi], "mean": m, "std": s}`` or ``{"scheme": "zscore"}``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from lungspread.errors import InputError, ModelError

if TYPE_CHECKING:
    from lungspread.data.msd import MSDDataset

log = logging.getLogger(__name__)

#: nnU-Net's total number of foreground intensity samples over a dataset.
NNUNET_FOREGROUND_SAMPLES = 10**8
NNUNET_SEED = 1234
SCHEMES = ("ct", "zscore", "none")


def sample_foreground(
    image: np.ndarray, label: np.ndarray, n_samples: int, seed: int = NNUNET_SEED
) -> np.ndarray:
    """``n_samples`` intensities drawn with replacement from the voxels where label > 0.

    Same draws as nnU-Net's ``collect_foreground_intensities`` (``RandomState(seed).choice``):
    nnU-Net reads images with SimpleITK as ``(k, j, i)`` arrays, so the foreground voxels are
    listed in that order (``array.T``) before drawing. Returns an empty array when the label
    has no foreground.
    """
    fg = np.asarray(image, dtype=np.float32).T[np.asarray(label).T > 0]
    if fg.size == 0 or n_samples <= 0:
        return np.zeros(0, dtype=np.float32)
    rs = np.random.RandomState(seed)
    return np.asarray(rs.choice(fg, n_samples, replace=True), dtype=np.float32)


def intensity_statistics(samples: np.ndarray) -> dict[str, float]:
    """mean, median, std, min, max, percentile_00_5, percentile_99_5 (nnU-Net's names).

    Computed on the float32 samples with numpy defaults, as nnU-Net does.
    """
    s = np.asarray(samples, dtype=np.float32)
    if s.size == 0:
        nan = float("nan")
        return dict.fromkeys(
            ("mean", "median", "std", "min", "max", "percentile_00_5", "percentile_99_5"), nan
        )
    return {
        "mean": float(np.mean(s)),
        "median": float(np.median(s)),
        "std": float(np.std(s)),
        "min": float(np.min(s)),
        "max": float(np.max(s)),
        "percentile_00_5": float(np.percentile(s, 0.5)),
        "percentile_99_5": float(np.percentile(s, 99.5)),
    }


def select_cases(n_cases: int, max_cases: int | None) -> list[int]:
    """Indices of up to ``max_cases`` cases spread evenly over the list (all when None)."""
    if max_cases is None or max_cases >= n_cases:
        return list(range(n_cases))
    if max_cases < 1:
        raise InputError(f"max_cases must be at least 1, got {max_cases}")
    return sorted({round(x) for x in np.linspace(0, n_cases - 1, max_cases)})


def fit_intensity_stats(
    dataset: MSDDataset,
    max_cases: int | None = None,
    total_samples: int = NNUNET_FOREGROUND_SAMPLES,
) -> dict[str, Any]:
    """Normalization parameters for ``dataset`` (ModelSpec format), fitted as nnU-Net does.

    ``max_cases`` limits the cases read (evenly spread over the list) for speed; the sample
    count per case is ``total_samples // n_cases_used``. Non-CT datasets need no fitting and
    return ``{"scheme": "zscore"}`` without reading anything.
    """
    if not dataset.is_ct:
        return {"scheme": "zscore"}
    stats = fit_foreground_intensities(dataset, max_cases=max_cases, total_samples=total_samples)
    return ct_params_from_stats(stats)


def fit_foreground_intensities(
    dataset: MSDDataset,
    max_cases: int | None = None,
    total_samples: int = NNUNET_FOREGROUND_SAMPLES,
) -> dict[str, float]:
    """nnU-Net's ``foreground_intensity_properties_per_channel["0"]`` for ``dataset``."""
    labelled = [c for c in dataset.cases if c.label is not None]
    if not labelled:
        raise InputError("no labelled cases to fit intensity statistics on", dataset.root)
    idx = select_cases(len(labelled), max_cases)
    per_case = int(total_samples // len(idx))
    chunks: list[np.ndarray] = []
    for i in idx:
        image, label = dataset.load_case(labelled[i])
        assert label is not None
        chunks.append(
            sample_foreground(np.asarray(image.array, dtype=np.float32), label.array, per_case)
        )
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise InputError(
            "the labels hold no foreground voxels: cannot fit CT normalization", dataset.root
        )
    out = intensity_statistics(samples)
    out["n_cases"] = float(len(idx))
    return out


def ct_params_from_stats(stats: dict[str, float]) -> dict[str, Any]:
    """Turn nnU-Net's intensity properties into the ModelSpec ``normalization`` dict."""
    return {
        "scheme": "ct",
        "clip_hu": [float(stats["percentile_00_5"]), float(stats["percentile_99_5"])],
        "mean": float(stats["mean"]),
        "std": float(stats["std"]),
    }


def normalize(array: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Normalize an image array with ``params`` (see module docstring); returns float32."""
    scheme = params.get("scheme")
    x = np.asarray(array, dtype=np.float32)
    if scheme == "ct":
        try:
            lo, hi = (float(v) for v in params["clip_hu"])
            mean, std = float(params["mean"]), float(params["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                "CT normalization needs clip_hu [lo, hi], mean and std, found "
                f"{sorted(params)} ({exc})"
            ) from exc
        out = np.clip(x, lo, hi)
        out -= np.float32(mean)
        out /= np.float32(max(std, 1e-8))
        return out
    if scheme == "zscore":
        mean64 = float(x.mean(dtype=np.float64)) if x.size else 0.0
        std64 = float(x.std(dtype=np.float64)) if x.size else 1.0
        return ((x - np.float32(mean64)) / np.float32(max(std64, 1e-8))).astype(np.float32)
    if scheme == "none":
        return x.copy()
    raise ModelError(f"unknown normalization scheme {scheme!r}; known: {', '.join(SCHEMES)}")

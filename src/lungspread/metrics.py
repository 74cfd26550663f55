"""Segmentation metrics: overlap, surface distance and lesion-wise detection.

Pure functions on boolean numpy arrays (2D or 3D, same shape) with the voxel spacing in mm.
Undefined values are ``nan`` (``null`` in JSON), never a silent 0, and :func:`case_metrics`
says why in ``null_reasons``:

* Dice, IoU: undefined when both masks are empty (0 when only one is).
* sensitivity: undefined when the truth is empty; precision: when the prediction is empty.
* HD95, ASSD: undefined when either mask is empty.
* NSD: undefined when both are empty; 0 when only one is (no boundary agrees).

Surfaces follow MONAI (``monai.metrics``): the surface of a mask is its voxels that have a
6-connected (4 in 2D) background neighbour (``mask ^ binary_erosion(mask)``, outside the array
counts as background); distances are Euclidean in mm between surface voxel centres
(``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), computed on the bounding
box of the two masks only, for speed.

* ``hd95_mm``: the larger of the two directed 95th percentiles (pred->truth, truth->pred).
* ``assd_mm``: the mean of all surface distances of both directions together.
* ``nsd`` (normalized surface Dice): the fraction of both surfaces lying within
  ``tolerance_mm`` of the other surface (``<=``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lungspread.errors import GeometryError

#: Metrics of :func:`case_metrics` that :func:`aggregate` averages.
METRIC_KEYS: tuple[str, ...] = (
    "dice",
    "iou",
    "sensitivity",
    "precision",
    "fpr",
    "hd95_mm",
    "assd_mm",
    "nsd_2mm",
    "lesions_tp",
    "lesions_fp",
    "lesions_fn",
)
NAN = float("nan")


def _prepare(
    pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    p = np.asarray(pred).astype(bool, copy=False)
    t = np.asarray(truth).astype(bool, copy=False)
    if p.shape != t.shape:
        raise GeometryError(f"prediction shape {p.shape} differs from ground truth shape {t.shape}")
    if spacing_mm is None:
        sp: tuple[float, ...] = (1.0,) * p.ndim
    else:
        sp = tuple(float(s) for s in spacing_mm)
        if len(sp) != p.ndim:
            raise GeometryError(f"spacing {sp} has {len(sp)} values for a {p.ndim}D mask")
        if not all(math.isfinite(s) and s > 0 for s in sp):
            raise GeometryError(f"spacing must be positive and finite, got {sp}")
    return p, t, sp


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Voxel counts ``(tp, fp, fn, tn)``."""
    p, t, _ = _prepare(pred, truth)
    tp = int(np.count_nonzero(p & t))
    n_p = int(np.count_nonzero(p))
    n_t = int(np.count_nonzero(t))
    fp, fn = n_p - tp, n_t - tp
    return tp, fp, fn, int(p.size) - tp - fp - fn


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else NAN


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2|P∩T| / (|P| + |T|); nan when both are empty."""
    tp, fp, fn, _ = confusion_counts(pred, truth)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|P∩T| / |P∪T|; nan when both are empty."""
    tp, fp, fn, _ = confusion_counts(pred, truth)
    return _ratio(tp, tp + fp + fn)


def sensitivity(pred: np.ndarray, truth: np.ndarray) -> float:
    """TP / (TP + FN) (recall); nan when the truth is empty."""
    tp, _, fn, _ = confusion_counts(pred, truth)
    return _ratio(tp, tp + fn)


def precision(pred: np.ndarray, truth: np.ndarray) -> float:
    """TP / (TP + FP); nan when the prediction is empty."""
    tp, fp, _, _ = confusion_counts(pred, truth)
    return _ratio(tp, tp + fp)


def false_positive_rate(pred: np.ndarray, truth: np.ndarray) -> float:
    """FP / (FP + TN): the fraction of background voxels marked; nan without background."""
    _, fp, _, tn = confusion_counts(pred, truth)
    return _ratio(fp, fp + tn)


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    slices = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: (each pred surface voxel -> truth surface,
    each truth surface voxel -> pred surface). Both masks must be non-empty."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    p, t, sp = _prepare(pred, truth, spacing_mm)
    if not p.any() or not t.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _bbox(p | t)
    # One voxel of background around the box: erosion treats the array border as background.
    shape = tuple(s.stop - s.start + 2 for s in box)
    inner = tuple(slice(1, n - 1) for n in shape)
    pc = np.zeros(shape, bool)
    tc = np.zeros(shape, bool)
    pc[inner] = p[box]
    tc[inner] = t[box]
    edge_p = pc ^ binary_erosion(pc)
    edge_t = tc ^ binary_erosion(tc)
    dist_to_t = distance_transform_edt(~edge_t, sampling=sp)
    dist_to_p = distance_transform_edt(~edge_p, sampling=sp)
    return np.asarray(dist_to_t[edge_p], np.float64), np.asarray(dist_to_p[edge_t], np.float64)


def hd95_mm(pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm); nan when either mask is empty."""
    p, t, sp = _prepare(pred, truth, spacing_mm)
    if not p.any() or not t.any():
        return NAN
    d_pt, d_tp = surface_distances(p, t, sp)
    return float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))


def assd_mm(pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float]) -> float:
    """Average symmetric surface distance (mm); nan when either mask is empty."""
    p, t, sp = _prepare(pred, truth, spacing_mm)
    if not p.any() or not t.any():
        return NAN
    d_pt, d_tp = surface_distances(p, t, sp)
    return float(np.concatenate([d_pt, d_tp]).mean())


def nsd(
    pred: np.ndarray, truth: np.ndarray, spacing_mm: Sequence[float], tolerance_mm: float = 2.0
) -> float:
    """Normalized surface Dice at ``tolerance_mm``; nan when both empty, 0 when one is."""
    p, t, sp = _prepare(pred, truth, spacing_mm)
    has_p, has_t = bool(p.any()), bool(t.any())
    if not has_p and not has_t:
        return NAN
    if not has_p or not has_t:
        return 0.0
    d_pt, d_tp = surface_distances(p, t, sp)
    good = int(np.count_nonzero(d_pt <= tolerance_mm)) + int(np.count_nonzero(d_tp <= tolerance_mm))
    return good / float(d_pt.size + d_tp.size)


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    from scipy.ndimage import generate_binary_structure

    table = {2: {4: 1, 8: 2, 6: 1, 18: 2, 26: 2}, 3: {6: 1, 18: 2, 26: 3}}
    if ndim not in table or connectivity not in table[ndim]:
        raise ValueError(
            f"connectivity {connectivity} is not valid for {ndim}D masks "
            "(3D: 6, 18, 26; 2D: 4, 8; 26 means full connectivity in either)"
        )
    return generate_binary_structure(ndim, table[ndim][connectivity])


def label_lesions(
    mask: np.ndarray,
    spacing_mm: Sequence[float],
    connectivity: int = 26,
    min_volume_mm3: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Connected components (``(labels, n)``), dropping those smaller than ``min_volume_mm3``."""
    from scipy.ndimage import label

    m = np.asarray(mask).astype(bool, copy=False)
    labels, n = label(m, structure=_structure(m.ndim, connectivity))
    if n and min_volume_mm3 > 0:
        voxel_mm3 = float(np.prod(spacing_mm))
        sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel_mm3
        keep = sizes >= min_volume_mm3
        keep[0] = False
        remap = np.zeros(n + 1, dtype=labels.dtype)
        remap[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, n = remap[labels], int(keep.sum())
    return labels, int(n)


def lesion_counts(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing_mm: Sequence[float],
    connectivity: int = 26,
    min_overlap: float = 0.0,
    min_volume_mm3: float = 0.0,
) -> tuple[int, int, int]:
    """Lesion-wise detection counts ``(tp, fp, fn)``.

    Lesions are connected components (``connectivity`` 26/18/6 in 3D; in 2D 26 or 8 mean
    8-connected, 6 or 4 mean 4-connected), ignoring components below ``min_volume_mm3``.

    * A truth lesion is detected (TP) when more than ``min_overlap`` of its voxels are
      predicted (default 0: at least one voxel); otherwise it is a FN.
    * A predicted component is a FP when at most ``min_overlap`` of its voxels lie in the truth
      (default: it touches no truth voxel).

    So ``tp + fn`` is the number of truth lesions; several predicted pieces of one truth lesion
    count once.
    """
    p, t, sp = _prepare(pred, truth, spacing_mm)
    union = p | t
    if not union.any():
        return 0, 0, 0
    box = _bbox(union)  # components never leave the union's box: label only that
    p, t = p[box], t[box]
    t_lab, n_t = label_lesions(t, sp, connectivity, min_volume_mm3)
    p_lab, n_p = label_lesions(p, sp, connectivity, min_volume_mm3)
    tp = fn = fp = 0
    if n_t:
        size_t = np.bincount(t_lab.ravel(), minlength=n_t + 1)
        hit_t = np.bincount(t_lab[p], minlength=n_t + 1)
        frac_t = hit_t[1:] / np.maximum(size_t[1:], 1)
        tp = int(np.count_nonzero(frac_t > min_overlap))
        fn = n_t - tp
    if n_p:
        size_p = np.bincount(p_lab.ravel(), minlength=n_p + 1)
        hit_p = np.bincount(p_lab[t], minlength=n_p + 1)
        frac_p = hit_p[1:] / np.maximum(size_p[1:], 1)
        fp = int(np.count_nonzero(frac_p <= min_overlap))
    return tp, fp, fn


def case_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    spacing_mm: Sequence[float],
    case: str,
    *,
    nsd_tolerance_mm: float = 2.0,
    connectivity: int = 26,
    lesion_min_overlap: float = 0.0,
    lesion_min_volume_mm3: float = 0.0,
) -> dict[str, Any]:
    """Every metric of one case, with ``null_reasons`` for the undefined ones.

    Keys: ``case``, the :data:`METRIC_KEYS`, ``voxels_tp``/``voxels_fp``/``voxels_fn``/
    ``voxels_tn`` (for pooled Dice), ``voxel_volume_mm3``, ``truth_volume_ml``,
    ``pred_volume_ml``, ``null_reasons`` ({metric: reason}).
    """
    p, t, sp = _prepare(pred, truth, spacing_mm)
    nsd_key = f"nsd_{nsd_tolerance_mm:g}mm"
    tp, fp, fn, tn = confusion_counts(p, t)
    has_p, has_t = tp + fp > 0, tp + fn > 0
    reasons: dict[str, str] = {}
    if not has_p and not has_t:
        empty = "both masks empty"
    elif not has_p:
        empty = "prediction empty"
    elif not has_t:
        empty = "truth empty"
    else:
        empty = ""
    if not has_p and not has_t:
        reasons["dice"] = reasons["iou"] = reasons[nsd_key] = empty
    if not has_t:
        reasons["sensitivity"] = "truth empty (no tumor to find)"
    if not has_p:
        reasons["precision"] = "prediction empty"
    if fp + tn == 0:
        reasons["fpr"] = "no background voxels"
    if empty:
        reasons["hd95_mm"] = reasons["assd_mm"] = empty
    if has_p and has_t:
        d_pt, d_tp = surface_distances(p, t, sp)
        hd = float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95)))
        asd = float(np.concatenate([d_pt, d_tp]).mean())
        good = np.count_nonzero(d_pt <= nsd_tolerance_mm) + np.count_nonzero(
            d_tp <= nsd_tolerance_mm
        )
        nsd_v = float(good) / float(d_pt.size + d_tp.size)
    else:
        hd = asd = NAN
        nsd_v = 0.0 if (has_p or has_t) else NAN
    l_tp, l_fp, l_fn = lesion_counts(
        p, t, sp, connectivity, lesion_min_overlap, lesion_min_volume_mm3
    )
    voxel_mm3 = float(np.prod(sp))
    return {
        "case": case,
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "fpr": _ratio(fp, fp + tn),
        "hd95_mm": hd,
        "assd_mm": asd,
        nsd_key: nsd_v,
        "lesions_tp": l_tp,
        "lesions_fp": l_fp,
        "lesions_fn": l_fn,
        "voxels_tp": tp,
        "voxels_fp": fp,
        "voxels_fn": fn,
        "voxels_tn": tn,
        "voxel_volume_mm3": voxel_mm3,
        "truth_volume_ml": (tp + fn) * voxel_mm3 / 1000.0,
        "pred_volume_ml": (tp + fp) * voxel_mm3 / 1000.0,
        "null_reasons": reasons,
    }


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (nan, nan when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (NAN, NAN)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def aggregate(cases: list[dict[str, Any]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean of each metric over the cases where it is defined, with a 95% bootstrap interval.

    Returns ``{metric: {"mean", "ci95": [lo, hi], "n"}}`` for the :data:`METRIC_KEYS` (cases
    resampled with replacement ``n_boot`` times; ``n`` counts the defined values), plus
    ``dice_global`` (``2ΣTP / (2ΣTP + ΣFP + ΣFN)`` over all voxels of all cases, interval by
    resampling cases), ``lesions_total`` ({tp, fp, fn} summed) and ``n_cases``.
    """
    out: dict[str, Any] = {"n_cases": len(cases)}
    keys = list(METRIC_KEYS)
    for c in cases:  # other NSD tolerances, if any
        keys += [k for k in c if k.startswith("nsd_") and k.endswith("mm") and k not in keys]
    for i, key in enumerate(keys):
        vals = np.array([float(c[key]) for c in cases if _finite(c.get(key))], dtype=np.float64)
        mean = float(vals.mean()) if vals.size else NAN
        lo, hi = bootstrap_ci(vals, n_boot, seed + i)
        out[key] = {"mean": mean, "ci95": [lo, hi], "n": int(vals.size)}
    counts = np.array(
        [
            [
                float(c.get("voxels_tp", 0) or 0),
                float(c.get("voxels_fp", 0) or 0),
                float(c.get("voxels_fn", 0) or 0),
            ]
            for c in cases
        ],
        dtype=np.float64,
    ).reshape(-1, 3)

    def pooled(rows: np.ndarray) -> np.ndarray:
        tp, fp, fn = rows[..., 0], rows[..., 1], rows[..., 2]
        den = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), np.nan)

    if len(cases):
        value = float(pooled(counts.sum(axis=0)))
        rng = np.random.default_rng(seed + len(keys))
        idx = rng.integers(0, len(cases), size=(n_boot, len(cases)))
        boots = pooled(counts[idx].sum(axis=1))
        boots = boots[np.isfinite(boots)]
        ci = (
            [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
            if boots.size
            else [NAN, NAN]
        )
    else:
        value, ci = NAN, [NAN, NAN]
    out["dice_global"] = {"mean": value, "ci95": ci, "n": len(cases)}
    out["lesions_total"] = {
        k: int(sum(int(c.get(f"lesions_{k}", 0) or 0) for c in cases)) for k in ("tp", "fp", "fn")
    }
    return out

"""Numbers that say whether a CT looks like a chest CT: for phantoms against real scans.

:func:`threshold_masks` is a deliberately simple body and lung mask (HU thresholds,
connected components, holes filled per slice) that needs no learned weights and treats
phantoms and real scans alike; :func:`ct_stats` summarises HU inside the lungs and the body.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lungspread.volume import Volume


@dataclass
class CTStats:
    """Summary of one CT (HU, litres)."""

    lung_median_hu: float
    lung_p05_hu: float
    lung_p95_hu: float
    dense_lung_fraction: float  # lung voxels above -500 HU: vessels, airway walls, lesions
    right_lung_l: float
    left_lung_l: float
    soft_tissue_peak_hu: float
    fat_peak_hu: float
    body_l: float
    lung_hist: list[float]  # density over LUNG_BINS
    body_hist: list[float]  # density over BODY_BINS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


LUNG_BINS = np.linspace(-1050, -350, 71)
BODY_BINS = np.linspace(-250, 250, 51)


def threshold_masks(ct: Volume, step: int = 2) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Body mask and lung labels (1 right, 2 left) on ``ct.array[::step, ::step, :]``.

    Air below -400 HU connected to the edge of each slice is outside the body; the lungs are
    the large air regions inside it, holes filled slice by slice (vessels), split left/right
    by the world x of their centroids. Returns ``(body, lungs, (step, step, 1))``.
    """
    from scipy import ndimage as ndi

    a = np.asarray(ct.array)[::step, ::step, :]
    air = a < -400
    body = np.zeros(a.shape, bool)
    for k in range(a.shape[2]):
        lab, n = ndi.label(air[:, :, k])
        if n == 0:
            body[:, :, k] = True
            continue
        edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        outside = np.isin(lab, edge[edge > 0])
        body[:, :, k] = ndi.binary_fill_holes(~outside & (a[:, :, k] > -2000))
    inner = air & body & (a > -1100)
    lab, n = ndi.label(inner)
    lungs = np.zeros(a.shape, np.uint8)
    if n == 0:
        return body, lungs, (step, step, 1)
    sizes = ndi.sum(inner, lab, index=np.arange(1, n + 1))
    voxel_ml = ct.voxel_volume_mm3 * step * step / 1000.0
    keep = [i + 1 for i in np.argsort(sizes)[::-1][:3] if sizes[i] * voxel_ml > 150.0]
    sel = np.isin(lab, keep)
    for k in range(a.shape[2]):
        if sel[:, :, k].any():
            sel[:, :, k] = ndi.binary_fill_holes(sel[:, :, k])
    # Split by side: world x of each voxel against the body's centroid (RAS: +x = right).
    idx = np.argwhere(body)
    centre_x = float((idx.mean(axis=0) * (step, step, 1)) @ ct.affine[0, :3] + ct.affine[0, 3])
    ii = np.arange(a.shape[0]) * step
    jj = np.arange(a.shape[1]) * step
    xw = ii[:, None] * ct.affine[0, 0] + jj[None, :] * ct.affine[0, 1] + ct.affine[0, 3]
    right = (xw > centre_x)[:, :, None]
    lungs[sel & right] = 1
    lungs[sel & ~right] = 2
    return body, lungs, (step, step, 1)


def ct_stats(
    ct: Volume,
    lungs: np.ndarray | None = None,
    body: np.ndarray | None = None,
    step: int = 2,
) -> CTStats:
    """HU statistics inside the lungs and the body, lung and body volumes.

    ``lungs``/``body`` (on ``ct``'s grid) are used when given, otherwise
    :func:`threshold_masks` makes them (on every ``step``-th voxel in-plane).
    """
    a = np.asarray(ct.array)
    if lungs is None or body is None:
        b2, l2, _ = threshold_masks(ct, step)
        a = a[::step, ::step, :]
        lungs = l2 if lungs is None else np.asarray(lungs)[::step, ::step, :]
        body = b2 if body is None else np.asarray(body)[::step, ::step, :]
        factor = step * step
    else:
        factor = 1
    body = np.asarray(body) > 0
    lungs = np.asarray(lungs)
    voxel_l = ct.voxel_volume_mm3 * factor / 1e6
    lung = lungs > 0
    lv = a[lung].astype(np.float64)
    soft = a[body & ~lung].astype(np.float64)
    soft = soft[(soft > -250) & (soft < 250)]
    h_body, _ = np.histogram(soft, bins=BODY_BINS, density=True)
    h_lung, _ = np.histogram(lv, bins=LUNG_BINS, density=True)
    centres = 0.5 * (BODY_BINS[1:] + BODY_BINS[:-1])
    soft_sel = centres > -30
    fat_sel = centres < -30
    return CTStats(
        lung_median_hu=float(np.median(lv)) if lv.size else float("nan"),
        lung_p05_hu=float(np.percentile(lv, 5)) if lv.size else float("nan"),
        lung_p95_hu=float(np.percentile(lv, 95)) if lv.size else float("nan"),
        dense_lung_fraction=float((lv > -500).mean()) if lv.size else float("nan"),
        right_lung_l=float((lungs == 1).sum() * voxel_l),
        left_lung_l=float((lungs == 2).sum() * voxel_l),
        soft_tissue_peak_hu=float(centres[soft_sel][np.argmax(h_body[soft_sel])]),
        fat_peak_hu=float(centres[fat_sel][np.argmax(h_body[fat_sel])]),
        body_l=float(body.sum() * voxel_l),
        lung_hist=[float(v) for v in h_lung],
        body_hist=[float(v) for v in h_body],
    )

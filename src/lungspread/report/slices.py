"""The axial slice stack of the HTML report: small JPEG slices plus PNG outline overlays.

Slices run over the lungs (or the whole scan without a lung mask), at most ``max_slices`` of
them evenly spaced (the slice with the most tumor is always included), each at most
``max_px`` pixels wide, in the radiological display orientation (patient's right on the left).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lungspread.export.structures import Structure
from lungspread.report.display import LUNG_WINDOW_HU, DisplayGrid, window
from lungspread.volume import Volume


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _outline_rgba(labels: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """RGBA image, transparent except for the 1-pixel inner boundary of each label."""
    edge = np.zeros(labels.shape, dtype=bool)
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        shifted = padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]
        edge |= centre != shifted
    edge &= labels > 0
    out = np.zeros((*labels.shape, 4), dtype=np.uint8)
    for value, rgb in colors.items():
        sel = edge & (labels == value)
        out[sel, :3] = rgb
        out[sel, 3] = 255
    return out


def axial_stack(
    ct: Volume,
    structures: Sequence[Structure],
    *,
    max_slices: int = 120,
    max_px: int = 256,
    jpeg_quality: int = 80,
) -> dict[str, Any]:
    """JSON-ready slice stack: ``images`` and ``overlays`` (data URIs), ``z_mm``, ``start``,
    ``pixel_mm`` (width, height of an image pixel) and ``size`` (width, height in pixels)."""
    from PIL import Image

    grid = DisplayGrid(ct)
    canon_ct = grid.canonical(np.asarray(ct.array))
    labels = np.zeros(ct.shape, dtype=np.int16)
    colors: dict[int, tuple[int, int, int]] = {}
    # lungs first, lesions painted over them so that their outline wins
    ordered = sorted(structures, key=lambda s: s.kind != "lung")
    for n, s in enumerate(ordered, start=1):
        view = labels[s.bbox]
        view[s.crop] = n
        colors[n] = tuple(round(c * 255) for c in s.color)  # type: ignore[assignment]
    canon_labels = grid.canonical(labels)
    nz = grid.shape[2]
    lung_values = [n for n, s in enumerate(ordered, start=1) if s.kind == "lung"]
    lesion_values = [n for n, s in enumerate(ordered, start=1) if s.kind == "lesion"]
    if lung_values:
        present = np.nonzero(np.isin(canon_labels, lung_values).any(axis=(0, 1)))[0]
        lo, hi = (int(present.min()), int(present.max())) if present.size else (0, nz - 1)
    else:
        lo, hi = 0, nz - 1
    best = None
    if lesion_values:
        area = np.isin(canon_labels, lesion_values).sum(axis=(0, 1))
        if area.max() > 0:
            best = int(np.argmax(area))
            lo, hi = min(lo, best), max(hi, best)
    count = hi - lo + 1
    step = max(1, int(np.ceil(count / max_slices)))
    picks = list(range(lo, hi + 1, step))
    if best is not None and best not in picks:
        picks = sorted({*picks, best})
        while len(picks) > max_slices:  # drop the nearest neighbour of the inserted slice
            i = picks.index(best)
            picks.pop(i + 1 if i + 1 < len(picks) else i - 1)
    sx, sy, _ = grid.spacing
    first = grid.view(canon_ct, "axial", picks[0])
    h, w = first.image.shape
    scale = min(1.0, max_px / max(w * sx / min(sx, sy), h * sy / min(sx, sy)))
    # target pixel size: square pixels of the finer in-plane spacing, then scaled down
    pix = min(sx, sy) / scale
    out_w = max(1, round(w * sx / pix))
    out_h = max(1, round(h * sy / pix))
    images: list[str] = []
    overlays: list[str] = []
    z_mm: list[float] = []
    for k in picks:
        v = grid.view(canon_ct, "axial", k)
        gray = (window(v.image, *LUNG_WINDOW_HU) * 255 + 0.5).astype(np.uint8)
        img = Image.fromarray(gray, mode="L").resize((out_w, out_h), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=jpeg_quality, optimize=True)
        images.append(_data_uri(buf.getvalue(), "image/jpeg"))
        lab = grid.view(canon_labels, "axial", k).image
        lab_small = np.asarray(
            Image.fromarray(lab.astype(np.int32), mode="I").resize(
                (out_w, out_h), Image.Resampling.NEAREST
            )
        ).astype(np.int16)
        rgba = _outline_rgba(lab_small, colors)
        buf = io.BytesIO()
        Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG", optimize=True)
        overlays.append(_data_uri(buf.getvalue(), "image/png"))
        z_mm.append(round(v.position_mm, 2))
    start = picks.index(best) if best is not None else len(picks) // 2
    return {
        "images": images,
        "overlays": overlays,
        "z_mm": z_mm,
        "start": start,
        "pixel_mm": [pix, pix],
        "size": [out_w, out_h],
    }

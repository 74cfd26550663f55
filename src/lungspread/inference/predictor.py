"""Tumor probability from a trained model: :class:`Predictor`.

``Predictor.from_folder(run_or_model_folder)`` loads ``model.json`` + ``model.safetensors``
(see :mod:`lungspread.models.checkpoint`). :meth:`Predictor.predict_proba` then

1. crops the CT to ``roi`` (voxel slices, e.g. the lungs' bounding box; whole CT if None),
2. resamples it to the model's ``spec.spacing_mm`` (trilinear; 2D models resample only in
   the slice plane),
3. normalizes it with ``spec.normalization`` (:func:`lungspread.data.normalization.normalize`),
4. runs the network in Gaussian-blended sliding windows (3D models), or slice by slice in
   large batches of windows (2D models), optionally averaging mirrored copies (TTA),
5. resamples the probability back to the cropped grid (trilinear) and pastes it into a
   volume on the input's grid (zero outside the roi).

The same :func:`prepare_array` and :func:`infer_array` serve the trainer's validation, so
training and inference see identical preprocessing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lungspread.errors import InputError, ModelError
from lungspread.models.checkpoint import ModelSpec
from lungspread.volume import Volume

log = logging.getLogger(__name__)

Roi = tuple[slice, slice, slice]
#: network precisions: float32, or bfloat16 autocast (2.1-2.4x faster on CPUs with AVX512-BF16,
#: measured; probabilities within about 1e-3 to 4e-2 of float32's)
PRECISIONS = ("float32", "bfloat16")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was asked for but no CUDA GPU is available")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"unknown device {device!r}; expected auto, cpu or cuda") from exc


def resampled_shape(
    shape: Sequence[int], spacing_mm: Sequence[float], target_mm: Sequence[float], dims: int
) -> tuple[int, int, int]:
    """Grid size after resampling ``shape`` at ``spacing_mm`` to ``target_mm``.

    2D models (``dims == 2``) keep the slice axis (k) as it is.
    """
    out = []
    for axis in range(3):
        if dims == 2 and axis == 2:
            out.append(int(shape[axis]))
            continue
        t = float(target_mm[axis])
        if not np.isfinite(t) or t <= 0:
            out.append(int(shape[axis]))
            continue
        out.append(max(1, round(shape[axis] * float(spacing_mm[axis]) / t)))
    return (out[0], out[1], out[2])


def resize_array(array: np.ndarray, shape: Sequence[int], order: int = 1) -> np.ndarray:
    """Resize a 3D array to ``shape`` (trilinear when ``order`` is 1, nearest when 0), float32.

    Uses ``torch.nn.functional.interpolate`` (``align_corners=False``): the voxel centres of
    both grids span the same physical extent, so resizing there and back is consistent.
    """
    shape_t = tuple(int(s) for s in shape)
    arr = np.asarray(array, dtype=np.float32)
    if arr.shape == shape_t:
        return arr
    t = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    mode = "trilinear" if order == 1 else "nearest-exact"
    with torch.inference_mode():
        kw: dict[str, Any] = {"align_corners": False} if order == 1 else {}
        out = torch.nn.functional.interpolate(t, size=shape_t, mode=mode, **kw)
    return np.ascontiguousarray(out[0, 0].numpy())


def prepare_array(array: np.ndarray, spacing_mm: Sequence[float], spec: ModelSpec) -> np.ndarray:
    """Resample to ``spec.spacing_mm``, denoise (if the model was trained so) and normalize:
    the network's input grid (float32). The same order as training's preprocessing."""
    from lungspread.data.normalization import normalize

    shape = resampled_shape(array.shape, spacing_mm, spec.spacing_mm, spec.dims)
    resampled = resize_array(array, shape, order=1)
    method = (spec.extra or {}).get("denoise")
    if method:
        from lungspread.data.denoise import denoise

        new_spacing = [
            float(sp) * n_old / n_new
            for sp, n_old, n_new in zip(spacing_mm, array.shape, shape, strict=True)
        ]
        resampled = denoise(resampled, new_spacing, str(method))
    return normalize(resampled, spec.normalization)


def prepare_label(label: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize a 0/1 label to ``shape`` (linear interpolation, then >= 0.5), uint8."""
    lab = (np.asarray(label) > 0).astype(np.float32)
    return (resize_array(lab, shape, order=1) >= 0.5).astype(np.uint8)


def probability_fn(net: Any, output: str, mirror_axes: Sequence[int] = ()) -> Any:
    """Wrap a network: input batch -> foreground probability ``(B, 1, ...)``.

    With ``mirror_axes`` (tensor axes, e.g. ``(2, 3)``) the probabilities of every
    combination of flips are averaged (nnU-Net's mirroring test-time augmentation).
    """
    if output not in ("sigmoid", "softmax"):
        raise ModelError(f"unknown model output {output!r}; expected 'sigmoid' or 'softmax'")

    def once(x: torch.Tensor) -> torch.Tensor:
        logits = net(x)
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        logits = logits.float()
        if output == "sigmoid":
            return torch.sigmoid(logits[:, :1])
        return torch.softmax(logits, dim=1)[:, 1:2]

    combos = [
        c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]

    def fn(x: torch.Tensor) -> torch.Tensor:
        if len(combos) <= 1:
            return once(x)
        acc = None
        for axes in combos:
            p = torch.flip(once(torch.flip(x, axes)), axes) if axes else once(x)
            acc = p if acc is None else acc + p
        assert acc is not None
        return acc / len(combos)

    return fn


def infer_array(
    net: Any,
    array: np.ndarray,
    dims: int,
    patch_size: Sequence[int],
    output: str,
    device: torch.device,
    tta: bool = False,
    batch_size: int | None = None,
    overlap: float = 0.5,
    pad_value: float | None = None,
    precision: str = "float32",
) -> np.ndarray:
    """Foreground probability (float32, same shape) of a prepared (resampled, normalized)
    array ``(I, J, K)``. 2D models run on the K slices ``(I, J)``; 3D on the whole array.
    ``precision="bfloat16"`` runs the network under bf16 autocast."""
    from lungspread.inference.sliding import sliding_window

    arr = np.asarray(array, dtype=np.float32)
    pad = float(arr.min()) if pad_value is None and arr.size else float(pad_value or 0.0)
    if dims == 2:
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, 2, 0)))[:, None]
        bs = batch_size or (64 if device.type == "cuda" else 16)
        mirror: tuple[int, ...] = (2, 3) if tta else ()
    elif dims == 3:
        x = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
        bs = batch_size or (4 if device.type == "cuda" else 2)
        mirror = (2, 3, 4) if tta else ()
    else:
        raise ModelError(f"model dims must be 2 or 3, found {dims}")
    fn = probability_fn(net, output, mirror)
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; expected {' or '.join(PRECISIONS)}")
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if precision == "bfloat16"
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        x = x.to(device)
        prob = sliding_window(x, patch_size, fn, overlap=overlap, batch_size=bs, pad_value=pad)
        out = prob[:, 0].cpu().numpy()
    out = np.moveaxis(out, 0, 2) if dims == 2 else out[0]
    return np.ascontiguousarray(out, dtype=np.float32)


def _check_roi(roi: Roi | None, shape: tuple[int, int, int]) -> Roi:
    if roi is None:
        return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
    if len(roi) != 3 or not all(isinstance(s, slice) for s in roi):
        raise InputError(f"roi must be three slices (i, j, k), found {roi!r}")
    out = []
    for s, n in zip(roi, shape, strict=True):
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise InputError(f"roi {roi!r} is empty or strided for a volume of shape {shape}")
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


class Predictor:
    """A loaded model that turns a CT :class:`Volume` into a tumor probability volume."""

    def __init__(
        self,
        net: Any,
        spec: ModelSpec,
        device: str | torch.device = "cpu",
        overlap: float = 0.5,
        batch_size: int | None = None,
        precision: str = "float32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}; expected {' or '.join(PRECISIONS)}")
        self.precision = precision
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.net = net.to(self.device).eval()
        self.spec = spec
        self.overlap = float(overlap)
        self.batch_size = batch_size
        if spec.dims not in (2, 3):
            raise ModelError(f"model.json: dims must be 2 or 3, found {spec.dims}")
        if len(spec.patch_size) != spec.dims:
            raise ModelError(f"model.json: patch_size {spec.patch_size} needs {spec.dims} numbers")

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        device: str = "cpu",
        overlap: float = 0.5,
        batch_size: int | None = None,
        precision: str = "float32",
    ) -> Predictor:
        """Load the model of a run folder or model folder (``model.json`` + weights)."""
        from lungspread.models.checkpoint import load_checkpoint

        dev = resolve_device(device)
        net, spec = load_checkpoint(folder, device=str(dev))
        return cls(net, spec, dev, overlap=overlap, batch_size=batch_size, precision=precision)

    def predict_proba(self, ct: Volume, roi: Roi | None = None, tta: bool = False) -> Volume:
        """Tumor probability (float32, 0-1) on ``ct``'s grid; zero outside ``roi``."""
        box = _check_roi(roi, ct.shape)
        arr = np.asarray(ct.array[box], dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise InputError("the CT holds NaN or infinite voxels")
        spacing = list(ct.spacing)
        # 2D models see slices across the patient's superior-inferior axis
        axis = ct.slice_axis() if self.spec.dims == 2 else 2
        if axis != 2:
            arr = np.moveaxis(arr, axis, 2)
            spacing = [s for a, s in enumerate(spacing) if a != axis] + [spacing[axis]]
        prepared = prepare_array(arr, spacing, self.spec)
        prob = infer_array(
            self.net,
            prepared,
            self.spec.dims,
            self.spec.patch_size,
            self.spec.output,
            self.device,
            tta=tta,
            batch_size=self.batch_size,
            overlap=self.overlap,
            precision=self.precision,
        )
        prob = np.clip(resize_array(prob, arr.shape, order=1), 0.0, 1.0)
        if axis != 2:
            prob = np.moveaxis(prob, 2, axis)
        full = np.zeros(ct.shape, dtype=np.float32)
        full[box] = prob
        return ct.with_array(full, kind="tumor_probability", model=self.spec.name)

    def predict(
        self,
        ct: Volume,
        roi: Roi | None = None,
        tta: bool = False,
        threshold: float | None = None,
    ) -> Volume:
        """Tumor mask (uint8 0/1): probability >= ``threshold`` (``spec.threshold`` if None)."""
        prob = self.predict_proba(ct, roi=roi, tta=tta)
        thr = self.spec.threshold if threshold is None else float(threshold)
        return prob.with_array((prob.array >= thr).astype(np.uint8), kind="tumor_mask")

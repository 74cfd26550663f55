"""From a dataset plan (:func:`lungspread.data.preprocess.plan_dataset`) to a training plan.

Decides what the data does not: the network (the recommended one when none is named), its
dimensionality and arguments (``unet3d``'s stages, kernels and strides are planned from the
patch and spacing like nnU-Net's), the patch size, batch size and iterations per epoch.

Patch sizes. 2D: the median in-plane size of the cases at the target spacing, at most 512.
3D: the median case size at the target spacing, shrunk (the axis with the largest extent in
mm first) until it holds at most ``PATCH_VOXELS[device]`` voxels: about nnU-Net's Task06 patch
(2.5 M voxels) on a GPU, 64^3 on a CPU. Every patch is rounded up to a multiple of the
network's downsampling factor and never exceeds the largest case (rounded up the same way).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lungspread.errors import InputError, ModelError
from lungspread.training.config import TrainConfig

#: the model ``lungspread train`` picks without ``--model``: (data kind, speed) -> name
RECOMMENDED_MODELS: dict[tuple[str, str], str] = {
    ("2d", "accurate"): "resnet-unet2d",
    ("2d", "fast"): "seed-unet2d",
    ("3d", "accurate"): "unet3d",
    ("3d", "fast"): "fast3d",
}
PATCH_VOXELS = {"cuda": 2_500_000, "cpu": 64**3}
MAX_PATCH_2D = 512
DEFAULT_BATCH = {2: 16, 3: 2}
UNET3D_FEATURES = (32, 64, 128, 256, 320, 320)


def recommended_model(is_2d: bool, speed: str = "accurate") -> str:
    """Registry name of the recommended network for 2D or 3D data (``speed``: accurate|fast)."""
    key = ("2d" if is_2d else "3d", speed)
    if key not in RECOMMENDED_MODELS:
        raise InputError(f"unknown speed {speed!r}; expected 'accurate' or 'fast'")
    return RECOMMENDED_MODELS[key]


def model_dims(net: Any) -> int:
    """2 or 3: the dimensionality of the network's first convolution."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            return 2
        if isinstance(module, torch.nn.Conv3d):
            return 3
    raise ModelError(f"cannot tell whether {type(net).__name__} is a 2D or 3D network")


def divisor_of(net: Any, dims: int) -> list[int]:
    """Per-axis factor the input size must be a multiple of (``net.divisor``; 16 if unknown)."""
    div = getattr(net, "divisor", 16)
    if isinstance(div, (int, np.integer)):
        return [int(div)] * dims
    return [int(d) for d in div][:dims]


def default_out_channels(model: str) -> int:
    """The ``out_channels`` default of a registry factory (2 when it declares none)."""
    from lungspread.models.registry import MODELS, available_models

    available_models()
    factory = MODELS.get(model)
    if factory is None:
        return 2
    param = inspect.signature(factory).parameters.get("out_channels")
    if param is None or param.default is inspect.Parameter.empty:
        return 2
    return int(param.default)


def _round_up(values: Sequence[int], divisor: Sequence[int]) -> list[int]:
    return [int(math.ceil(max(int(v), 1) / d) * d) for v, d in zip(values, divisor, strict=True)]


def case_shapes_at(plan: dict[str, Any], spacing_mm: Sequence[float]) -> np.ndarray:
    """(n, 3) case shapes resampled to ``spacing_mm`` (from the plan's header fingerprint)."""
    rows = []
    for info in plan["cases"].values():
        shape = np.asarray(info["shape"], dtype=np.float64)
        sp = np.asarray(info["spacing_mm"], dtype=np.float64)
        tgt = np.asarray(spacing_mm, dtype=np.float64)
        new = np.where(shape > 1, np.maximum(1, np.round(shape * sp / tgt)), shape)
        rows.append(new)
    return np.asarray(rows)


def _shrink_to_budget(patch: list[int], spacing: Sequence[float], budget: int) -> list[int]:
    patch = list(patch)
    while int(np.prod(patch)) > budget:
        extent = [p * s if p > 8 else 0.0 for p, s in zip(patch, spacing, strict=True)]
        axis = int(np.argmax(extent))
        if extent[axis] == 0.0:
            break
        patch[axis] = max(8, int(patch[axis] * 0.9))
    return patch


def plan_training(
    dataset_plan: dict[str, Any], config: TrainConfig, device_type: str, speed: str = "accurate"
) -> dict[str, Any]:
    """The training plan: model, kwargs, dims, spacing, patch, batch size, output type."""
    from lungspread.models.registry import build_model
    from lungspread.models.unet3d import plan_unet3d

    is_2d_data = bool(dataset_plan["is_2d"])
    model = config.model or recommended_model(is_2d_data, speed)
    kwargs: dict[str, Any] = dict(config.model_kwargs)
    kwargs.setdefault("in_channels", 1)
    if "out_channels" not in kwargs:
        kwargs["out_channels"] = default_out_channels(model)
    if int(kwargs["out_channels"]) not in (1, 2):
        raise InputError(f"out_channels must be 1 (sigmoid) or 2 (softmax), got {kwargs}")
    spacing = [float(s) for s in (config.spacing_mm or dataset_plan["target_spacing_mm"])]
    shapes = case_shapes_at(dataset_plan, spacing)
    median = np.median(shapes, axis=0)
    largest = shapes.max(axis=0)
    probe = build_model(model, **kwargs)
    dims = model_dims(probe)
    if dims == 3 and is_2d_data:
        raise InputError(
            f"model {model!r} is a 3D network but the dataset holds single 2D slices; "
            "choose a 2D model"
        )
    if dims == 2:
        divisor = divisor_of(probe, 2)
        if config.patch_size is not None:
            if len(config.patch_size) != 2:
                raise InputError(
                    f"2D model {model!r} needs a 2-number patch, got {config.patch_size}"
                )
            patch = [int(p) for p in config.patch_size]
        else:
            patch = [int(min(m, MAX_PATCH_2D)) for m in median[:2]]
        cap = _round_up([int(v) for v in largest[:2]], divisor)
        patch = [min(p, c) for p, c in zip(_round_up(patch, divisor), cap, strict=True)]
    else:
        if config.patch_size is not None:
            if len(config.patch_size) != 3:
                raise InputError(
                    f"3D model {model!r} needs a 3-number patch, got {config.patch_size}"
                )
            patch = [int(p) for p in config.patch_size]
        else:
            budget = PATCH_VOXELS.get(device_type, PATCH_VOXELS["cpu"])
            patch = _shrink_to_budget([int(m) for m in median], spacing, budget)
        if model == "unet3d" and "strides" not in kwargs:
            feats = list(kwargs.get("features", UNET3D_FEATURES))
            kernels, strides = plan_unet3d(patch, spacing, max_stages=len(feats))
            kwargs["features"] = feats[: len(strides)]
            kwargs["kernels"] = kernels
            kwargs["strides"] = strides
            probe = build_model(model, **kwargs)
        divisor = divisor_of(probe, 3)
        cap = _round_up([int(v) for v in largest], divisor)
        patch = [min(p, c) for p, c in zip(_round_up(patch, divisor), cap, strict=True)]
    batch = int(config.batch_size or DEFAULT_BATCH[dims])
    return {
        "model": model,
        "model_kwargs": kwargs,
        "dims": dims,
        "spacing_mm": spacing,
        "patch_size": patch,
        "batch_size": batch,
        "output": "sigmoid" if int(kwargs["out_channels"]) == 1 else "softmax",
        "crop": "none" if is_2d_data else "body",
        "denoise": config.denoise,
    }

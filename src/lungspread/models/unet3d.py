"""3D U-Nets of the nnU-Net class, built on MONAI's ``DynUNet``.

``unet3d``: nnU-Net's "PlainConvUNet" design (two conv-InstanceNorm-LeakyReLU per stage,
strided-convolution downsampling, transposed-convolution upsampling, deep supervision),
with the number of stages, kernels and strides planned from the patch size and voxel spacing
by :func:`plan_unet3d` the way nnU-Net plans them (anisotropic spacing -> in-plane pooling
and 1-voxel kernels across slices until the resolution is comparable).

``nnunet-task06-3d``: the same network configured exactly like nnU-Net's published 3d_fullres
plan for MSD Task06_Lung (6 stages, 32-64-128-256-320-320 features, patch 80x192x160 in
nnU-Net's z, y, x order), for speed comparisons. Axis order here is lungspread's (i, j, k)
with k the slice axis, so the plan's patch is (160, 192, 80) and its kernels and strides are
the reversed versions of nnU-Net's.

In training mode with deep supervision the networks return a list of logits, full resolution
first (MONAI upsamples the auxiliary heads to the full size); in eval mode a single tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lungspread.models._blocks import check_features
from lungspread.models.registry import register

#: nnU-Net v2 3d_fullres plan for Task06 (Dataset006_Lung), in lungspread's (i, j, k) order.
NNUNET_TASK06_PATCH = (160, 192, 80)
NNUNET_TASK06_SPACING_MM = (0.79, 0.79, 1.24)
NNUNET_TASK06_FEATURES = (32, 64, 128, 256, 320, 320)
NNUNET_TASK06_STRIDES = ((1, 1, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 1))
NNUNET_TASK06_KERNELS = ((3, 3, 1), (3, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))


def plan_unet3d(
    patch_size: Sequence[int],
    spacing_mm: Sequence[float],
    max_stages: int = 6,
    min_feature_map: int = 4,
) -> tuple[list[list[int]], list[list[int]]]:
    """nnU-Net-style kernels and strides for a patch at a spacing: ``(kernels, strides)``.

    An axis is downsampled at a stage while its current spacing is at most twice the finest
    and its size stays at least ``2 * min_feature_map``; its kernel is 1 while its spacing is
    more than twice the finest (thick slices), 3 otherwise. The first stride is always 1.
    """
    size = [int(s) for s in patch_size]
    spacing = [float(s) for s in spacing_mm]

    def kernel(sp: list[float]) -> list[int]:
        lo = min(sp)
        return [3 if s <= 2 * lo else 1 for s in sp]

    kernels = [kernel(spacing)]
    strides = [[1, 1, 1]]
    while len(strides) < max_stages:
        lo = min(spacing)
        pool = [
            2 if (spacing[a] <= 2 * lo and size[a] >= 2 * min_feature_map) else 1 for a in range(3)
        ]
        if pool == [1, 1, 1]:
            break
        for a in range(3):
            if pool[a] == 2:
                size[a] //= 2
                spacing[a] *= 2
        strides.append(pool)
        kernels.append(kernel(spacing))
    return kernels, strides


def divisor_of(strides: Sequence[Sequence[int]]) -> list[int]:
    """Per-axis factor the input size must be a multiple of."""
    out = [1, 1, 1]
    for st in strides:
        out = [o * int(s) for o, s in zip(out, st, strict=True)]
    return out


class UNet3d(nn.Module):
    """DynUNet wrapper that returns a list of outputs under deep supervision in training."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (32, 64, 128, 256, 320),
        strides: Sequence[Sequence[int]] | None = None,
        kernels: Sequence[Sequence[int]] | None = None,
        deep_supervision: bool = True,
        deep_supervision_heads: int = 2,
    ) -> None:
        super().__init__()
        from monai.networks.nets import DynUNet

        feats = check_features(features, 2, "unet3d")
        n = len(feats)
        if strides is None:
            strides = [[1, 1, 1]] + [[2, 2, 2]] * (n - 1)
        if kernels is None:
            kernels = [[3, 3, 3]] * n
        if len(strides) != n or len(kernels) != n:
            raise ValueError(f"unet3d: need {n} strides and kernels, one per features level")
        heads = max(0, min(int(deep_supervision_heads), n - 2))
        self.deep_supervision = bool(deep_supervision) and heads > 0
        self.net = DynUNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[list(k) for k in kernels],
            strides=[list(s) for s in strides],
            upsample_kernel_size=[list(s) for s in strides[1:]],
            filters=list(feats),
            norm_name=("INSTANCE", {"affine": True}),
            act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
            deep_supervision=self.deep_supervision,
            deep_supr_num=max(heads, 1),
            res_block=False,
        )
        # DynUNet registers every block twice (under its own name and again inside the
        # recursive ``skip_layers`` chain it runs), so its state dict holds each tensor twice,
        # which safetensors refuses to save. The chain holds no parameters of its own: keep
        # it as a plain attribute (forward still uses it) so each tensor is saved once.
        skip = self.net._modules.pop("skip_layers")
        self.net.__dict__["skip_layers"] = skip
        self.divisor = divisor_of(strides)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.net(x)
        if self.training and self.deep_supervision:
            return list(torch.unbind(out, dim=1))
        return out


@register("unet3d")
def unet3d(
    in_channels: int = 1,
    out_channels: int = 2,
    features: Sequence[int] = (32, 64, 128, 256, 320),
    strides: Sequence[Sequence[int]] | None = None,
    kernels: Sequence[Sequence[int]] | None = None,
    deep_supervision: bool = True,
    deep_supervision_heads: int = 2,
) -> UNet3d:
    """nnU-Net-class 3D U-Net (instance norm, leaky ReLU, deep supervision)."""
    return UNet3d(
        in_channels,
        out_channels,
        features,
        strides,
        kernels,
        deep_supervision,
        deep_supervision_heads,
    )


@register("nnunet-task06-3d")
def nnunet_task06_3d(
    in_channels: int = 1,
    out_channels: int = 2,
    features: Sequence[int] = NNUNET_TASK06_FEATURES,
    deep_supervision: bool = True,
) -> UNet3d:
    """nnU-Net's Task06 3d_fullres network (6 stages, 32-320 features); patch (160, 192, 80)."""
    return UNet3d(
        in_channels,
        out_channels,
        features,
        strides=NNUNET_TASK06_STRIDES[: len(features)],
        kernels=NNUNET_TASK06_KERNELS[: len(features)],
        deep_supervision=deep_supervision,
        deep_supervision_heads=3,
    )

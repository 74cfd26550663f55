"""``fast3d``: a small, fast 3D U-Net for the bundled default model.

Design (chosen for CPU inference speed at about 1.5 mm voxels, see docs/analyze.md):

* five resolution levels; every level is two 3x3x3 convolutions, each followed by a
  normalization and a leaky ReLU (nnU-Net's block), downsampling by stride-2 convolutions and
  upsampling by stride-2 transposed convolutions with skip connections by concatenation;
* few channels at full resolution (8 by default): full resolution is where nearly all the
  arithmetic of a 3D network goes, and tumor boundaries need only a few detectors there,
  while the coarse levels (64-128 channels at 1/8 and 1/16 of the resolution) carry the
  context that tells a nodule (round) from a vessel (a tube) for almost no cost;
* batch normalization from the second level down (``norm_from_level=1``): in eval mode it
  is a fixed per-channel scale and shift, so inference never computes per-window statistics
  (instance normalization does, which makes sliding-window results depend on where the
  windows fall); the full-resolution level has none (its convolutions carry a bias) because
  normalization layers in bfloat16 on a CPU cost more there than all its convolutions;
* no deep supervision, so the forward pass returns one logits tensor ``(N, C, D, H, W)``;
* channels-last memory (``torch.channels_last_3d``) for its weights, which oneDNN's CPU
  convolutions run about 2-3 times faster than the default layout;
* ``bf16_training=True`` (the default): in training mode on a CPU with native bfloat16
  (AVX512-BF16 or AMX), the forward pass runs under bfloat16 autocast (weights, gradients and
  optimizer state stay float32). On this project's 2-core machine a training step on two
  96^3 patches takes about 1 s instead of about 10 s in float32, which is what makes
  training the bundled model on a CPU possible. Evaluation mode never autocasts by itself:
  inference precision is the caller's choice (see :class:`lungspread.analyze.FastInference`).

With the default ``features=(8, 16, 32, 64, 128)`` the network has 1.41 M parameters
(5.6 MB of float32 weights) and costs about 29 kFLOP per input voxel, some 18 times less than
nnU-Net's Task06 3d_fullres network (about 530 kFLOP per voxel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lungspread.models.registry import register


def _native_cpu_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 8), channels)
    raise ValueError(f"unknown norm {kind!r}; expected 'batch', 'instance', 'group' or 'none'")


class ConvBlock(nn.Sequential):
    """Two (conv 3x3x3 -> norm -> leaky ReLU); the first conv may downsample with a stride.
    Without a norm (``"none"``) the convolutions carry a bias instead."""

    def __init__(self, c_in: int, c_out: int, norm: str, stride: int = 1) -> None:
        bias = norm == "none"
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.LeakyReLU(0.01, inplace=True),
        )


class Fast3DNet(nn.Module):
    """Small 3D U-Net. Input ``(N, in_channels, D, H, W)`` with D, H, W divisible by
    ``2 ** (len(features) - 1)``; output logits ``(N, out_channels, D, H, W)``."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (8, 16, 32, 64, 128),
        norm: str = "batch",
        bf16_training: bool = True,
        norm_from_level: int = 1,
    ) -> None:
        super().__init__()
        self.bf16_training = bool(bf16_training)
        feats = [int(f) for f in features]
        if len(feats) < 2:
            raise ValueError(f"fast3d needs at least 2 levels, got features={feats}")
        self.features = tuple(feats)
        self.encoders = nn.ModuleList()
        c_prev = in_channels

        def norm_at(level: int) -> str:
            return norm if level >= norm_from_level else "none"

        for level, c in enumerate(feats):
            stride = 1 if level == 0 else 2
            self.encoders.append(ConvBlock(c_prev, c, norm_at(level), stride=stride))
            c_prev = c
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        n = len(feats)
        for i, (c_skip, c_deep) in enumerate(
            zip(reversed(feats[:-1]), reversed(feats[1:]), strict=True)
        ):
            self.ups.append(nn.ConvTranspose3d(c_deep, c_skip, 2, stride=2, bias=False))
            self.decoders.append(ConvBlock(2 * c_skip, c_skip, norm_at(n - 2 - i)))
        self.head = nn.Conv3d(feats[0], out_channels, 1)
        self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

    @property
    def divisor(self) -> int:
        """Spatial sizes of the input must be multiples of this."""
        return int(2 ** (len(self.features) - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.training
            and self.bf16_training
            and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
            and _native_cpu_bf16()
        ):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self._forward(x).float()
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last_3d)
        skips: list[torch.Tensor] = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.ups, self.decoders, strict=True):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
        out: torch.Tensor = self.head(x)
        return out


@register("fast3d")
def build_fast3d(**kwargs: Any) -> Fast3DNet:
    """Registry factory: ``fast3d`` (``in_channels``, ``out_channels``, ``features``, ``norm``,
    ``norm_from_level``, ``bf16_training``)."""
    return Fast3DNet(**kwargs)

"""``vgg-unet2d``: U-Net with a VGG-style encoder (trained from scratch).

Written here because MONAI has no VGG encoder. The encoder follows VGG-16-BN's pattern:
stages of 2, 2, 3, 3, 3 3x3 convolutions (BN + ReLU) separated by 2x2 max pooling, with half
of VGG's widths by default; a U-Net decoder on the stage outputs (as in TernausNet).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lungspread.models._blocks import UNetDecoder2d, check_features, conv_bn_relu
from lungspread.models.registry import register

#: convolutions per stage in VGG-16
VGG16_CONVS = (2, 2, 3, 3, 3)


class VGGUNet2d(nn.Module):
    """VGG-style encoder (``convs[i]`` 3x3 conv-BN-ReLU per stage) + U-Net decoder."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        convs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        feats = check_features(features, 2, "vgg-unet2d")
        if convs is None:
            convs = [VGG16_CONVS[min(i, len(VGG16_CONVS) - 1)] for i in range(len(feats))]
        if len(convs) != len(feats):
            raise ValueError("convs must give one count per features level")
        stages = []
        prev = in_channels
        for f, n in zip(feats, convs, strict=True):
            layers: list[nn.Module] = []
            for _ in range(max(int(n), 1)):
                layers += conv_bn_relu(prev, f)
                prev = f
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2)
        self.decoder = UNetDecoder2d(feats, out_channels, norm=True)
        self.divisor = 2 ** (len(feats) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.pool(x)
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)


@register("vgg-unet2d")
def vgg_unet2d(
    in_channels: int = 1,
    out_channels: int = 2,
    features: Sequence[int] = (32, 64, 128, 256, 512),
    convs: Sequence[int] | None = None,
) -> VGGUNet2d:
    """VGG-16-style encoder (2-2-3-3-3 convs), no pretrained weights."""
    return VGGUNet2d(in_channels, out_channels, features, convs)

"""``seed-unet2d``: the original proposal's 2D U-Net, reproduced faithfully.

Three resolution levels with 64, 128 and 256 feature maps (two 3x3 convolutions + ReLU per
level, 2x2 max pooling down, 2x2 transposed convolution up, skip concatenation), and a 1x1
convolution to one output channel. No normalization layers, as in the proposal. The network
returns logits; the sigmoid is applied by the loss (``BCEWithLogits``, numerically the same
as sigmoid + BCE) and by inference (``ModelSpec.output == "sigmoid"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lungspread.models._blocks import DoubleConv2d, UNetDecoder2d, check_features
from lungspread.models.registry import register


class SeedUNet2d(nn.Module):
    """Plain 2D U-Net; ``features`` are the widths per level, the last is the bottleneck."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (64, 128, 256),
        norm: bool = False,
    ) -> None:
        super().__init__()
        feats = check_features(features, 2, "seed-unet2d")
        enc = []
        prev = in_channels
        for f in feats:
            enc.append(DoubleConv2d(prev, f, norm))
            prev = f
        self.encoder = nn.ModuleList(enc)
        self.pool = nn.MaxPool2d(2)
        self.decoder = UNetDecoder2d(feats, out_channels, norm)
        #: input height and width must be multiples of this
        self.divisor = 2 ** (len(feats) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        return self.decoder(skips)


@register("seed-unet2d")
def seed_unet2d(
    in_channels: int = 1,
    out_channels: int = 1,
    features: Sequence[int] = (64, 128, 256),
    norm: bool = False,
) -> SeedUNet2d:
    """The proposal's U-Net (64-128-256, ReLU, 1x1 conv, sigmoid output)."""
    return SeedUNet2d(in_channels, out_channels, features, norm)

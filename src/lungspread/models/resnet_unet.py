"""``resnet-unet2d``: U-Net with a ResNet-style residual encoder (trained from scratch).

MONAI has no 2D U-Net with a configurable ResNet encoder that works without downloading
weights, so this is written here: a 3x3 stem at full resolution (small tumors need the fine
level; the ImageNet 7x7/stride-2 stem would discard it), then stages of basic residual blocks
(two 3x3 convs + BN + identity/1x1 shortcut, as ResNet-18/34), each stage after the first
halving the resolution with a stride-2 block; a U-Net decoder on the stage outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lungspread.models._blocks import UNetDecoder2d, check_features
from lungspread.models.registry import register


class BasicBlock2d(nn.Module):
    """ResNet basic block: conv-BN-ReLU-conv-BN + shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetUNet2d(nn.Module):
    """Residual encoder (``blocks`` basic blocks per stage) + U-Net decoder."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (32, 64, 128, 256, 512),
        blocks: int | Sequence[int] = 2,
    ) -> None:
        super().__init__()
        feats = check_features(features, 2, "resnet-unet2d")
        nblocks = [int(blocks)] * len(feats) if isinstance(blocks, int) else list(blocks)
        if len(nblocks) != len(feats):
            raise ValueError("blocks must be an int or one count per features level")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, feats[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(feats[0]),
            nn.ReLU(inplace=True),
        )
        stages = []
        prev = feats[0]
        for i, (f, n) in enumerate(zip(feats, nblocks, strict=True)):
            layers = [BasicBlock2d(prev, f, stride=1 if i == 0 else 2)]
            layers += [BasicBlock2d(f, f) for _ in range(max(n, 1) - 1)]
            stages.append(nn.Sequential(*layers))
            prev = f
        self.stages = nn.ModuleList(stages)
        self.decoder = UNetDecoder2d(feats, out_channels, norm=True)
        self.divisor = 2 ** (len(feats) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)


@register("resnet-unet2d")
def resnet_unet2d(
    in_channels: int = 1,
    out_channels: int = 2,
    features: Sequence[int] = (32, 64, 128, 256, 512),
    blocks: int | Sequence[int] = 2,
) -> ResNetUNet2d:
    """ResNet-18-style encoder (2 basic blocks per stage by default), no pretrained weights."""
    return ResNetUNet2d(in_channels, out_channels, features, blocks)

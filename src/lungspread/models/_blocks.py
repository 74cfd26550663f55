"""Building blocks shared by the 2D encoder-decoder networks (not a registry module)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn_relu(in_ch: int, out_ch: int, norm: bool = True) -> list[nn.Module]:
    """3x3 convolution (+ batch norm) + ReLU, as a list of layers."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.ReLU(inplace=True))
    return layers


class DoubleConv2d(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional batch norm and) ReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm: bool = True) -> None:
        super().__init__(*conv_bn_relu(in_ch, out_ch, norm), *conv_bn_relu(out_ch, out_ch, norm))


class UpBlock2d(nn.Module):
    """2x2 transposed-convolution upsampling, concatenation with the skip, two 3x3 convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, norm: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        self.conv = DoubleConv2d(out_ch + skip_ch, out_ch, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: pad up to the skip's size
            dh = skip.shape[-2] - x.shape[-2]
            dw = skip.shape[-1] - x.shape[-1]
            x = nn.functional.pad(x, [0, dw, 0, dh])
        out: torch.Tensor = self.conv(torch.cat([x, skip], dim=1))
        return out


class UNetDecoder2d(nn.Module):
    """U-Net decoder for an encoder whose stages produce ``skip_channels`` (finest first).

    The deepest entry of ``skip_channels`` is the bottleneck; each decoder stage doubles the
    resolution and halves towards the next finer skip. Ends with a 1x1 convolution to logits.
    """

    def __init__(self, skip_channels: Sequence[int], out_channels: int, norm: bool = True) -> None:
        super().__init__()
        chans = list(skip_channels)
        blocks = []
        deep = chans[-1]
        for skip in reversed(chans[:-1]):
            blocks.append(UpBlock2d(deep, skip, skip, norm))
            deep = skip
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for block, skip in zip(self.blocks, reversed(feats[:-1]), strict=True):
            x = block(x, skip)
        out: torch.Tensor = self.head(x)
        return out


def check_features(features: Sequence[int], minimum: int, name: str) -> tuple[int, ...]:
    """Validate a ``features`` argument (positive ints, at least ``minimum`` levels)."""
    from lungspread.errors import ModelError

    feats = tuple(int(f) for f in features)
    if len(feats) < minimum or any(f < 1 for f in feats):
        raise ModelError(
            f"{name} needs at least {minimum} positive feature widths, got {list(features)}"
        )
    return feats

"""``attention-unet2d``: 2D Attention U-Net (Oktay et al. 2018), MONAI's implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lungspread.models._blocks import check_features
from lungspread.models.registry import register


@register("attention-unet2d")
def attention_unet2d(
    in_channels: int = 1,
    out_channels: int = 2,
    features: Sequence[int] = (32, 64, 128, 256, 512),
    dropout: float = 0.0,
) -> Any:
    """Attention-gated U-Net; one 2x downsampling between consecutive ``features`` levels."""
    from monai.networks.nets import AttentionUnet

    feats = check_features(features, 2, "attention-unet2d")
    net = AttentionUnet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=feats,
        strides=[2] * (len(feats) - 1),
        dropout=dropout,
    )
    net.divisor = 2 ** (len(feats) - 1)
    return net

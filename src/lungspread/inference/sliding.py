"""Sliding-window inference with Gaussian blending, for 2D and 3D networks.

A thin wrapper over ``monai.inferers.sliding_window_inference(mode="gaussian")``. A
hand-written version (nnU-Net window placement, one precomputed weight map, plain tensor
views) was measured against it on one CPU thread and was not faster: 1.42 s vs 1.43 s for a
96x96x64 volume in 64x64x32 windows with ``fast3d``, 4.0 s vs 4.2 s for 200 slices of 128x128
in 64x64 windows with a small ``seed-unet2d``; the network dominates. So MONAI's is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

#: network input (B, C, *window) -> foreground probability (B, 1, *window)
ProbaFn = Callable[[torch.Tensor], torch.Tensor]


def sliding_window(
    image: torch.Tensor,
    window: Sequence[int],
    fn: ProbaFn,
    overlap: float = 0.5,
    batch_size: int = 8,
    sigma_scale: float = 0.125,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Blend ``fn`` over windows of ``image`` with Gaussian weights.

    ``image`` is ``(N, C, *spatial)`` with 2 or 3 spatial axes (a batch of 2D slices is
    ``(K, 1, I, J)``; windows of all N images are batched together). ``fn`` maps
    ``(B, C, *window)`` to ``(B, 1, *window)`` probabilities. Axes smaller than the window
    are padded with ``pad_value``. Returns a plain ``(N, 1, *spatial)`` float32 tensor.
    """
    from monai.inferers import sliding_window_inference

    win = [int(w) for w in window]
    if len(win) != image.ndim - 2:
        raise ValueError(f"window {win} does not match the image's {image.ndim - 2} axes")
    out = sliding_window_inference(
        image,
        roi_size=win,
        sw_batch_size=max(1, int(batch_size)),
        predictor=lambda x: fn(x).float(),
        overlap=overlap,
        mode="gaussian",
        sigma_scale=sigma_scale,
        padding_mode="constant",
        cval=float(pad_value),
    )
    assert isinstance(out, torch.Tensor)
    return out.as_tensor() if hasattr(out, "as_tensor") else out

"""Segmentation losses for one tumor class: BCE/CE, soft Dice, Dice + CE; deep supervision.

* ``"bce"``: cross-entropy: ``BCEWithLogits`` for 1-channel sigmoid networks, softmax
  cross-entropy for 2-channel softmax networks (the same loss for two classes).
* ``"dice"``: nnU-Net's batch soft Dice of the tumor class,
  ``1 - (2 TP + s) / (2 TP + FP + FN + s)`` with soft counts summed over the whole batch
  (``s = 1e-5``), which is defined and smooth even for batches without tumor.
* ``"dice_ce"``: their sum, with weight 1 each (nnU-Net's ``DC_and_CE_loss``).

Written here rather than with MONAI's ``DiceCELoss`` because nnU-Net's variant differs in
what matters for small tumors: Dice over the whole batch (not averaged per sample, where
tumor-free patches score 0 or 1 at random) and on the tumor class only, plus the same loss
for sigmoid (1-channel) and softmax (2-channel) networks; it is a dozen lines.

A network under deep supervision returns a list of outputs (full resolution first); the
losses of the outputs are weighted ``1, 1/2, 1/4, ...`` and normalized to sum 1, as in
nnU-Net (MONAI's DynUNet upsamples its auxiliary outputs, so all use the same target).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lungspread.errors import InputError

SMOOTH = 1e-5


def foreground_probability(logits: torch.Tensor, output: str) -> torch.Tensor:
    """``(B, 1, ...)`` tumor probability from logits of a sigmoid or softmax network."""
    if output == "sigmoid":
        return torch.sigmoid(logits[:, :1])
    return torch.softmax(logits, dim=1)[:, 1:2]


def soft_dice_loss(
    prob: torch.Tensor, target: torch.Tensor, smooth: float = SMOOTH
) -> torch.Tensor:
    """Batch soft Dice loss of a probability map against a 0/1 target (same shape)."""
    tp = (prob * target).sum()
    fp = (prob * (1 - target)).sum()
    fn = ((1 - prob) * target).sum()
    return 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    """Mean voxel cross-entropy; ``target`` is ``(B, 1, ...)`` with values 0/1."""
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits[:, :1], target)
    return F.cross_entropy(logits, target[:, 0].long())


class SegLoss(nn.Module):
    """Loss of a tumor segmentation network; see the module docstring for ``kind``."""

    def __init__(self, kind: str = "dice_ce", output: str = "softmax") -> None:
        super().__init__()
        if kind not in ("bce", "dice", "dice_ce"):
            raise InputError(f"unknown loss {kind!r}; valid: bce, dice, dice_ce")
        if output not in ("sigmoid", "softmax"):
            raise InputError(f"unknown network output {output!r}; expected sigmoid or softmax")
        self.kind = kind
        self.output = output

    def single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = logits.new_zeros(())
        if self.kind in ("bce", "dice_ce"):
            loss = loss + cross_entropy(logits, target, self.output)
        if self.kind in ("dice", "dice_ce"):
            loss = loss + soft_dice_loss(foreground_probability(logits, self.output), target)
        return loss

    def forward(
        self, logits: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        target = target.float()
        if isinstance(logits, torch.Tensor):
            return self.single(logits, target)
        weights = [0.5**i for i in range(len(logits))]
        total = sum(weights)
        out = target.new_zeros(())
        for w, lg in zip(weights, logits, strict=True):
            if lg.shape[2:] != target.shape[2:]:
                t = F.interpolate(target, size=lg.shape[2:], mode="nearest")
            else:
                t = target
            out = out + (w / total) * self.single(lg, t)
        return out

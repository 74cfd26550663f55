"""Hard-negative mining: train more where the network fires on tumor-free tissue.

Random patches rarely land on the few structures that fool a tumor model (a vessel seen end
on, the diaphragm dome, the hilum), so a network can see them too seldom to learn them. With
``TrainConfig.hard_negatives = p``, a share ``p`` of each batch's random (not
tumor-centred) patches is centred instead on a *false-positive voxel*: a voxel of a training
case where the network's probability is at least 0.5 although the label says background,
away from the true tumors (more than :data:`TUMOR_CLEARANCE` voxels from them, so that the
ordinary boundary errors of found tumors do not count). The voxels are mined with the network
being trained, on every training case, at the start of training and every
``TrainConfig.mine_every`` epochs, and saved in the fold folder (:data:`MINED_NAME`) so that
``--resume`` continues with exactly the same set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from lungspread.training.sampling import MAX_FG_VOXELS, PreparedCase, predict_case

#: the mined voxels of the current mining round, beside the checkpoint
MINED_NAME = "hard_negatives.npz"

#: false-positive voxels closer than this (voxels, 26-connected dilation) to a true tumor
#: are boundary errors, not hard negatives
TUMOR_CLEARANCE = 3


def false_positive_voxels(
    probability: np.ndarray,
    label: np.ndarray,
    threshold: float = 0.5,
    max_voxels: int = MAX_FG_VOXELS,
    seed: int = 0,
) -> np.ndarray:
    """Coordinates ``(N, ndim)`` int32 of voxels with ``probability >= threshold`` that are
    more than :data:`TUMOR_CLEARANCE` voxels from ``label > 0``; at most ``max_voxels``, drawn
    at random (``seed``) when there are more."""
    fired = np.asarray(probability) >= threshold
    tumor = np.asarray(label) > 0
    if tumor.any():
        near = ndimage.binary_dilation(
            tumor, structure=np.ones((3,) * tumor.ndim, bool), iterations=TUMOR_CLEARANCE
        )
        fired &= ~near
    coords = np.argwhere(fired)
    if len(coords) > max_voxels:
        pick = np.random.default_rng(seed).choice(len(coords), max_voxels, replace=False)
        coords = coords[np.sort(pick)]
    return coords.astype(np.int32)


def mine_hard_negatives(
    net: Any,
    cases: list[PreparedCase],
    plan: dict[str, Any],
    device: torch.device,
    seed: int = 0,
) -> list[np.ndarray]:
    """False-positive voxels of ``net`` on each of ``cases`` (whole cases, sliding window)."""
    was_training = net.training
    net.eval()
    mined = []
    try:
        for n, case in enumerate(cases):
            prob = predict_case(net, case, plan, device, overlap=0.25)
            mined.append(false_positive_voxels(prob, case.label, seed=seed + n))
    finally:
        net.train(was_training)
    return mined


def save_mined(folder: Path, epoch: int, case_ids: list[str], mined: list[np.ndarray]) -> None:
    """Write the voxels mined at ``epoch`` (atomically) into ``folder/MINED_NAME``."""
    from lungspread.outputs import atomic_path

    arrays: dict[str, Any] = {f"case_{i}": m for i, m in enumerate(mined)}
    arrays["epoch"] = np.int64(epoch)
    arrays["case_ids"] = np.array(case_ids, dtype=str)
    with atomic_path(folder / MINED_NAME) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_mined(folder: Path, case_ids: list[str]) -> tuple[int, list[np.ndarray]] | None:
    """``(epoch, voxels per case)`` saved in ``folder``, or None when there is none or it was
    mined for other cases."""
    path = folder / MINED_NAME
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if [str(c) for c in data["case_ids"]] != list(case_ids):
            return None
        return int(data["epoch"]), [data[f"case_{i}"] for i in range(len(case_ids))]

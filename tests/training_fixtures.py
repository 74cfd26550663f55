"""Tiny MSD-format datasets for the training, predictor and evaluation tests.

Deliberately minimal (a few tens of kilobytes) so that tests train in seconds: a soft-tissue
body with two air-filled "lungs" and a bright spherical tumor in one lung, with noise. The
phantom developer's ``lungspread.phantom`` makes realistic ones; these only need to be
learnable and exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def toy_case(
    rng: np.random.Generator, shape: tuple[int, int, int], tumor: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(image int16 HU, label uint8) of one toy chest."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    ci, cj = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    img = np.full(shape, -1000.0, np.float32)
    body = ((i - ci) / (0.46 * shape[0])) ** 2 + ((j - cj) / (0.40 * shape[1])) ** 2 <= 1
    img[body] = 0.0
    lab = np.zeros(shape, np.uint8)
    for side in (-1, 1):
        li = ci + side * 0.2 * shape[0]
        lung = ((i - li) / (0.15 * shape[0])) ** 2 + ((j - cj) / (0.28 * shape[1])) ** 2 <= 1
        img[lung] = -820.0
    if tumor:
        side = 1 if rng.random() < 0.5 else -1
        ti = ci + side * 0.2 * shape[0] + rng.uniform(-1.5, 1.5)
        tj = cj + rng.uniform(-0.12, 0.12) * shape[1]
        tk = rng.uniform(0.3, 0.7) * (shape[2] - 1)
        r = rng.uniform(0.07, 0.11) * min(shape[0], shape[1])
        rk = r if shape[2] > 1 else 1e9
        sphere = ((i - ti) / r) ** 2 + ((j - tj) / r) ** 2 + ((k - tk) / (rk / 2)) ** 2 <= 1
        img[sphere] = 100.0
        lab[sphere] = 1
    img += rng.normal(0, 25, shape).astype(np.float32)
    return np.round(img).astype(np.int16), lab


def write_toy_dataset(
    root: Path,
    n_cases: int = 6,
    shape: tuple[int, int, int] = (32, 32, 12),
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 3.0),
    seed: int = 0,
    n_empty: int = 0,
) -> Path:
    """Write an MSD folder with ``n_cases`` toy chests (the last ``n_empty`` without tumor)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing_mm, 1.0])
    training = []
    for n in range(n_cases):
        img, lab = toy_case(rng, shape, tumor=n < n_cases - n_empty)
        cid = f"toy_{n:03d}"
        nib.save(nib.Nifti1Image(img, affine), str(root / "imagesTr" / f"{cid}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, affine), str(root / "labelsTr" / f"{cid}.nii.gz"))
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
    meta = {
        "name": "Toy",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "tumor"},
        "numTraining": n_cases,
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def train_tiny_run(data: Path, run: Path, epochs: int = 2, **overrides: object) -> Path:
    """Train a very small unet3d on ``data`` into ``run`` (a few seconds on a CPU)."""
    from lungspread.training.config import make_config
    from lungspread.training.trainer import train

    settings: dict[str, object] = {
        "model": "unet3d",
        "model_kwargs": {"features": [4, 8, 16]},
        "epochs": epochs,
        "iters_per_epoch": 3,
        "batch_size": 2,
        "patch_size": [16, 16, 8],
        "folds": 3,
        "fit_samples": 20_000,
    }
    settings.update(overrides)
    train(data, run, make_config("default", **settings), device="cpu", tensorboard=False)
    return run

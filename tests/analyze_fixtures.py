"""Shared helpers of the analyze, batch and demo tests: a small phantom CT and a tiny model.

The tiny model is a ``fast3d`` network with random (seeded) weights and a final bias that
makes a few regions cross the threshold: the tests check the pipeline (files, geometry,
determinism, batch behaviour), never accuracy, so they do not depend on the bundled model's
training. Its spacing (4 mm) keeps every test run at a fraction of a second per CT.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from lungspread.volume import Volume


@lru_cache(maxsize=4)
def phantom_ct(seed: int = 0) -> tuple[Volume, Volume]:
    """(CT, true tumor mask) of a small phantom chest."""
    from lungspread.phantom import make_phantom

    ph = make_phantom(seed, size="small")
    return ph.ct, ph.tumor


def write_tiny_model(folder: Path, seed: int = 0, bias: float = 0.0) -> Path:
    """A loadable model folder: fast3d (4, 8, 16) with seeded random weights."""
    import torch

    from lungspread.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(seed)
    kwargs = {"features": [4, 8, 16], "bf16_training": False}
    net = build_model("fast3d", **kwargs)
    with torch.no_grad():
        net.head.bias[1] += bias
    spec = ModelSpec(
        name="fast3d",
        kwargs=kwargs,
        dims=3,
        spacing_mm=[4.0, 4.0, 4.0],
        patch_size=[32, 32, 32],
        normalization={"scheme": "ct", "clip_hu": [-1000.0, 400.0], "mean": -500.0, "std": 400.0},
        output="softmax",
        threshold=0.5,
        extra={"postprocess": {"min_lesion_mm3": 0.0}},
    )
    save_checkpoint(folder, spec, net.state_dict())
    return folder


def same_geometry(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.affine, b.affine))

"""Hard-negative mining (training.hard_negatives) and the sampler and trainer that use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lungspread.errors import InputError
from lungspread.training.config import make_config
from lungspread.training.hard_negatives import (
    MINED_NAME,
    false_positive_voxels,
    load_mined,
    save_mined,
)
from lungspread.training.sampling import PatchSampler, PreparedCase
from lungspread.training.trainer import train
from test_training import StopAt, _weights, tiny_config
from training_fixtures import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "Toy", n_cases=6)


def test_false_positives_away_from_the_tumor_only() -> None:
    prob = np.zeros((30, 30, 30), np.float32)
    label = np.zeros((30, 30, 30), np.uint8)
    label[5:8, 5:8, 5:8] = 1
    prob[4:9, 4:9, 4:9] = 0.9  # the tumor plus a one-voxel rim: boundary error, not mined
    prob[9, 5, 5] = 0.9  # 2 voxels from the tumor: still within the clearance
    prob[20:22, 20:22, 20] = 0.6  # a separate false positive of 4 voxels
    prob[25, 25, 25] = 0.49  # below the threshold
    got = false_positive_voxels(prob, label)
    assert got.dtype == np.int32
    assert sorted(map(tuple, got.tolist())) == [
        (20, 20, 20),
        (20, 21, 20),
        (21, 20, 20),
        (21, 21, 20),
    ]
    assert len(false_positive_voxels(prob, label, max_voxels=3)) == 3
    assert len(false_positive_voxels(np.zeros_like(prob), label)) == 0


def test_sampler_centres_random_patches_on_hard_negatives() -> None:
    image = np.zeros((40, 40, 40), np.float32)
    image[30, 30, 30] = 5.0  # the false positive's voxel
    label = np.zeros((40, 40, 40), np.uint8)
    label[5, 5, 5] = 1
    case = PreparedCase.from_arrays("c", image, label)
    sampler = PatchSampler([case], (8, 8, 8), batch_size=4, oversample_fg=0.25, hard_fraction=1.0)
    sampler.set_hard_negatives([np.array([[30, 30, 30]], np.int32)])
    rng = np.random.default_rng(0)
    for _ in range(5):
        imgs, labs, _ = sampler.sample(rng)
        for b in range(3):  # every random patch is centred (start = centre - 4) on it
            assert imgs[b, 0, 4, 4, 4] == 5.0 and labs[b].sum() == 0
        assert labs[3].sum() == 1  # the forced patch still holds the tumor
    half = PatchSampler([case], (8, 8, 8), batch_size=4, oversample_fg=0.0, hard_fraction=0.5)
    half.set_hard_negatives([np.array([[30, 30, 30]], np.int32)])
    hits = sum(int(half.sample(rng)[0][:, 0, 4, 4, 4].sum() == 5.0 * 4) for _ in range(40))
    centred = sum(
        int(v == 5.0) for _ in range(40) for v in half.sample(rng)[0][:, 0, 4, 4, 4].tolist()
    )
    assert hits < 40 and 40 < centred < 120  # about half of 160 patches
    with pytest.raises(ValueError, match="hard-negative sets"):
        sampler.set_hard_negatives([])


def test_mined_voxels_roundtrip(tmp_path: Path) -> None:
    mined = [np.array([[1, 2, 3]], np.int32), np.zeros((0, 3), np.int32)]
    save_mined(tmp_path, 5, ["a", "b"], mined)
    got = load_mined(tmp_path, ["a", "b"])
    assert got is not None and got[0] == 5
    np.testing.assert_array_equal(got[1][0], mined[0])
    assert got[1][1].shape == (0, 3)
    assert load_mined(tmp_path, ["a", "c"]) is None  # other cases: not reused
    assert load_mined(tmp_path / "none", ["a"]) is None


def test_config_checks_hard_negative_settings() -> None:
    with pytest.raises(InputError, match="hard_negatives"):
        make_config("default", hard_negatives=1.5)
    with pytest.raises(InputError, match="mine_every"):
        make_config("default", mine_every=0)


@pytest.mark.slow
def test_training_with_mining_saves_and_resumes_exactly(toy: Path, tmp_path: Path) -> None:
    """Mining every epoch: the run writes the mined set, and a run killed in its second epoch
    and resumed ends with the same weights as one that ran through."""
    cfg = {"hard_negatives": 1.0, "mine_every": 1}
    ref = tmp_path / "ref"
    train(toy, ref, tiny_config(**cfg), device="cpu", tensorboard=False)
    got = load_mined(ref / "fold_0", json.loads((ref / "splits.json").read_text())[0]["train"])
    assert got is not None and got[0] == 1  # re-mined before the second epoch
    assert json.loads((ref / "config.json").read_text())["hard_negatives"] == 1.0
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(
            toy,
            crashed,
            tiny_config(**cfg),
            device="cpu",
            tensorboard=False,
            callbacks=StopAt(1, 1),
        )
    assert (crashed / "fold_0" / MINED_NAME).is_file()
    train(toy, crashed, resume=True, device="cpu", tensorboard=False)
    a, b = _weights(ref / "fold_0"), _weights(crashed / "fold_0")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_runs_from_before_the_new_options_still_resume() -> None:
    """The checkpoint hash of a run written before --init/--hard-negatives existed (its
    config.json has no such keys) is what the current code computes when they are off."""
    import hashlib

    from lungspread.training.trainer import LATER_OPTIONS, config_hash

    cfg = make_config("default", model="fast3d")
    old = {k: v for k, v in cfg.to_json().items() if k not in LATER_OPTIONS and k != "epochs"}
    old_hash = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert config_hash(cfg) == old_hash
    assert config_hash(make_config("default", model="fast3d", hard_negatives=0.5)) != old_hash

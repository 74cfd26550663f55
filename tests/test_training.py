"""Training: losses, sampling, augmentation, checkpoints, resume, the train command (fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lungspread.errors import InputError, ModelError, OutputError
from lungspread.training.augment import AugmentConfig, augment_batch, center_crop, source_size
from lungspread.training.config import TrainConfig, make_config
from lungspread.training.losses import SegLoss, soft_dice_loss
from lungspread.training.sampling import PatchSampler, PreparedCase, crop_padded
from lungspread.training.trainer import TrainCallbacks, lr_at, train
from training_fixtures import write_toy_dataset

OFF = AugmentConfig(
    p_rotate=0,
    p_scale=0,
    p_shift=0,
    p_elastic=0,
    p_mirror=0,
    p_brightness=0,
    p_contrast=0,
    p_gamma=0,
    p_blur=0,
    p_noise=0,
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "Toy", n_cases=6)


# -- losses -----------------------------------------------------------------------------------
def test_soft_dice_hand_computed() -> None:
    prob = torch.tensor([1.0, 0.0, 0.5, 0.5])
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])
    # TP = 1.5, FP = 0.5, FN = 0.5 -> Dice = 3 / 4
    assert float(soft_dice_loss(prob, target)) == pytest.approx(0.25, abs=1e-5)


def test_bce_sigmoid_equals_softmax_ce_for_two_classes() -> None:
    z = torch.tensor([-2.0, 0.0, 3.0]).view(1, 1, 3)
    t = torch.tensor([0.0, 1.0, 1.0]).view(1, 1, 3)
    bce = SegLoss("bce", "sigmoid")(z, t)
    ce = SegLoss("bce", "softmax")(torch.cat([torch.zeros_like(z), z], dim=1), t)
    # -log(1 - sigmoid(-2)) = log(1 + e^-2); -log(sigmoid(0)) = log 2; -log(sigmoid(3))
    expected = (math.log(1 + math.e**-2) + math.log(2) + math.log(1 + math.e**-3)) / 3
    assert float(bce) == pytest.approx(expected, rel=1e-5)
    assert float(ce) == pytest.approx(float(bce), rel=1e-5)


def test_deep_supervision_weights_halve_and_normalize() -> None:
    loss = SegLoss("bce", "sigmoid")
    t = torch.ones(1, 1, 4, 4)
    a, b = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 10.0)
    la, lb = float(loss(a, t)), float(loss(b, t))
    assert float(loss([a, b], t)) == pytest.approx((la + 0.5 * lb) / 1.5, rel=1e-6)


def test_dice_ce_is_sum() -> None:
    z = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    t = (torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    total = float(SegLoss("dice_ce", "softmax")(z, t))
    parts = float(SegLoss("bce", "softmax")(z, t)) + float(SegLoss("dice", "softmax")(z, t))
    assert total == pytest.approx(parts, rel=1e-6)
    with pytest.raises(InputError, match="unknown loss"):
        SegLoss("focal", "softmax")


# -- sampling -------------------------------------------------------------------------------
def test_crop_padded_hand_values() -> None:
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = crop_padded(a, (0, 0), (3, 3), -1.0)  # box starts at (-1, -1)
    expected = np.array([[-1, -1, -1], [-1, 0, 1], [-1, 4, 5]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)


def test_foreground_oversampling_last_third_of_batch() -> None:
    image = np.zeros((40, 40, 40), np.float32)
    label = np.zeros((40, 40, 40), np.uint8)
    label[30, 5, 20] = 1  # one tumor voxel
    case = PreparedCase.from_arrays("c", image, label)
    sampler = PatchSampler([case], (8, 8, 8), batch_size=6, oversample_fg=0.33)
    assert sampler.n_forced == 2
    rng = np.random.default_rng(0)
    hits = np.zeros(6)
    for _ in range(20):
        _, labels, pads = sampler.sample(rng)
        hits += labels.reshape(6, -1).sum(1)
        assert np.all(pads == 0.0)
    assert hits[4] == 20 and hits[5] == 20  # forced samples always hold the tumor voxel
    assert hits[:4].sum() < 20


def test_random_patches_see_the_image_edges() -> None:
    """Random patch centres cover the whole image: the first slice is inside 5/8 as many
    patches as a middle slice (centres 0-4 reach it; a box kept inside the image would
    reach it from 1 centre of 33, 1/8 as often)."""
    image = np.zeros((8, 8, 40), np.float32)
    label = np.zeros((8, 8, 40), np.uint8)
    case = PreparedCase.from_arrays("c", image, label)
    image[:, :, 0], image[:, :, 20] = 1.0, 2.0
    sampler = PatchSampler([case], (8, 8, 8), batch_size=1, oversample_fg=0.0)
    rng = np.random.default_rng(0)
    seen = np.zeros(3)
    for _ in range(2000):
        patch = sampler.sample(rng)[0]
        seen += [np.any(patch == 1.0), np.any(patch == 2.0), np.any(patch == 0.0)]
    edge, middle = seen[0] / 2000, seen[1] / 2000
    assert middle == pytest.approx(8 / 40, abs=0.03)
    assert edge == pytest.approx(5 / 40, abs=0.03)


def test_2d_sampler_takes_slices_and_pads() -> None:
    image = np.arange(6 * 6 * 3, dtype=np.float32).reshape(6, 6, 3)
    label = np.zeros((6, 6, 3), np.uint8)
    label[2, 3, 1] = 1
    case = PreparedCase.from_arrays("c", image, label)
    assert case.pad_value == 0.0
    sampler = PatchSampler([case], (8, 8), batch_size=1, oversample_fg=1.0)
    imgs, labs, _ = sampler.sample(np.random.default_rng(0))
    assert imgs.shape == (1, 1, 8, 8)
    # image smaller than the patch: centred, slice 1 (the tumor's), padding with the minimum
    np.testing.assert_array_equal(imgs[0, 0, 1:7, 1:7], image[:, :, 1])
    assert labs[0, 0, 3, 4] == 1 and labs.sum() == 1


# -- augmentation ---------------------------------------------------------------------------
@pytest.mark.parametrize("patch", [[8, 10], [6, 8, 4]])
def test_augment_identity_and_mirror_are_exact(patch: list[int]) -> None:
    gen = torch.Generator().manual_seed(0)
    src = source_size(patch, True)
    assert all((s - p) % 2 == 0 and s > p for s, p in zip(src, patch, strict=True))
    x = torch.randn(3, 1, *src)
    y = (torch.rand(3, 1, *src) > 0.5).to(torch.uint8)
    xa, ya = augment_batch(x, y, patch, gen, 0.0, OFF)
    torch.testing.assert_close(xa, center_crop(x, patch), atol=1e-5, rtol=0)
    torch.testing.assert_close(ya, center_crop(y, patch).float())
    mirror = AugmentConfig(**{**OFF.__dict__, "p_mirror": 1.0})
    xm, ym = augment_batch(x, y, patch, gen, 0.0, mirror)
    axes = list(range(2, 2 + len(patch)))
    torch.testing.assert_close(xm, center_crop(x, patch).flip(axes), atol=1e-5, rtol=0)
    torch.testing.assert_close(ym, center_crop(y, patch).float().flip(axes))


def test_augment_full_is_reproducible_and_binary() -> None:
    patch = [12, 12, 6]
    x = torch.randn(4, 1, *source_size(patch, True))
    y = (x > 1).to(torch.uint8)
    a = augment_batch(x, y, patch, torch.Generator().manual_seed(5), -3.0)
    b = augment_batch(x, y, patch, torch.Generator().manual_seed(5), -3.0)
    torch.testing.assert_close(a[0], b[0])
    assert set(torch.unique(a[1]).tolist()) <= {0.0, 1.0}
    assert tuple(a[0].shape) == (4, 1, *patch)


def test_scaling_zooms_out_with_pad_value() -> None:
    # scale 1.4 samples 40% further out: a crop of exactly the patch size shows the pad value
    cfg = AugmentConfig(**{**OFF.__dict__, "p_scale": 1.0, "scale": (1.4, 1.4)})
    x = torch.zeros(1, 1, 10, 10)
    xa, _ = augment_batch(x, torch.zeros_like(x), [10, 10], torch.Generator(), -5.0, cfg)
    assert float(xa[0, 0, 0, 0]) == pytest.approx(-5.0)
    assert float(xa[0, 0, 5, 5]) == pytest.approx(0.0)


# -- schedule, config -----------------------------------------------------------------------
def test_poly_and_constant_schedules() -> None:
    cfg = make_config("default", lr=0.01)
    assert lr_at(cfg, 0, 10) == pytest.approx(0.01)
    assert lr_at(cfg, 5, 10) == pytest.approx(0.01 * 0.5**0.9)
    assert lr_at(make_config("seed"), 7, 10) == pytest.approx(1e-4)


def test_seed_preset_is_the_proposal() -> None:
    cfg = make_config("seed")
    assert (cfg.model, cfg.loss, cfg.optimizer, cfg.lr, cfg.batch_size) == (
        "seed-unet2d",
        "bce",
        "adam",
        1e-4,
        16,
    )
    assert cfg.patch_size == [256, 256] and not cfg.augment and cfg.oversample_fg == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss": "l2"}, "unknown loss"),
        ({"fold": "7"}, "fold 7 does not exist"),
        ({"fold": "x"}, "fold must be"),
        ({"epochs": 0}, "epochs must be"),
        ({"nonsense": 1}, "unknown training option"),
    ],
)
def test_config_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        make_config("default", **kwargs)
    with pytest.raises(InputError, match="unknown preset"):
        make_config("fancy")


# -- optimizer state as safetensors + JSON ---------------------------------------------------
def test_state_roundtrip_and_corruption(tmp_path: Path) -> None:
    from lungspread.training.state import (
        load_state,
        model_state_from,
        optimizer_from_flat,
        save_state,
    )

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    save_state(tmp_path, 3, net.state_dict(), opt, {"best_metric": 0.5})
    assert not list(tmp_path.glob("*.pkl")) and not list(tmp_path.glob("*.pt"))
    info, tensors = load_state(tmp_path)
    assert info["epoch"] == 3 and info["best_metric"] == 0.5
    net2 = torch.nn.Linear(3, 2)
    net2.load_state_dict(model_state_from(tensors))
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.1)
    optimizer_from_flat(opt2, tensors, info["optimizer"])
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for key, v in s1["state"][k].items():
            torch.testing.assert_close(v, s2["state"][k][key])
    # a newer save replaces the tensors file
    save_state(tmp_path, 4, net.state_dict(), opt, {})
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["checkpoint_e0004.safetensors"]
    blob = bytearray((tmp_path / "checkpoint_e0004.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (tmp_path / "checkpoint_e0004.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="corrupt"):
        load_state(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="corrupt"):
        load_state(tmp_path)


# -- end to end ------------------------------------------------------------------------------
def tiny_config(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model": "unet3d",
        "model_kwargs": {"features": [4, 8, 16]},
        "epochs": 2,
        "iters_per_epoch": 3,
        "batch_size": 2,
        "patch_size": [16, 16, 8],
        "folds": 3,
        "fit_samples": 20_000,
    }
    base.update(kw)
    return make_config("default", **base)


class StopAt(TrainCallbacks):
    """Simulates a crash: raises inside epoch ``epoch`` (0-based) at iteration ``iteration``."""

    def __init__(self, epoch: int, iteration: int) -> None:
        self.epoch, self.iteration = epoch, iteration

    def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
        if (epoch, iteration) == (self.epoch, self.iteration):
            raise KeyboardInterrupt


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from lungspread.training.state import load_state, model_state_from

    return model_state_from(load_state(folder)[1])


def test_train_writes_a_complete_run(toy: Path, tmp_path: Path) -> None:
    from lungspread.inference.predictor import Predictor

    run = tmp_path / "run"
    result = train(toy, run, tiny_config(), device="cpu", tensorboard=False)
    for name in ("config.json", "plans.json", "splits.json", "run.json", "model.json"):
        assert (run / name).is_file(), name
    fold = run / "fold_0"
    rows = (fold / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_dice") and len(rows) == 3
    splits = json.loads((run / "splits.json").read_text())
    assert len(splits) == 3 and sorted(c for s in splits for c in s["val"]) == sorted(
        f"toy_{n:03d}" for n in range(6)
    )
    info = json.loads((fold / "checkpoint.json").read_text())
    assert info["epoch"] == 2 and len(info["history"]) == 2 and "rng" in info
    spec = json.loads((run / "model.json").read_text())
    assert spec["name"] == "unet3d" and spec["output"] == "softmax"
    assert spec["patch_size"] == [16, 16, 8] and spec["spacing_mm"] == [2.0, 2.0, 3.0]
    assert spec["extra"]["epoch"] == result.folds[0].best_epoch
    assert spec["kwargs"]["strides"][0] == [1, 1, 1]
    predictor = Predictor.from_folder(run)
    from lungspread.data.msd import MSDDataset

    ds = MSDDataset.open(toy)
    image, _ = ds.load_case(ds.cases[0])
    prob = predictor.predict_proba(image)
    assert prob.shape == image.shape and prob.array.dtype == np.float32
    assert float(prob.array.min()) >= 0.0 and float(prob.array.max()) <= 1.0


def test_resume_after_a_crash_gives_identical_weights(toy: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    train(toy, ref, tiny_config(), device="cpu", tensorboard=False)
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(toy, crashed, tiny_config(), device="cpu", tensorboard=False, callbacks=StopAt(1, 1))
    info = json.loads((crashed / "fold_0" / "checkpoint.json").read_text())
    assert info["epoch"] == 1  # the first epoch was kept, the second lost
    assert not (crashed / "run.json").exists()
    train(toy, crashed, resume=True, device="cpu", tensorboard=False)
    a, b = _weights(ref / "fold_0"), _weights(crashed / "fold_0")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (crashed / "fold_0" / "log.csv").read_text().count("\n") == 3
    # resuming a finished run changes nothing; more epochs continue it
    train(toy, crashed, resume=True, device="cpu", tensorboard=False)
    assert torch.equal(
        _weights(crashed / "fold_0")["net.output_block.conv.conv.weight"],
        a["net.output_block.conv.conv.weight"],
    )


def test_init_starts_from_another_models_weights(toy: Path, tmp_path: Path) -> None:
    """--init: training starts from the given model's weights (one step at lr 1e-12 leaves
    them where they were; a fresh run's are elsewhere), and a different network is refused."""
    from lungspread.models.checkpoint import load_checkpoint

    ref = tmp_path / "ref"
    train(toy, ref, tiny_config(), device="cpu", tensorboard=False)
    source = load_checkpoint(ref)[0].state_dict()
    one_step = {"epochs": 1, "iters_per_epoch": 1, "lr": 1e-12, "seed": 7}
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    train(toy, tuned, tiny_config(init_from=str(ref), **one_step), device="cpu", tensorboard=False)
    train(toy, fresh, tiny_config(**one_step), device="cpu", tensorboard=False)
    assert json.loads((tuned / "config.json").read_text())["init_from"] == str(ref.resolve())
    got, other = load_checkpoint(tuned)[0].state_dict(), load_checkpoint(fresh)[0].state_dict()
    assert got.keys() == source.keys()
    for k in source:
        assert torch.allclose(got[k].float(), source[k].float(), atol=1e-8), k
    conv = [k for k in source if k.endswith("weight") and source[k].ndim == 5]
    assert any(not torch.allclose(other[k], source[k], atol=1e-3) for k in conv)
    with pytest.raises(ModelError, match="--init model is unet3d"):
        train(
            toy,
            tmp_path / "mismatch",
            tiny_config(init_from=str(ref), model="fast3d", **one_step),
            device="cpu",
            tensorboard=False,
        )
    assert not (tmp_path / "mismatch").exists()  # refused before anything was written
    with pytest.raises(ModelError, match=r"differs from this run's \(features \[4, 8, 16\] vs"):
        train(
            toy,
            tmp_path / "widths",
            tiny_config(init_from=str(ref), model_kwargs={"features": [4, 8, 8]}, **one_step),
            device="cpu",
            tensorboard=False,
        )


def _source_model(ref: Path, normalization: dict[str, Any], spacing: list[float]) -> Path:
    """A copy of run ``ref``'s model with another normalization and spacing in its model.json:
    a source model planned on other data."""
    src = ref.parent / f"{ref.name}-other-plan"
    src.mkdir()
    spec = json.loads((ref / "model.json").read_text())
    spec.update(normalization=normalization, spacing_mm=spacing)
    (src / "model.json").write_text(json.dumps(spec))
    (src / "model.safetensors").write_bytes((ref / "model.safetensors").read_bytes())
    return src


def test_init_plan_source_keeps_the_models_spacing_and_normalization(
    toy: Path, tmp_path: Path
) -> None:
    """--init-plan source: the run preprocesses at the initial model's spacing with its CT
    window and statistics, and its model says so; refit (the default) plans both from the data;
    a source of another normalization scheme is refused before anything is written."""
    ref = tmp_path / "ref"
    one_step = {"epochs": 1, "iters_per_epoch": 1, "seed": 7}
    train(toy, ref, tiny_config(**one_step), device="cpu", tensorboard=False)
    window = {"scheme": "ct", "clip_hu": [-1000.0, 400.0], "mean": -500.0, "std": 250.0}
    src = _source_model(ref, window, [4.0, 4.0, 6.0])  # toy cases: 2 x 2 x 3 mm
    kept, refit = tmp_path / "kept", tmp_path / "refit"
    config = tiny_config(init_from=str(src), init_plan="source", **one_step)
    train(toy, kept, config, device="cpu", tensorboard=False)
    train(toy, refit, tiny_config(init_from=str(src), **one_step), device="cpu", tensorboard=False)
    spec = json.loads((kept / "model.json").read_text())
    assert spec["normalization"] == window and spec["spacing_mm"] == [4.0, 4.0, 6.0]
    plan = json.loads((kept / "plans.json").read_text())["dataset"]
    assert plan["target_spacing_mm"] == [4.0, 4.0, 6.0] and plan["normalization"] == window

    # the cached cases (cropped to the body) are on the 4 x 4 x 6 mm grid: half as many
    # voxels per axis as the refit run's, on the toy's own 2 x 2 x 3 mm grid
    def cached(run: Path) -> list[tuple[int, ...]]:
        return [np.load(f)["image"].shape[-3:] for f in sorted(run.rglob("*.npz"))]

    halves = [tuple(-(-n // 2) for n in shape) for shape in cached(refit / "preprocessed")]
    assert len(halves) == 6 and cached(kept / "preprocessed") == halves, halves
    own = json.loads((ref / "model.json").read_text())
    spec_refit = json.loads((refit / "model.json").read_text())
    assert spec_refit["normalization"] == own["normalization"] != window
    assert spec_refit["spacing_mm"] == own["spacing_mm"] == [2.0, 2.0, 3.0]
    mr = _source_model(kept, {"scheme": "zscore"}, [2.0, 2.0, 3.0])
    with pytest.raises(InputError, match=r"scheme 'zscore'.*--init-plan refit"):
        config = tiny_config(init_from=str(mr), init_plan="source", **one_step)
        train(toy, tmp_path / "mr", config, device="cpu", tensorboard=False)
    assert not (tmp_path / "mr").exists()
    with pytest.raises(InputError, match="needs a model to start from"):
        tiny_config(init_plan="source").validate()
    with pytest.raises(InputError, match="init plan must be one of refit, source"):
        tiny_config(init_from=str(src), init_plan="target").validate()


def test_cli_init_bundled_names_the_mismatch(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lungspread.cli.app import main

    code = main(
        [
            "train",
            str(toy),
            "--out",
            str(tmp_path / "run"),
            "--model",
            "unet3d",
            "--init",
            "bundled",
            "--epochs",
            "1",
            "--iters-per-epoch",
            "1",
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--init model is fast3d, but this run trains unet3d" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    code = main(
        [
            "train",
            str(toy),
            "--out",
            str(tmp_path / "run2"),
            "--init",
            str(tmp_path / "nope"),
            "--epochs",
            "1",
            "--quiet",
        ]
    )
    assert code == 2
    run3 = tmp_path / "run3"
    code = main(["train", str(toy), "--out", str(run3), "--init-plan", "source", "--quiet"])
    assert code == 2 and not run3.exists()
    err = capsys.readouterr().err
    assert "init plan 'source' needs a model to start from (--init)" in err
    assert "Traceback" not in err


def test_corrupt_checkpoint_and_bad_folders(toy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(toy, run, tiny_config(), device="cpu", tensorboard=False, callbacks=StopAt(1, 0))
    tensors = next((run / "fold_0").glob("checkpoint_e*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:100])
    with pytest.raises(ModelError, match="corrupt"):
        train(toy, run, resume=True, device="cpu", tensorboard=False)
    with pytest.raises(OutputError, match="--resume"):
        train(toy, run, tiny_config(), device="cpu", tensorboard=False)
    with pytest.raises(InputError, match="nothing to resume"):
        train(toy, tmp_path / "empty", resume=True, device="cpu")


def test_cli_train_2d_seed_preset_and_errors(toy: Path, tmp_path: Path) -> None:
    from lungspread.cli.app import main

    run = tmp_path / "seed"
    code = main(
        [
            "train",
            str(toy),
            "--out",
            str(run),
            "--preset",
            "seed",
            "--features",
            "4,8,16",
            "--epochs",
            "1",
            "--iters-per-epoch",
            "2",
            "--batch",
            "2",
            "--folds",
            "3",
            "--device",
            "cpu",
            "--no-tensorboard",
            "-q",
        ]
    )
    assert code == 0
    spec = json.loads((run / "model.json").read_text())
    # the seed preset: sigmoid output, 256x256 asked, clamped to the 32x32 images
    assert spec["name"] == "seed-unet2d" and spec["output"] == "sigmoid"
    assert spec["dims"] == 2 and spec["patch_size"] == [32, 32]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["loss"] == "bce" and cfg["augment"] is False and cfg["lr"] == 1e-4
    assert main(["train", str(toy), "--out", str(tmp_path / "x"), "--model", "nope", "-q"]) == 2
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "y"), "-q"]) == 2


def test_gpu_benchmark_script_runs_tiny_on_cpu(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_training_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_training_gpu", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    rows = bench.main(
        ["--device", "cpu", "--tiny", "--iters", "1", "--warmup", "0", "--json", str(out)]
    )
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("unet3d", "step"),
        ("unet3d", "pipeline"),
        ("nnunet-task06-3d", "step"),
        ("nnunet-task06-3d", "pipeline"),
    ]
    assert all(r["iterations_per_s"] > 0 for r in rows)
    assert json.loads(out.read_text())["device"].startswith("CPU")

"""Training skips optimizer steps whose gradients are not finite instead of poisoning the weights.

PyTorch's bfloat16 convolution backward on CPUs returned NaN weight gradients from finite
inputs about once in a few hundred steps on a 2^3 bottleneck (found by
tests/test_models.py in CI); a single such step would turn every weight into NaN under Adam.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from lungspread.errors import ModelError
from lungspread.models.registry import MODELS, available_models
from lungspread.training.config import make_config
from lungspread.training.trainer import optimizer_step, train
from training_fixtures import write_toy_dataset


def _net_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    return net, torch.optim.Adam(net.parameters(), lr=0.1)


def _backward(net: torch.nn.Module, poison: bool) -> None:
    loss = net(torch.ones(2, 3)).pow(2).sum()
    loss.backward()
    if poison:  # as the bf16 convolution backward did: one entry of one weight's gradient
        grad = net[0].weight.grad
        assert grad is not None
        grad[1, 2] = float("nan")


def _no_scaler() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=False)


def test_a_nan_gradient_is_skipped_and_leaves_weights_and_optimizer_untouched() -> None:
    net, opt = _net_and_optimizer()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _backward(net, poison=True)
    assert optimizer_step(opt, _no_scaler(), list(net.parameters()), grad_clip=12.0) is False
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in net.parameters())  # cleared for the next step
    assert not opt.state  # Adam's moments never saw the NaN

    # the next, finite step is taken normally
    _backward(net, poison=False)
    assert optimizer_step(opt, _no_scaler(), list(net.parameters()), grad_clip=12.0) is True
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert sorted(changed) == sorted(before)
    assert all(torch.isfinite(v).all() for v in net.state_dict().values())


def test_a_finite_step_is_clipped_as_before() -> None:
    """Same update as clip_grad_norm_ + step done by hand."""
    net, opt = _net_and_optimizer()
    ref_net, ref_opt = _net_and_optimizer()
    _backward(net, poison=False)
    _backward(ref_net, poison=False)
    assert optimizer_step(opt, _no_scaler(), list(net.parameters()), grad_clip=0.5) is True
    torch.nn.utils.clip_grad_norm_(ref_net.parameters(), 0.5)
    ref_opt.step()
    for (k, v), (_, r) in zip(net.state_dict().items(), ref_net.state_dict().items(), strict=True):
        assert torch.equal(v, r), k


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "Toy", n_cases=6)


def _poisoned_unet3d(every: int) -> Any:
    """The registered unet3d, whose first weight gets a NaN gradient on every ``every``-th
    backward pass (``every=1``: on all of them)."""
    available_models()
    real = MODELS["unet3d"]
    calls = {"n": 0}

    def poison(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] % every == 0:
            grad = grad.clone()
            grad.view(-1)[0] = float("nan")
        return grad

    def factory(**kwargs: Any) -> torch.nn.Module:
        net = real(**kwargs)
        next(net.parameters()).register_hook(poison)
        return net

    return factory


def _config(epochs: int) -> Any:
    return make_config(
        "default",
        model="unet3d",
        model_kwargs={"features": [4, 8, 16]},
        epochs=epochs,
        iters_per_epoch=4,
        batch_size=2,
        patch_size=[16, 16, 8],
        folds=3,
        fit_samples=20_000,
    )


def test_training_goes_on_past_nan_gradients_and_logs_them(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, "unet3d", _poisoned_unet3d(every=2))
    run = tmp_path / "run"
    train(toy, run, _config(epochs=2), device="cpu", tensorboard=False)
    with (run / "fold_0" / "log.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["skipped_steps"]) for r in rows] == [2, 2]  # steps 2 and 4 of each epoch
    assert all(float(r["train_loss"]) == float(r["train_loss"]) for r in rows)  # not NaN
    from lungspread.training.state import load_state, model_state_from

    weights = model_state_from(load_state(run / "fold_0")[1])
    assert weights and all(torch.isfinite(v).all() for v in weights.values())


def test_an_epoch_without_a_single_finite_step_stops_with_a_message(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, "unet3d", _poisoned_unet3d(every=1))
    with pytest.raises(ModelError, match=r"gradients of all 4 steps were not finite"):
        train(toy, tmp_path / "run", _config(epochs=1), device="cpu", tensorboard=False)


def test_cli_epoch_line_says_how_many_steps_were_skipped(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lungspread.cli.app import main

    monkeypatch.setitem(MODELS, "unet3d", _poisoned_unet3d(every=2))
    args = ["train", str(toy), "--out", str(tmp_path / "run"), "--model", "unet3d"]
    args += ["--features", "4,8,16", "--epochs", "1", "--iters-per-epoch", "4", "--batch", "2"]
    args += ["--patch", "16,16,8", "--folds", "3", "--device", "cpu", "--no-tensorboard"]
    assert main(args) == 0
    captured = capsys.readouterr()
    words = " ".join((captured.out + captured.err).split())  # the console wraps long lines
    assert "2 steps skipped (gradients not finite)" in words

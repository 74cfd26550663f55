"""One shared test runs every registered model forward and backward on a small input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lungspread.errors import ModelError
from lungspread.models import available_models, build_model
from lungspread.models.checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from lungspread.training.planning import divisor_of, model_dims

#: small widths so that every model runs in well under a second on a CPU
TINY: dict[str, dict[str, Any]] = {
    "seed-unet2d": {"features": [4, 8, 16]},
    "attention-unet2d": {"features": [4, 8, 16]},
    "resnet-unet2d": {"features": [4, 8, 16], "blocks": 1},
    "vgg-unet2d": {"features": [4, 8, 16]},
    "unet3d": {"features": [4, 8, 16]},
    "nnunet-task06-3d": {"features": [4, 4, 8, 8, 8, 8]},
    # float32: under bfloat16 autocast (its CPU training default) PyTorch's convolution backward
    # gave the 2^3 bottleneck's encoders.2.3.weight NaN gradients from finite inputs in about 3
    # of 2,000 passes, at random; training skips such steps (tests/test_training_nonfinite.py)
    "fast3d": {"features": [4, 8, 16], "bf16_training": False},
}
DEFAULT_TINY = {"features": [4, 8, 16]}


def tiny_kwargs(name: str) -> dict[str, Any]:
    return dict(TINY.get(name, DEFAULT_TINY))


def test_registry_has_the_planned_models() -> None:
    names = available_models()
    for name in (
        "seed-unet2d",
        "attention-unet2d",
        "resnet-unet2d",
        "vgg-unet2d",
        "unet3d",
        "nnunet-task06-3d",
    ):
        assert name in names


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ModelError, match=r"valid models: .*seed-unet2d"):
        build_model("no-such-net")


@pytest.mark.parametrize("name", available_models())
def test_every_model_forward_backward(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_model(name, in_channels=1, out_channels=2, **tiny_kwargs(name))
    dims = model_dims(net)
    div = divisor_of(net, dims)
    size = [max(2 * d, 8) for d in div]
    x = torch.randn(2, 1, *size)
    net.train()
    out = net(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    for o in outs:  # deep supervision: every head full size (MONAI upsamples them)
        assert tuple(o.shape) == (2, 2, *size)
    loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    named = [(n, p.grad) for n, p in net.named_parameters() if p.requires_grad]
    grads = [g for _, g in named]
    broken = [n for n, g in named if g is None or not torch.isfinite(g).all()]
    assert grads and not broken, f"no gradient or a non-finite one in {broken}"
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
    # eval mode: one tensor; the safetensors checkpoint round-trips bit for bit
    net.eval()
    with torch.no_grad():
        ref = net(x)
    assert isinstance(ref, torch.Tensor) and tuple(ref.shape) == (2, 2, *size)
    spec = ModelSpec(
        name=name,
        kwargs={"in_channels": 1, "out_channels": 2, **tiny_kwargs(name)},
        dims=dims,
        spacing_mm=[1.0, 1.0, 1.0],
        patch_size=size,
        normalization={"scheme": "zscore"},
    )
    save_checkpoint(tmp_path, spec, net.state_dict())
    loaded, spec2 = load_checkpoint(tmp_path)
    with torch.no_grad():
        again = loaded(x)
    assert spec2 == spec
    assert torch.equal(again, ref)


def test_seed_unet2d_is_the_proposals_network() -> None:
    net = build_model("seed-unet2d")
    # hand count: 3x3 convs 1-64-64 | 64-128-128 | 128-256-256, 2x2 transposed convs
    # 256->128 and 128->64, decoder convs (256-128-128) and (128-64-64), 1x1 conv 64->1
    expected = (
        (1 * 64 * 9 + 64) + (64 * 64 * 9 + 64)
        + (64 * 128 * 9 + 128) + (128 * 128 * 9 + 128)
        + (128 * 256 * 9 + 256) + (256 * 256 * 9 + 256)
        + (256 * 128 * 4 + 128) + (256 * 128 * 9 + 128) + (128 * 128 * 9 + 128)
        + (128 * 64 * 4 + 64) + (128 * 64 * 9 + 64) + (64 * 64 * 9 + 64)
        + (64 * 1 + 1)
    )  # fmt: skip
    assert expected == 1_861_697
    assert sum(p.numel() for p in net.parameters()) == expected
    kinds = {type(m).__name__ for m in net.modules()}
    assert "ReLU" in kinds and not any("Norm" in k for k in kinds)
    out = net(torch.zeros(1, 1, 256, 256))
    assert tuple(out.shape) == (1, 1, 256, 256)


def test_nnunet_task06_matches_the_published_plan() -> None:
    from lungspread.models.unet3d import NNUNET_TASK06_PATCH

    net = build_model("nnunet-task06-3d")
    assert divisor_of(net, 3) == [32, 32, 8]
    assert all(p % d == 0 for p, d in zip(NNUNET_TASK06_PATCH, [32, 32, 8], strict=True))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert max(c.out_channels for c in convs) == 320
    assert convs[0].out_channels == 32 and tuple(convs[0].kernel_size) == (3, 3, 1)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm3d)]
    acts = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert norms and acts and all(a.negative_slope == 0.01 for a in acts)
    # 6 stages, 2 convs each in the encoder, 5 decoder stages (2 convs + transposed conv)
    n_params = sum(p.numel() for p in net.parameters())
    assert 30e6 < n_params < 32e6  # nnU-Net's Task06 3d_fullres network has about 31 M


def test_plan_unet3d_anisotropic() -> None:
    from lungspread.models.unet3d import plan_unet3d

    kernels, strides = plan_unet3d((128, 128, 32), (0.8, 0.8, 2.5), max_stages=6)
    # thick slices: no pooling and 1-voxel kernels across slices until the spacing is
    # comparable (2.5 <= 2 x 1.6 after one in-plane pooling); k stops at 4 voxels
    assert strides == [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
    assert kernels[0] == [3, 3, 1] and all(k == [3, 3, 3] for k in kernels[1:])
    net = build_model("unet3d", features=[4, 4, 8, 8, 8, 8], kernels=kernels, strides=strides)
    assert divisor_of(net, 3) == [32, 32, 8]
    out = net.eval()(torch.zeros(1, 1, 64, 64, 16))
    assert tuple(out.shape) == (1, 2, 64, 64, 16)
    assert np.prod(strides, axis=0).tolist() == [32, 32, 8]

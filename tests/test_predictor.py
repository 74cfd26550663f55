"""Predictor: geometry (crop, resampling, slice axis), sliding windows, TTA, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lungspread.errors import InputError, ModelError
from lungspread.inference.predictor import Predictor, resampled_shape
from lungspread.inference.sliding import sliding_window
from lungspread.models.checkpoint import ModelSpec
from lungspread.volume import Volume


class Threshold(nn.Module):
    """A pointwise 'network': logit = 100 (x - 0.5), so probability > 0.5 exactly where x > 0.5."""

    def __init__(self, dims: int, channels: int = 1) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv = conv(1, channels, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[-1] = 100.0
            self.conv.bias[-1] = -50.0
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        out: torch.Tensor = self.conv(x)
        return out


def spec_for(
    dims: int, spacing: list[float], patch: list[int], output: str = "sigmoid"
) -> ModelSpec:
    return ModelSpec(
        name="test",
        kwargs={},
        dims=dims,
        spacing_mm=spacing,
        patch_size=patch,
        normalization={"scheme": "none"},
        output=output,
    )


def cube_volume(spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Volume:
    arr = np.zeros((40, 36, 20), np.float32)
    arr[10:30, 8:28, 5:15] = 1.0
    return Volume.from_spacing(arr, spacing, origin_mm=(-5.0, 3.0, 7.0))


@pytest.mark.parametrize(("dims", "patch"), [(3, [16, 16, 8]), (2, [16, 16])])
def test_same_spacing_is_exact(dims: int, patch: list[int]) -> None:
    ct = cube_volume()
    pred = Predictor(Threshold(dims), spec_for(dims, [1.0, 1.0, 2.0], patch))
    prob = pred.predict_proba(ct)
    assert prob.same_grid(ct) and prob.array.dtype == np.float32
    mask = pred.predict(ct)
    assert mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.array, ct.array > 0.5)
    for mirrored in (pred.predict(ct, tta=True),):
        np.testing.assert_array_equal(mirrored.array, mask.array)


def test_softmax_output_uses_the_tumor_channel() -> None:
    ct = cube_volume()
    pred = Predictor(Threshold(3, channels=2), spec_for(3, [1.0, 1.0, 2.0], [16, 16, 8], "softmax"))
    np.testing.assert_array_equal(pred.predict(ct).array, ct.array > 0.5)


def test_resampled_model_grid_comes_back_to_the_input_grid() -> None:
    ct = cube_volume()
    net = Threshold(3)
    pred = Predictor(net, spec_for(3, [2.0, 2.0, 2.0], [16, 16, 8]))
    mask = pred.predict(ct).array.astype(bool)
    # the network saw the CT at 2 mm: 40 x 36 x 20 voxels -> 20 x 18 x 20
    assert resampled_shape(ct.shape, ct.spacing, [2.0, 2.0, 2.0], 3) == (20, 18, 20)
    truth = ct.array > 0.5
    inter = np.count_nonzero(mask & truth)
    dice = 2 * inter / (np.count_nonzero(mask) + np.count_nonzero(truth))
    assert dice > 0.95
    diff = mask ^ truth
    assert not diff[:8].any() and not diff[32:].any()  # errors only at the cube's faces


def test_roi_is_zero_outside_and_exact_inside() -> None:
    ct = cube_volume()
    pred = Predictor(Threshold(3), spec_for(3, [1.0, 1.0, 2.0], [16, 16, 8]))
    roi = (slice(5, 25), slice(0, 36), slice(2, 18))
    prob = pred.predict_proba(ct, roi=roi).array
    outside = np.ones(ct.shape, bool)
    outside[roi] = False
    assert not prob[outside].any()
    np.testing.assert_array_equal(prob[roi] > 0.5, ct.array[roi] > 0.5)
    with pytest.raises(InputError, match="roi"):
        pred.predict_proba(ct, roi=(slice(5, 5), slice(None), slice(None)))


def test_2d_model_sees_slices_across_the_slice_axis() -> None:
    # a sagittally stored CT: voxel axis i runs superior-inferior
    arr = np.zeros((12, 30, 26), np.float32)
    arr[3:9, 10:20, 8:18] = 1.0
    affine = np.array([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])
    ct = Volume(arr, affine)
    assert ct.slice_axis() == 0
    net = Threshold(2)
    pred = Predictor(net, spec_for(2, [1.0, 1.0, 2.0], [16, 16]), batch_size=64)
    mask = pred.predict(ct)
    np.testing.assert_array_equal(mask.array, arr > 0.5)
    # windows are in-plane (j, k) patches of the 12 slices
    assert all(s[1:] == (1, 16, 16) for s in net.shapes)
    assert sum(s[0] for s in net.shapes) % 12 == 0


def test_sliding_window_blends_to_the_exact_pointwise_result() -> None:
    x = torch.randn(2, 1, 37, 29)
    out = sliding_window(x, [16, 16], torch.sigmoid, overlap=0.5, batch_size=5)
    torch.testing.assert_close(out, torch.sigmoid(x), atol=1e-5, rtol=0)
    small = torch.randn(1, 1, 6, 7, 5)
    out3 = sliding_window(small, [8, 8, 8], torch.sigmoid, pad_value=-3.0)
    torch.testing.assert_close(out3, torch.sigmoid(small), atol=1e-5, rtol=0)


def test_bad_inputs_and_folders(tmp_path: Path) -> None:
    pred = Predictor(Threshold(3), spec_for(3, [1.0, 1.0, 2.0], [16, 16, 8]))
    ct = cube_volume()
    bad = ct.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pred.predict_proba(ct.with_array(bad))
    with pytest.raises(ModelError, match=r"no model\.json"):
        Predictor.from_folder(tmp_path)
    with pytest.raises(ModelError, match="patch_size"):
        Predictor(Threshold(3), spec_for(3, [1.0, 1.0, 1.0], [16, 16]))


def test_from_folder_loads_a_saved_model(tmp_path: Path) -> None:
    from lungspread.models import build_model, save_checkpoint

    torch.manual_seed(0)
    net = build_model("seed-unet2d", features=[4, 8, 16])
    spec = ModelSpec(
        name="seed-unet2d",
        kwargs={"features": [4, 8, 16]},
        dims=2,
        spacing_mm=[1.0, 1.0, 2.0],
        patch_size=[16, 16],
        normalization={"scheme": "ct", "clip_hu": [-1000, 400], "mean": -300.0, "std": 400.0},
        output="sigmoid",
        threshold=0.3,
    )
    save_checkpoint(tmp_path, spec, net.state_dict())
    pred = Predictor.from_folder(tmp_path, device="cpu")
    assert pred.spec == spec and not pred.net.training
    ct = cube_volume()
    prob = pred.predict_proba(ct).array
    mask = pred.predict(ct).array
    np.testing.assert_array_equal(mask, (prob >= 0.3).astype(np.uint8))


def test_bfloat16_precision_option() -> None:
    ct = cube_volume()
    pred = Predictor(Threshold(3), spec_for(3, [1.0, 1.0, 2.0], [16, 16, 8]), precision="bfloat16")
    np.testing.assert_array_equal(pred.predict(ct).array, ct.array > 0.5)
    with pytest.raises(ModelError, match="precision"):
        Predictor(Threshold(3), spec_for(3, [1.0, 1.0, 2.0], [16, 16, 8]), precision="int8")

"""Intensity normalization: nnU-Net's CT scheme and per-image z-score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lungspread.data.msd import MSDCase, MSDDataset, write_case, write_dataset_json
from lungspread.data.normalization import (
    fit_intensity_stats,
    normalize,
    sample_foreground,
    select_cases,
)
from lungspread.errors import InputError, ModelError
from lungspread.volume import Volume


def build(root: Path, modality: str = "CT", fg_values: tuple[int, ...] = (100, 200)) -> MSDDataset:
    rng = np.random.default_rng(0)
    cases: list[MSDCase] = []
    for i, v in enumerate(fg_values):
        arr = rng.integers(-1000, 500, size=(12, 10, 6)).astype(np.int16)
        lab = np.zeros(arr.shape, np.uint8)
        lab[2:6, 3:7, 1:4] = 1
        arr[lab > 0] = v
        vol = Volume.from_spacing(arr, (1.0, 1.0, 2.0))
        cases.append(write_case(root, f"c{i}", vol, vol.with_array(lab)))
    write_dataset_json(
        root, name="N", modality={"0": modality}, labels={"0": "bg", "1": "t"}, cases=cases
    )
    return MSDDataset.open(root)


def test_ct_stats_hand_values(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", fg_values=(100, 200))
    params = fit_intensity_stats(ds, total_samples=20_000)
    # Foreground is exactly half 100 (case 0) and half 200 (case 1), 10,000 samples each.
    assert params == {"scheme": "ct", "clip_hu": [100.0, 200.0], "mean": 150.0, "std": 50.0}
    const = fit_intensity_stats(build(tmp_path / "c", fg_values=(42, 42)), total_samples=1000)
    assert const["clip_hu"] == [42.0, 42.0] and const["std"] == 0.0


def test_samples_are_nnunet_draws(tmp_path: Path) -> None:
    """Same draws as nnU-Net v2: SimpleITK array (k, j, i), foreground, RandomState(1234).choice."""
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(1)
    arr = rng.normal(0, 100, size=(9, 7, 5)).astype(np.float32)
    lab = (rng.random((9, 7, 5)) > 0.6).astype(np.uint8)
    vol = Volume.from_spacing(arr, (0.7, 0.8, 2.5))
    case = write_case(tmp_path, "c", vol, vol.with_array(lab))
    assert case.label is not None
    img = sitk.GetArrayFromImage(sitk.ReadImage(str(case.image))).astype(np.float32)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(case.label)))
    expected = np.random.RandomState(1234).choice(img[seg > 0], 500, replace=True)
    np.testing.assert_array_equal(sample_foreground(arr, lab, 500), expected)


def test_non_ct_is_per_image_zscore(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", modality="CT-8bit")
    assert fit_intensity_stats(ds) == {"scheme": "zscore"}
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(2, 2, 1)
    z = normalize(x, {"scheme": "zscore"})
    assert z.dtype == np.float32
    np.testing.assert_allclose(
        z.ravel(), (np.arange(1, 5) - 2.5) / np.std(np.arange(1, 5)), rtol=1e-6
    )
    np.testing.assert_array_equal(normalize(np.full((2, 2, 2), 7.0), {"scheme": "zscore"}), 0.0)


def test_ct_normalize_clips_then_standardizes() -> None:
    p = {"scheme": "ct", "clip_hu": [-100.0, 200.0], "mean": 50.0, "std": 25.0}
    out = normalize(np.array([-1000, -100, 50, 100, 3000], np.int16), p)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-6.0, -6.0, 0.0, 2.0, 6.0])


def test_bad_params_and_no_foreground(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match="unknown normalization scheme 'minmax'; known: ct, zscore"
    ):
        normalize(np.zeros(3), {"scheme": "minmax"})
    with pytest.raises(ModelError, match="CT normalization needs clip_hu"):
        normalize(np.zeros(3), {"scheme": "ct", "mean": 0})
    ds = build(tmp_path / "ds")
    for c in ds.cases:
        assert c.label is not None
        img = MSDDataset.open(ds.root).load_case(c)[0]
        write_case(ds.root, c.id, img, img.with_array(np.zeros(img.shape, np.uint8)))
    with pytest.raises(InputError, match="no foreground voxels"):
        fit_intensity_stats(MSDDataset.open(ds.root), total_samples=100)


def test_select_cases() -> None:
    assert select_cases(10, None) == list(range(10))
    assert select_cases(10, 3) == [0, 4, 9]
    assert select_cases(3, 10) == [0, 1, 2]

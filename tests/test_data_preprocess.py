"""Fingerprint/plan, preprocessing cache and denoising."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lungspread.data.denoise import anisotropic_diffusion, denoise, parse_method
from lungspread.data.msd import MSDCase, MSDDataset, write_case, write_dataset_json
from lungspread.data.preprocess import (
    cache_key,
    load_preprocessed,
    plan_dataset,
    preprocess_dataset,
    target_spacing_nnunet,
)
from lungspread.errors import InputError
from lungspread.volume import Volume


def build(root: Path, spacings: list[tuple[float, float, float]], depth: int = 10) -> MSDDataset:
    """CT-like cases: air (-1000) around a body box (40 HU) holding a tumor (80 HU)."""
    cases: list[MSDCase] = []
    for i, sp in enumerate(spacings):
        arr = np.full((32, 30, depth), -1000, np.int16)
        arr[6:26, 5:25, :] = 40
        lab = np.zeros(arr.shape, np.uint8)
        lab[10:14, 10:15, depth // 2 - (depth > 1) : depth // 2 + 1] = 1
        arr[lab > 0] = 80
        vol = Volume.from_spacing(arr, sp, origin_mm=(-10.0, 5.0, 100.0))
        cases.append(write_case(root, f"c{i}", vol, vol.with_array(lab), patient=f"p{i}"))
    write_dataset_json(
        root, name="Pre", modality={"0": "CT"}, labels={"0": "bg", "1": "t"}, cases=cases
    )
    return MSDDataset.open(root)


def test_target_spacing_median() -> None:
    sp = np.array([[0.7, 0.7, 1.0], [0.8, 0.8, 1.5], [0.9, 0.9, 2.5]])
    sh = np.array([[512, 512, 300], [512, 512, 200], [512, 512, 120]])
    assert target_spacing_nnunet(sp, sh) == (
        [pytest.approx(0.8), pytest.approx(0.8), pytest.approx(1.5)],
        False,
    )


def test_target_spacing_anisotropy_rule() -> None:
    # Thick slices (5 mm vs 0.7) and few of them (40 vs 512): the 10th percentile is used.
    sp = np.array([[0.7, 0.7, 5.0]] * 8 + [[0.7, 0.7, 3.0], [0.7, 0.7, 2.5]])
    sh = np.array([[512, 512, 40]] * 10)
    target, aniso = target_spacing_nnunet(sp, sh)
    assert aniso is True
    assert target[2] == pytest.approx(np.percentile(sp[:, 2], 10))  # 2.95
    assert target[:2] == [pytest.approx(0.7), pytest.approx(0.7)]
    # Thick slices but many of them: no anisotropy handling.
    assert target_spacing_nnunet(sp, np.array([[512, 512, 400]] * 10))[1] is False


def test_plan(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", [(0.8, 0.8, 2.5), (1.0, 1.0, 2.5), (0.9, 0.9, 3.0)])
    plan = plan_dataset(ds, intensity_samples=3000)
    assert plan["target_spacing_mm"] == [pytest.approx(0.9), pytest.approx(0.9), pytest.approx(2.5)]
    assert plan["is_2d"] is False and plan["n_cases"] == 3
    assert plan["cases"]["c1"] == {"shape": [32, 30, 10], "spacing_mm": [1.0, 1.0, 2.5]}
    assert plan["normalization"] == {
        "scheme": "ct",
        "clip_hu": [80.0, 80.0],
        "mean": 80.0,
        "std": 0.0,
    }
    json.dumps(plan)  # JSON-ready


def test_preprocess_body_crop_resample_and_cache(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", [(0.8, 0.8, 2.5), (1.6, 1.6, 2.5)])
    plan = plan_dataset(ds, intensity_samples=3000)
    plan["target_spacing_mm"] = [1.6, 1.6, 2.5]
    plan["normalization"] = {"scheme": "ct", "clip_hu": [-1000.0, 100.0], "mean": 0.0, "std": 100.0}
    paths = preprocess_dataset(ds, plan, tmp_path / "cache", crop="body")
    assert [p.name for p in paths] == ["c0.npz", "c1.npz"]
    image, label, meta = load_preprocessed(paths[0])
    # Body box [6:26, 5:25] of 32x30 at 0.8 mm: 20x20 voxels -> 10x10 at 1.6 mm
    assert meta["crop_box"] == [[6, 26], [5, 25], [0, 10]]
    assert image.shape == label.shape == (10, 10, 10) and image.dtype == np.float32
    # 4x5x2 tumor at half resolution: new voxels whose two old voxels are at least half tumor
    # (linear interpolation >= 0.5): 2 along i, 3 along j (5 old voxels from an even start)
    assert label.dtype == np.uint8 and label.sum() == 2 * 3 * 2
    assert meta["spacing_mm"] == [pytest.approx(1.6), pytest.approx(1.6), pytest.approx(2.5)]
    # body voxels normalize to 40/100 (float16 storage: within 1e-3)
    assert np.median(image) == pytest.approx(0.4, abs=1e-3)
    assert meta["fg_coords"].shape == (12, 3) and np.all(label[tuple(meta["fg_coords"].T)] == 1)
    # the crop's world position is kept: first voxel of the box -> origin + box start * spacing
    assert np.asarray(meta["affine"])[:3, 3] == pytest.approx(
        np.array([-10 + 6 * 0.8 + 0.4, 5 + 5 * 0.8 + 0.4, 100])
    )
    # Case 1 already at 1.6 mm: cropped, not resampled.
    _, lab1, _meta1 = load_preprocessed(paths[1])
    assert lab1.shape == (20, 20, 10) and lab1.sum() == 4 * 5 * 2
    # Cache: a second run rewrites nothing.
    mtimes = [p.stat().st_mtime_ns for p in paths]
    again = preprocess_dataset(ds, plan, tmp_path / "cache", crop="body")
    assert again == paths and [p.stat().st_mtime_ns for p in again] == mtimes
    # A changed plan goes to a new folder; a changed source file is recomputed.
    plan2 = {**plan, "target_spacing_mm": [2.0, 2.0, 2.5]}
    other = preprocess_dataset(ds, plan2, tmp_path / "cache", crop="body")
    assert other[0].parent != paths[0].parent
    assert (
        cache_key(plan, "body", None)
        != cache_key(plan, "none", None)
        != cache_key(plan, "body", "gaussian")
    )
    src = ds.cases[0].image
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    preprocess_dataset(ds, plan, tmp_path / "cache", crop="body")
    assert paths[0].stat().st_mtime_ns != mtimes[0] and paths[1].stat().st_mtime_ns == mtimes[1]
    plan_json = json.loads((paths[0].parent / "plan.json").read_text())
    assert plan_json["crop"] == "body" and plan_json["key"] == cache_key(plan, "body", None)


def test_crop_none_and_lungs_fallback(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", [(1.0, 1.0, 2.5)])
    plan = plan_dataset(ds, intensity_samples=1000)
    (p,) = preprocess_dataset(ds, plan, tmp_path / "cache", crop="none")
    image, label, meta = load_preprocessed(p)
    assert image.shape == (32, 30, 10) and meta["crop_box"] == [[0, 32], [0, 30], [0, 10]]
    # this phantom has no lungs: the lung crop falls back to the body box and keeps the tumor
    (q,) = preprocess_dataset(ds, plan, tmp_path / "cache", crop="lungs")
    _, lab, meta_l = load_preprocessed(q)
    assert meta_l["crop_box"] == [[6, 26], [5, 25], [0, 10]] and lab.sum() == label.sum()
    with pytest.raises(InputError, match="unknown crop 'liver'"):
        preprocess_dataset(ds, plan, tmp_path / "cache", crop="liver")


def test_2d_cases_keep_their_slice(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", [(0.8, 0.8, 1.5), (1.2, 1.2, 1.5)], depth=1)
    plan = plan_dataset(ds, intensity_samples=1000)
    assert plan["is_2d"] is True and plan["resample_slice_axis"] is False
    paths = preprocess_dataset(ds, plan, tmp_path / "cache", crop="none")
    for p in paths:
        image, _label, meta = load_preprocessed(p)
        assert image.shape[2] == 1 and meta["spacing_mm"][0] == pytest.approx(1.0, abs=0.05)


def test_tumor_never_cropped_away(tmp_path: Path) -> None:
    # Label outside the body box (e.g. a mislabelled voxel in air): the box is widened.
    ds = build(tmp_path / "ds", [(1.0, 1.0, 2.5)])
    img, lab = ds.load_case("c0")
    assert lab is not None
    arr = lab.array.copy()
    arr[1, 1, 0] = 1
    write_case(ds.root, "c0", img, lab.with_array(arr))
    plan = plan_dataset(ds, intensity_samples=1000)
    (p,) = preprocess_dataset(ds, plan, tmp_path / "cache", crop="body")
    _, label, meta = load_preprocessed(p)
    assert meta["crop_box"][0][0] == 1 and label.sum() == arr.sum()


def test_load_preprocessed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="preprocessed case not found"):
        load_preprocessed(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"junk")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(InputError, match="corrupt"):
        load_preprocessed(tmp_path / "y.npz")


# -- denoising --------------------------------------------------------------------------------
def _step_image(noise: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    clean = np.zeros((40, 40, 12), np.float32)
    clean[20:] = 400.0  # a 400 HU step edge
    return clean, clean + rng.normal(0, noise, clean.shape).astype(np.float32)


def test_gaussian_and_median_reduce_noise() -> None:
    _clean, noisy = _step_image()
    for method in ("gaussian:1.0", "median"):
        out = denoise(noisy, (1.0, 1.0, 1.0), method)
        assert out.dtype == np.float32 and out.shape == noisy.shape
        assert out[2:18].std() < 0.6 * noisy[2:18].std()


def test_anisotropic_diffusion_preserves_edges() -> None:
    clean, noisy = _step_image()
    ani = denoise(noisy, (1.0, 1.0, 1.0), "anisotropic")
    gau = denoise(noisy, (1.0, 1.0, 1.0), "gaussian:1.0")
    flat = slice(2, 17)
    assert ani[flat].std() < 0.7 * noisy[flat].std()  # smooths flat regions
    edge_err_ani = np.abs(ani[18:22] - clean[18:22]).mean()
    edge_err_gau = np.abs(gau[18:22] - clean[18:22]).mean()
    assert edge_err_ani < 0.5 * edge_err_gau  # keeps the step sharp


def test_anisotropic_slabs_are_exact() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 50, (12, 11, 40)).astype(np.float32)
    whole = anisotropic_diffusion(x, (0.8, 0.8, 2.0), kappa=30.0, iterations=4, slab=1000)
    slabbed = anisotropic_diffusion(x, (0.8, 0.8, 2.0), kappa=30.0, iterations=4, slab=7)
    np.testing.assert_allclose(slabbed, whole, rtol=1e-6, atol=1e-4)


def test_single_slice_is_smoothed_in_plane_only() -> None:
    x = np.zeros((9, 9, 1), np.float32)
    x[4, 4, 0] = 100
    out = denoise(x, (1.0, 1.0, 5.0), "gaussian:1")
    assert out.sum() == pytest.approx(100, rel=1e-4) and out[4, 4, 0] < 100


def test_denoise_spec_errors() -> None:
    assert parse_method("Perona-Malik:20:3") == ("anisotropic", [20.0, 3.0])
    with pytest.raises(InputError, match="unknown denoising method 'wavelet'"):
        parse_method("wavelet")
    with pytest.raises(InputError, match="must be numbers"):
        parse_method("gaussian:abc")
    with pytest.raises(InputError, match="positive"):
        parse_method("gaussian:-1")


def test_preprocess_with_denoise(tmp_path: Path) -> None:
    ds = build(tmp_path / "ds", [(1.0, 1.0, 2.5)])
    plan = plan_dataset(ds, intensity_samples=1000)
    plan["normalization"] = {"scheme": "zscore"}
    (a,) = preprocess_dataset(ds, plan, tmp_path / "cache", crop="none")
    (b,) = preprocess_dataset(ds, plan, tmp_path / "cache", crop="none", denoise="gaussian:2")
    assert a.parent != b.parent
    ia, _, _ = load_preprocessed(a)
    ib, _, mb = load_preprocessed(b)
    assert mb["denoise"] == "gaussian:2" and not np.allclose(ia, ib)

"""The CT sanity check: real CTs and crops pass, non-CT images are refused with what was found."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from lungspread.ct_check import assess_ct, check_ct
from lungspread.errors import NotCTError
from lungspread.io import read_volume
from lungspread.volume import Volume


def _chest_like(shape: tuple[int, int, int] = (40, 40, 20), pad: float | None = None) -> np.ndarray:
    """A crude chest: air outside, soft tissue body, two lungs at -850, FOV padding optional."""
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    img = np.full(shape, -1000.0)
    body = (x / 0.9) ** 2 + (y / 0.7) ** 2 < 1
    lungs = ((x - 0.4) / 0.3) ** 2 + (y / 0.45) ** 2 < 1
    lungs |= ((x + 0.4) / 0.3) ** 2 + (y / 0.45) ** 2 < 1
    img[body] = 40.0
    img[lungs] = -850.0
    if pad is not None:
        img[x**2 + y**2 > 1] = pad
    return np.rint(img + rng.normal(0, 20, shape)).astype(np.int16)


@pytest.mark.parametrize("pad", [None, -2048.0, -3024.0, -32768.0])
def test_chest_like_volumes_pass(pad: float | None) -> None:
    v = Volume.from_spacing(_chest_like(pad=pad), (1.0, 1.0, 2.0))
    check = check_ct(v)
    assert check.looks_like_ct and check.ok and not check.forced
    assert check.stats["air_fraction"] > 0.2
    assert "looks like CT" in check.summary()


def test_real_ct_and_nodule_crops_pass(shared_data: Path) -> None:
    for name in ("lidc-idri-0001", "lidc-idri-0002"):
        check = check_ct(read_volume(shared_data / name / "ct.nii.gz"))
        assert check.looks_like_ct, check.summary()
        assert check.stats["min"] in (-2048.0, -3024.0)  # padding outside the FOV is accepted
    crops = sorted((shared_data / "lidc-nodule-vois" / "image").glob("*.nii.gz"))[::40]
    assert len(crops) >= 20
    for path in crops:
        assert check_ct(read_volume(path)).looks_like_ct, path


def test_msd_patches_in_unit_range_are_refused(shared_data: Path) -> None:
    with h5py.File(shared_data / "msd-lung-patches" / "val_patches.h5") as fh:
        patches = fh["images"][:8, 0]  # (8, 48, 48), intensities windowed to [0, 1]
    v = Volume.from_spacing(np.moveaxis(patches, 0, -1), (2.0, 2.0, 2.0), meta={"source": "p.h5"})
    with pytest.raises(NotCTError) as err:
        check_ct(v)
    msg = str(err.value)
    assert msg.startswith("p.h5: intensities span 0.00..1.00")
    assert "expected CT in HU (air about -1000, soft tissue 0..100)" in msg
    assert "pass --force-ct" in msg


def test_mri_like_is_refused_and_can_be_forced() -> None:
    rng = np.random.default_rng(1)
    mri = rng.gamma(2.0, 300.0, (30, 30, 20)).astype(np.float32)  # positive, 0..~3000
    v = Volume.from_spacing(mri, (1.0, 1.0, 1.0))
    with pytest.raises(NotCTError, match=r"0\.00% of voxels near -1000 HU \(looks like MRI"):
        check_ct(v, source="mri.nii.gz")
    forced = check_ct(v, force=True)
    assert forced.forced and forced.ok and not forced.looks_like_ct
    assert forced.findings[0].code == "no_air"
    assert forced.summary().startswith("forced as CT despite")


def test_ct_without_rescale_is_refused() -> None:
    raw = (_chest_like().astype(np.int32) + 1024).astype(np.uint16)  # air at ~24
    with pytest.raises(NotCTError, match="CT without its rescale to HU"):
        check_ct(Volume.from_spacing(raw, (1, 1, 1)))


def test_constant_volume() -> None:
    v = Volume.from_spacing(np.full((20, 20, 20), -1000, np.int16), (1, 1, 1))
    with pytest.raises(NotCTError, match="all voxels have the same value -1000"):
        check_ct(v)
    assert check_ct(v, force=True).forced


@pytest.mark.parametrize(
    ("shape", "code", "words"),
    [
        ((64, 64, 1), "single_slice", "64x64x1 voxels: a dimension of 1"),
        ((1, 1, 1), "single_slice", "1x1x1 voxels"),
        ((8, 8, 8), "too_small", "only 512 voxels"),
    ],
)
def test_shapes_that_are_not_3d_ct_cannot_be_forced(
    shape: tuple[int, int, int], code: str, words: str
) -> None:
    arr = np.full(shape, -1000, np.int16)
    arr.flat[::2] = 40
    v = Volume.from_spacing(arr, (1, 1, 1))
    assert assess_ct(v).findings[0].code == code
    with pytest.raises(NotCTError, match=words) as err:
        check_ct(v, force=True)
    assert "--force-ct" not in str(err.value)


def test_nan_and_inf_are_refused_even_when_forced() -> None:
    arr = _chest_like().astype(np.float32)
    arr[0, 0, 0] = np.nan
    arr[1, 0, 0] = np.inf
    arr[2, 0, 0] = -np.inf
    v = Volume.from_spacing(arr, (1, 1, 1))
    with pytest.raises(
        NotCTError, match=r"3 of 32,000 voxels are not finite \(1 NaN, 2 infinite\)"
    ):
        check_ct(v, force=True)


def test_bool_mask_is_refused_as_unit_range() -> None:
    v = Volume.from_spacing(_chest_like() > 0, (1, 1, 1))
    with pytest.raises(NotCTError, match=r"intensities span 0\.00\.\.1\.00"):
        check_ct(v)


def test_soft_tissue_crop_without_air_is_refused() -> None:
    arr = np.random.default_rng(2).normal(40, 30, (30, 30, 10)).astype(np.int16)
    with pytest.raises(NotCTError, match="no air or lung in the image"):
        check_ct(Volume.from_spacing(arr, (1, 1, 1)))


def test_to_dict_is_plain() -> None:
    d = check_ct(Volume.from_spacing(_chest_like(), (1, 1, 1))).to_dict()
    assert d["looks_like_ct"] is True and d["findings"] == []
    assert set(d["stats"]) >= {"p0.5", "p50", "p99.5", "air_fraction"}

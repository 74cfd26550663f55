"""DICOM series reading: real LIDC slices against their NIfTI, and folders built from them."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lungspread.errors import GeometryError, InputError
from lungspread.io import read_volume
from lungspread.io.dicom import read_dicom_series, write_dicom_series
from lungspread.volume import Volume

SERIES_UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"


@pytest.fixture(scope="module")
def lidc1(shared_data: Path) -> Path:
    return shared_data / "lidc-idri-0001"


@pytest.fixture(scope="module")
def dicom_vol(lidc1: Path) -> Volume:
    return read_dicom_series(lidc1 / "dicom")


@pytest.fixture(scope="module")
def nifti_vol(lidc1: Path) -> Volume:
    return read_volume(lidc1 / "ct.nii.gz")


def _positions(folder: Path) -> dict[Path, float]:
    return {
        p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
        for p in sorted(folder.glob("*.dcm"))
    }


def _copy_series(src: Path, dst: Path) -> dict[Path, float]:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.glob("*.dcm"):
        shutil.copy(p, dst / p.name)
    return _positions(dst)


# -- the real series against its NIfTI ------------------------------------------------------


def test_file_names_are_not_in_slice_order(lidc1: Path) -> None:
    pos = list(_positions(lidc1 / "dicom").values())
    assert pos != sorted(pos) and pos != sorted(pos, reverse=True)


def test_real_dicom_matches_nifti_slab_voxel_for_voxel(
    dicom_vol: Volume, nifti_vol: Volume
) -> None:
    assert dicom_vol.shape == (512, 512, 32)
    assert dicom_vol.array.dtype == np.int16
    # where the DICOM's first voxel sits in the NIfTI grid, from world positions alone
    k0f = nifti_vol.world_to_index(dicom_vol.origin)
    np.testing.assert_allclose(k0f, [0, 0, 74], atol=1e-6)  # z = -155 mm = -340 + 74 * 2.5
    slab = nifti_vol.array[:, :, 74:106]
    assert np.array_equal(dicom_vol.array, slab)
    # the same voxel maps to the same position (NIfTI stores float32: 171.7 -> 171.69999695)
    expected = nifti_vol.affine.copy()
    expected[:3, 3] = nifti_vol.index_to_world([0, 0, 74])
    np.testing.assert_allclose(dicom_vol.affine, expected, rtol=0, atol=1e-5)
    corners = np.array([[0, 0, 0], [511, 0, 31], [0, 511, 17], [511, 511, 31], [100, 300, 5]])
    np.testing.assert_allclose(
        dicom_vol.index_to_world(corners),
        nifti_vol.index_to_world(corners + np.array([0, 0, 74])),
        atol=1e-5,
    )


def test_real_dicom_meta_records_uids_and_files(dicom_vol: Volume, lidc1: Path) -> None:
    d = dicom_vol.meta["dicom"]
    assert d["SeriesInstanceUID"] == SERIES_UID
    assert d["StudyInstanceUID"].startswith("1.3.6.1.4.1.14519.5.2.1.6279.6001.")
    assert d["FrameOfReferenceUID"].startswith("1.3.6.1.4.1.14519.5.2.1.6279.6001.")
    assert d["rescale_intercept"] == [-1024.0]
    # files in slice order: first is z = -155 (000004.dcm), last z = -77.5 (000005.dcm)
    assert Path(d["files"][0]).name == "000004.dcm"
    assert Path(d["files"][-1]).name == "000005.dcm"
    assert len(d["files"]) == 32
    assert dicom_vol.meta["modality"] == "CT"


def test_single_file_path_reads_its_series(lidc1: Path, dicom_vol: Volume) -> None:
    v = read_volume(lidc1 / "dicom" / "000053.dcm")
    assert np.array_equal(v.array, dicom_vol.array)


# -- folders built from the real slices ------------------------------------------------------


def test_shuffled_names_and_junk_files_give_the_same_volume(
    lidc1: Path, tmp_path: Path, dicom_vol: Volume
) -> None:
    src = sorted((lidc1 / "dicom").glob("*.dcm"))
    names = [f"img{i:03d}" for i in range(len(src))]  # no suffix, new random order
    random.Random(5).shuffle(names)
    sub = tmp_path / "nested" / "deeper"
    sub.mkdir(parents=True)
    for p, n in zip(src, names, strict=True):
        shutil.copy(p, (sub if n < "img016" else tmp_path) / n)
    (tmp_path / "README.txt").write_text("not dicom")
    (tmp_path / "notes.dcm").write_bytes(b"\x00" * 300)  # .dcm name, not DICOM
    (tmp_path / ".hidden").write_bytes(b"junk")
    v = read_dicom_series(tmp_path)
    assert np.array_equal(v.array, dicom_vol.array)
    np.testing.assert_array_equal(v.affine, dicom_vol.affine)


def test_missing_slice_is_refused_with_its_position(lidc1: Path, tmp_path: Path) -> None:
    pos = _copy_series(lidc1 / "dicom", tmp_path)
    victim = next(p for p, z in pos.items() if z == -120.0)
    victim.unlink()
    with pytest.raises(GeometryError) as err:
        read_dicom_series(tmp_path)
    msg = str(err.value)
    assert "missing slice" in msg
    assert "-122.50 and -117.50 (5.00 mm)" in msg
    assert "expected 2.50 mm" in msg
    assert "--allow-uneven" in msg
    assert str(tmp_path) in msg


def test_missing_slice_allowed_is_interpolated(
    lidc1: Path, tmp_path: Path, dicom_vol: Volume, caplog: pytest.LogCaptureFixture
) -> None:
    pos = _copy_series(lidc1 / "dicom", tmp_path)
    next(p for p, z in pos.items() if z == -120.0).unlink()
    with caplog.at_level(logging.WARNING, logger="lungspread.io.dicom"):
        v = read_dicom_series(tmp_path, allow_uneven=True)
    assert "interpolated 31 slices" in caplog.text
    assert v.shape == (512, 512, 32)
    np.testing.assert_allclose(v.affine, dicom_vol.affine, atol=1e-9)
    k = 14  # z = -155 + 14 * 2.5 = -120, the removed slice
    below = dicom_vol.array[:, :, k - 1].astype(np.float32)
    above = dicom_vol.array[:, :, k + 1].astype(np.float32)
    expected = np.rint((below + above) / 2)
    # the midpoint of the two neighbours (float32 rounding may move a .5 by one)
    assert np.abs(v.array[:, :, k].astype(np.float32) - expected).max() <= 1
    assert np.array_equal(v.array[:, :, k + 1 :], dicom_vol.array[:, :, k + 1 :])
    assert "interpolated" in v.meta["dicom"]["resampled"]
    assert len(v.meta["dicom"]["original_slice_positions_mm"]) == 31


def test_two_series_pick_the_ct_and_say_so(
    lidc1: Path, tmp_path: Path, dicom_vol: Volume, caplog: pytest.LogCaptureFixture
) -> None:
    _copy_series(lidc1 / "dicom", tmp_path / "ct")
    # An MR "series" with more slices than the CT: a different volume, Modality MR.
    mr = Volume(np.full((16, 16, 40), 300, np.int16), np.diag([1.0, 1.0, 2.0, 1.0]))
    write_dicom_series(
        mr, tmp_path / "mr", modality="MR", series_uid="1.2.826.0.1.3680043.8.498.77"
    )
    # And a shorter CT series (a scout-like subset) with its own UID.
    short = tmp_path / "short"
    short.mkdir()
    for i, p in enumerate(sorted((lidc1 / "dicom").glob("*.dcm"))[:3]):
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.78"
        ds.save_as(short / f"s{i}.dcm")
    with caplog.at_level(logging.WARNING, logger="lungspread.io.dicom"):
        v = read_dicom_series(tmp_path)
    assert np.array_equal(v.array, dicom_vol.array)
    assert "found 3 series" in caplog.text and f"using {SERIES_UID}" in caplog.text
    found = v.meta["dicom"]["series_found"]
    assert len(found) == 3
    assert found[0].startswith(SERIES_UID) and "CT, 32 slices" in found[0]
    assert any("MR, 40 slices" in f for f in found)
    assert "found 3 series" in v.meta["note"]
    # An explicit choice wins; an unknown UID lists what is there.
    mr_read = read_dicom_series(tmp_path, series_uid="1.2.826.0.1.3680043.8.498.77")
    assert mr_read.meta["modality"] == "MR" and mr_read.shape == (16, 16, 40)
    with pytest.raises(InputError, match=r"no series with SeriesInstanceUID 9\.9; found .*MR"):
        read_dicom_series(tmp_path, series_uid="9.9")


def test_changed_rescale_keeps_hu(lidc1: Path, tmp_path: Path, dicom_vol: Volume) -> None:
    """Store raw = (HU + 1024) / 2 with slope 2 on some slices, HU + 2000 with intercept -2000
    on others: the HU read back must not change."""
    files = sorted((lidc1 / "dicom").glob("*.dcm"))
    for i, p in enumerate(files):
        ds = pydicom.dcmread(p)
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        if i % 2 == 0:
            raw = hu + 2000  # int16 range is enough, padding -2048 -> -48
            ds.RescaleIntercept = "-2000"
            ds.RescaleSlope = "1"
        else:
            even = hu - (hu % 2)  # make HU even so slope 2 is exact
            raw = (even + 1024) // 2
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "2"
            hu = even
        ds.PixelData = raw.astype(np.int16).tobytes()
        ds.PixelRepresentation = 1
        ds.save_as(tmp_path / p.name)
    v = read_dicom_series(tmp_path)
    assert v.array.dtype == np.int16
    ref = dicom_vol.array.astype(np.int32)
    # files stored with slope 2 lost their last bit, the rest is identical
    names_in_order = [Path(f).name for f in v.meta["dicom"]["files"]]
    for k, name in enumerate(names_in_order):
        i = [p.name for p in files].index(name)
        want = ref[:, :, k] if i % 2 == 0 else ref[:, :, k] - (ref[:, :, k] % 2)
        np.testing.assert_array_equal(v.array[:, :, k], want)
    assert sorted(v.meta["dicom"]["rescale_slope"]) == [1.0, 2.0]


def test_fractional_rescale_gives_float32(lidc1: Path, tmp_path: Path, dicom_vol: Volume) -> None:
    for p in (lidc1 / "dicom").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.RescaleSlope = "0.5"
        ds.RescaleIntercept = "-1024.25"
        ds.save_as(tmp_path / p.name)
    v = read_dicom_series(tmp_path)
    assert v.array.dtype == np.float32
    raw = dicom_vol.array.astype(np.float64) + 1024  # stored values
    assert float(np.abs(v.array - (raw * 0.5 - 1024.25)).max()) < 1e-3


def _synthetic(tmp_path: Path, n: int = 6) -> tuple[Volume, list[Path]]:
    arr = np.arange(8 * 7 * n, dtype=np.int16).reshape(8, 7, n) - 1000
    aff = np.diag([-0.8, -0.9, 2.0, 1.0])
    aff[:3, 3] = [40.0, 50.0, -60.0]
    vol = Volume(arr, aff)
    return vol, write_dicom_series(vol, tmp_path, series_uid="1.2.826.0.1.3680043.8.498.90")


def test_write_then_read_dicom_round_trip_and_orientation(tmp_path: Path) -> None:
    vol, paths = _synthetic(tmp_path)
    ds = pydicom.dcmread(paths[1])
    # DICOM: LPS, row direction along +x (L) since RAS i points to -x
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    assert [float(v) for v in ds.ImagePositionPatient] == [-40.0, -50.0, -58.0]
    assert [float(v) for v in ds.PixelSpacing] == [0.9, 0.8]  # (between rows, between columns)
    assert ds.pixel_array.shape == (7, 8)  # rows = j, columns = i
    assert ds.pixel_array[2, 5] == vol.array[5, 2, 1]
    back = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-12)


def test_uneven_spacing_refused_or_resampled(tmp_path: Path) -> None:
    vol, paths = _synthetic(tmp_path, n=6)
    # move slice 3 from z=-54 to -53.4 (0.6 mm, 30% of the spacing): uneven, not missing
    ds = pydicom.dcmread(paths[3])
    ds.ImagePositionPatient = [-40.0, -50.0, -53.4]
    ds.save_as(paths[3])
    with pytest.raises(GeometryError, match=r"uneven slice spacing: gaps from 1\.400 to 2\.600"):
        read_dicom_series(tmp_path)
    v = read_dicom_series(tmp_path, allow_uneven=True)
    assert v.shape == (8, 7, 6)
    assert v.spacing[2] == pytest.approx(2.0)
    # target z = -54 lies between -56 (slice 2) and -53.4 (slice 3): weight 2/2.6
    w = 2.0 / 2.6
    expected = vol.array[:, :, 2] + w * (vol.array[:, :, 3].astype(float) - vol.array[:, :, 2])
    np.testing.assert_array_equal(v.array[:, :, 3], np.rint(expected).astype(np.int16))


def test_gantry_tilt_refused_or_corrected(tmp_path: Path) -> None:
    vol, paths = _synthetic(tmp_path, n=6)
    # tilt: each slice moves 0.9 mm (one pixel row) along y per slice
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = [-40.0, -50.0 + 0.9 * k, -60.0 + 2.0 * k]
        ds.save_as(p)
    with pytest.raises(GeometryError, match=r"gantry tilt of about 24\.23 degrees"):
        read_dicom_series(tmp_path)
    v = read_dicom_series(tmp_path, allow_tilt=True)
    assert v.meta["dicom"]["tilt_corrected_deg"] == pytest.approx(24.228, abs=1e-3)
    assert not v.is_oblique and v.spacing == pytest.approx((0.8, 0.9, 2.0))
    # slice k's pixel (i, j) is now at grid row j + k: shifted by k rows
    for k in range(6):
        np.testing.assert_array_equal(v.array[:, k:, k], vol.array[:, : 7 - k, k])


def test_orientation_mixed_in_one_series_is_refused(tmp_path: Path) -> None:
    _, paths = _synthetic(tmp_path, n=4)
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(paths[2])
    with pytest.raises(GeometryError, match="differ in orientation"):
        read_dicom_series(tmp_path)


def test_duplicate_positions_are_refused(tmp_path: Path) -> None:
    _, paths = _synthetic(tmp_path, n=4)
    ds = pydicom.dcmread(paths[2])
    ds.ImagePositionPatient = pydicom.dcmread(paths[1]).ImagePositionPatient
    ds.save_as(paths[2])
    with pytest.raises(GeometryError, match=r"1 duplicate slice position\(s\) at -58\.00"):
        read_dicom_series(tmp_path)

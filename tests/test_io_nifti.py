"""NIfTI reading: scaling, dimensions, NIfTI-2, and the real LIDC files."""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from lungspread.errors import InputError
from lungspread.io import read_volume, write_volume
from lungspread.volume import Volume

ARR = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) * 10 - 100
AFF = np.array([[-0.5, 0, 0, 10.0], [0, -0.75, 0, 20.0], [0, 0, 2.0, -30.0], [0, 0, 0, 1]])


def test_nibabel_file_positions_by_hand(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(ARR, AFF), tmp_path / "x.nii.gz")
    v = read_volume(tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(v.array, ARR)
    assert v.array.dtype == np.int16
    # voxel (2, 1, 1) -> (10 - 1.0, 20 - 0.75, -30 + 2)
    np.testing.assert_allclose(v.index_to_world([2, 1, 1]), [9.0, 19.25, -28.0])
    assert v.axis_codes() == ("L", "P", "S")


def _save_scaled(path: Path, raw: np.ndarray, slope: float, inter: float) -> None:
    """nibabel recomputes scaling on save, so patch scl_slope/scl_inter in the file."""
    nib.save(nib.Nifti1Image(raw, AFF, dtype=raw.dtype), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<ff", data, 112, slope, inter)
    path.write_bytes(bytes(data))


def test_scaled_data_int16_when_exact_else_float32(tmp_path: Path) -> None:
    _save_scaled(tmp_path / "a.nii", (ARR + 1124).astype(np.uint16), 1.0, -1024.0)
    a = read_volume(tmp_path / "a.nii")
    assert a.array.dtype == np.int16
    np.testing.assert_array_equal(a.array, ARR + 100)
    _save_scaled(tmp_path / "b.nii", ARR, 0.5, 0.25)
    b = read_volume(tmp_path / "b.nii")
    assert b.array.dtype == np.float32
    np.testing.assert_allclose(b.array, ARR * 0.5 + 0.25)


def test_2d_file_becomes_one_slice_and_4d_singleton_squeezes(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(ARR[:, :, 0], AFF), tmp_path / "flat.nii")
    v = read_volume(tmp_path / "flat.nii")
    assert v.shape == (4, 3, 1)
    nib.save(nib.Nifti1Image(ARR[..., None], AFF), tmp_path / "t1.nii.gz")
    v = read_volume(tmp_path / "t1.nii.gz")
    assert v.shape == (4, 3, 2)
    np.testing.assert_array_equal(v.array, ARR)


def test_nifti2_reads(tmp_path: Path) -> None:
    nib.save(nib.Nifti2Image(ARR, AFF), tmp_path / "x.nii")
    v = read_volume(tmp_path / "x.nii")
    np.testing.assert_array_equal(v.array, ARR)
    np.testing.assert_array_equal(v.affine, AFF)


def test_int64_is_written_as_int32_when_it_fits(tmp_path: Path) -> None:
    vol = Volume(ARR.astype(np.int64), AFF)
    path = write_volume(vol, tmp_path / "x.nii.gz")
    assert nib.load(path).get_data_dtype() == np.int32
    np.testing.assert_array_equal(read_volume(path).array, ARR)


def test_header_without_orientation_is_flagged(tmp_path: Path) -> None:
    img = nib.Nifti1Image(ARR, AFF)
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "x.nii")
    assert "no orientation" in read_volume(tmp_path / "x.nii").meta["warning"]


def test_gzip_written_deterministically(tmp_path: Path) -> None:
    vol = Volume(ARR, AFF)
    a = write_volume(vol, tmp_path / "a.nii.gz").read_bytes()
    b = write_volume(vol, tmp_path / "b.nii.gz").read_bytes()
    assert a == b


def test_truncated_gz_names_the_sizes(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((30, 30, 30), np.int16), AFF), tmp_path / "x.nii")
    import gzip

    raw = (tmp_path / "x.nii").read_bytes()
    (tmp_path / "y.nii.gz").write_bytes(gzip.compress(raw[:20000]))
    with pytest.raises(InputError, match=r"truncated: header says 54,000 bytes from offset 352"):
        read_volume(tmp_path / "y.nii.gz")


# -- real data --------------------------------------------------------------------------------


def test_lidc_0002_spacing(shared_data: Path) -> None:
    v = read_volume(shared_data / "lidc-idri-0002" / "ct.nii.gz")
    assert v.shape == (512, 512, 261)
    assert v.array.dtype == np.int16
    np.testing.assert_allclose(v.spacing, (0.682, 0.682, 1.25), atol=1e-3)


def test_lidc_0001_nodule_mask_overlays_the_ct(shared_data: Path) -> None:
    """Inside the nodule mask the CT is soft tissue; a 2-4 voxel shell around it is mostly lung."""
    ct = read_volume(shared_data / "lidc-idri-0001" / "ct.nii.gz")
    nod = read_volume(shared_data / "lidc-idri-0001" / "nodules.nii.gz")
    assert nod.same_grid(ct, atol_mm=1e-4)
    mask = nod.array > 0
    volume_ml = mask.sum() * ct.voxel_volume_mm3 / 1000
    assert 7.0 < volume_ml < 8.6  # README: about 7.8 mL
    inside = ct.array[mask].astype(float)
    assert inside.mean() > -300
    # shell 2-4 voxels in-plane (about 1.4-2.8 mm) around the nodule, on a crop for speed
    lo = np.maximum(np.argwhere(mask).min(axis=0) - 6, 0)
    hi = np.argwhere(mask).max(axis=0) + 7
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    m, hu = mask[box], ct.array[box]
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    shell = ndimage.binary_dilation(m, in_plane, iterations=4) & ~ndimage.binary_dilation(
        m, in_plane, iterations=2
    )
    hu_shell = hu[shell].astype(float)
    assert np.median(hu_shell) < -500
    assert (hu_shell < -500).mean() > 0.5
    # the nodule is in the patient-left lung: RAS x < 0 (+x is the patient's right)
    centre = ct.index_to_world(np.argwhere(mask).mean(axis=0))
    assert centre[0] < 0

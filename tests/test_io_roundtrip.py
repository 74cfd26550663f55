"""Round trips through every writable format are exact, and other readers agree on geometry.

"Other readers" are independent implementations: nibabel for NIfTI, SimpleITK (the ITK code
3D Slicer uses) for NIfTI, NRRD and MetaImage, and pynrrd's own reader for NRRD.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from lungspread.errors import OutputError
from lungspread.io import read_volume, write_volume
from lungspread.volume import LPS_TO_RAS, Volume

SUFFIXES = ("nii.gz", "nii", "nrrd", "mha")


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _affine(kind: str) -> np.ndarray:
    a = np.eye(4)
    if kind == "ras":
        a[:3, :3] = np.diag([0.703125, 0.703125, 2.5])
        a[:3, 3] = [-180.0, -171.699997, -340.0]
    elif kind == "lps":  # what DICOM-derived NIfTIs look like: i -> L, j -> P
        a[:3, :3] = np.diag([-0.68164098, -0.68164098, 1.25])
        a[:3, 3] = [175.5, 174.5, -334.5]
    elif kind == "oblique":
        rot = _rotation(np.array([0.3, -0.5, 0.8]), 0.4)
        a[:3, :3] = rot @ np.diag([0.7, 0.81, 2.3])
        a[:3, 3] = [12.345678901234, -171.699997, -340.1]
    else:  # permuted axes (sagittal-like storage): i -> S, j -> A, k -> L
        a[:3, :3] = np.array([[0, 0, -1.5], [0, 0.9, 0], [1.1, 0, 0]])
        a[:3, 3] = [80.0, -30.0, 5.0]
    return a


ARRAYS = {
    "int16": np.random.default_rng(1).integers(-3024, 3071, (9, 7, 5)).astype(np.int16),
    "uint16": np.random.default_rng(2).integers(0, 65535, (9, 7, 5)).astype(np.uint16),
    "int8": np.random.default_rng(3).integers(-128, 127, (9, 7, 5)).astype(np.int8),
    "uint8": np.random.default_rng(4).integers(0, 255, (9, 7, 5)).astype(np.uint8),
    "float32": np.random.default_rng(5).normal(size=(9, 7, 5)).astype(np.float32),
    "float64": np.random.default_rng(6).normal(size=(9, 7, 5)),
    "int32": np.random.default_rng(7).integers(-(2**31), 2**31 - 1, (9, 7, 5)).astype(np.int32),
}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["ras", "lps", "oblique", "permuted"])
def test_round_trip_is_bit_exact(tmp_path: Path, suffix: str, kind: str) -> None:
    vol = Volume(ARRAYS["int16"], _affine(kind))
    path = write_volume(vol, tmp_path / f"x.{suffix}")
    back = read_volume(path)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_array_equal(back.affine, vol.affine)
    assert list(tmp_path.iterdir()) == [path]  # no temp files left


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", list(ARRAYS))
def test_dtypes_round_trip(tmp_path: Path, suffix: str, dtype: str) -> None:
    vol = Volume(ARRAYS[dtype], _affine("lps"))
    back = read_volume(write_volume(vol, tmp_path / f"x.{suffix}"))
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_bool_and_float16_are_widened(tmp_path: Path, suffix: str) -> None:
    mask = ARRAYS["uint8"] > 128
    back = read_volume(write_volume(Volume(mask, _affine("ras")), tmp_path / f"m.{suffix}"))
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, mask.astype(np.uint8))
    half = ARRAYS["float32"].astype(np.float16)
    back = read_volume(write_volume(Volume(half, _affine("ras")), tmp_path / f"h.{suffix}"))
    assert back.array.dtype == np.float32
    np.testing.assert_array_equal(back.array, half.astype(np.float32))


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["ras", "lps", "oblique", "permuted"])
def test_simpleitk_sees_the_same_world_positions(tmp_path: Path, suffix: str, kind: str) -> None:
    """ITK (3D Slicer's reader) puts every voxel where lungspread says it is."""
    vol = Volume(ARRAYS["int16"], _affine(kind))
    path = write_volume(vol, tmp_path / f"x.{suffix}")
    img = sitk.ReadImage(str(path))
    assert img.GetSize() == vol.shape
    # SimpleITK's array is [k, j, i]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img).transpose(2, 1, 0), vol.array)
    tol = 1e-4 if suffix.startswith("nii") else 1e-9  # NIfTI-1 stores float32
    for ijk in [(0, 0, 0), (8, 0, 0), (0, 6, 4), (8, 6, 4), (3, 2, 1)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = (LPS_TO_RAS @ [*lps, 1.0])[:3]
        np.testing.assert_allclose(ras, vol.index_to_world(ijk), atol=tol)


@pytest.mark.parametrize("kind", ["lps", "oblique"])
def test_nibabel_reads_our_nifti_affine(tmp_path: Path, kind: str) -> None:
    vol = Volume(ARRAYS["int16"], _affine(kind))
    path = write_volume(vol, tmp_path / "x.nii.gz")
    img = nib.load(path)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), vol.array)
    np.testing.assert_allclose(img.affine, vol.affine, atol=1e-4)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), vol.affine, atol=1e-4)


def test_pynrrd_reads_lps_geometry(tmp_path: Path) -> None:
    vol = Volume(ARRAYS["int16"], _affine("oblique"))
    path = write_volume(vol, tmp_path / "x.nrrd")
    data, header = nrrd.read(str(path))
    assert header["space"] == "left-posterior-superior"
    assert header["encoding"] == "gzip"
    np.testing.assert_array_equal(data, vol.array)
    lps = LPS_TO_RAS @ vol.affine
    np.testing.assert_array_equal(header["space directions"], lps[:3, :3].T)
    np.testing.assert_array_equal(header["space origin"], lps[:3, 3])


def test_nrrd_written_for_a_mask_overlays_its_nifti(tmp_path: Path) -> None:
    """Write a CT as NIfTI and its mask as NRRD: the voxel under a world point is the same."""
    ct = Volume(ARRAYS["int16"], _affine("oblique"))
    mask = ct.with_array((ct.array > 1000).astype(np.uint8))
    write_volume(ct, tmp_path / "ct.nii.gz")
    write_volume(mask, tmp_path / "mask.nrrd")
    ct_img = nib.load(tmp_path / "ct.nii.gz")  # nibabel for the CT
    m = read_volume(tmp_path / "mask.nrrd")
    point = np.array([14.0, -168.0, -333.0])
    ijk_ct = np.linalg.inv(ct_img.affine) @ [*point, 1.0]
    ijk_mask = m.world_to_index(point)
    np.testing.assert_allclose(ijk_ct[:3], ijk_mask, atol=1e-4)
    for ijk in np.argwhere(mask.array)[:20]:
        world = ct_img.affine @ [*ijk, 1.0]
        back = np.rint(m.world_to_index(world[:3])).astype(int)
        assert m.array[tuple(back)] == 1


def test_real_ct_round_trips_exactly(shared_data: Path, tmp_path: Path) -> None:
    ct = read_volume(shared_data / "lidc-idri-0001" / "nodules.nii.gz")
    for suffix in SUFFIXES:
        back = read_volume(write_volume(ct, tmp_path / f"n.{suffix}"))
        assert back.shape == ct.shape and np.array_equal(back.array, ct.array)  # fast for 35M
        np.testing.assert_array_equal(back.affine, ct.affine)
        assert back.array.dtype == np.uint8


def test_nifti_without_our_extension_uses_the_float32_sform(tmp_path: Path) -> None:
    """If another tool rewrites the sform, the stored float64 affine is ignored."""
    vol = Volume(ARRAYS["int16"], _affine("oblique"))
    path = write_volume(vol, tmp_path / "x.nii")
    img = nib.load(path)
    moved = img.affine.copy()
    moved[0, 3] += 5.0
    img.set_sform(moved, code=1)
    nib.save(img, tmp_path / "y.nii")
    back = read_volume(tmp_path / "y.nii")
    np.testing.assert_allclose(back.affine, moved, atol=0)
    assert back.affine[0, 3] == pytest.approx(vol.affine[0, 3] + 5.0, abs=1e-4)


def test_sheared_affine_keeps_the_sform_only(tmp_path: Path) -> None:
    aff = _affine("ras")
    aff[1, 2] = 0.4  # gantry-tilt-like shear
    vol = Volume(ARRAYS["int16"], aff)
    path = write_volume(vol, tmp_path / "x.nii.gz")
    img = nib.load(path)
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1
    np.testing.assert_array_equal(read_volume(path).affine, aff)


def test_write_refuses_unknown_and_detached_formats(tmp_path: Path) -> None:
    vol = Volume(ARRAYS["int16"], np.eye(4))
    for name in ("x.png", "x.nhdr", "x.mhd"):
        with pytest.raises(OutputError):
            write_volume(vol, tmp_path / name)
    with pytest.raises(OutputError, match="does not exist"):
        write_volume(vol, tmp_path / "no" / "such" / "x.nrrd")
    assert list(tmp_path.iterdir()) == []

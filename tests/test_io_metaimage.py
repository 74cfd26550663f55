"""MetaImage: files written by SimpleITK and by hand, checked against hand-computed positions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lungspread.errors import InputError
from lungspread.io import read_volume

ARR = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) - 100


def _sitk_image(arr: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(arr.transpose(2, 1, 0).copy())  # sitk arrays are [k, j, i]


@pytest.mark.parametrize("compress", [False, True])
def test_simpleitk_oblique_file_reads_at_itk_positions(tmp_path: Path, compress: bool) -> None:
    img = _sitk_image(ARR)
    img.SetSpacing((0.5, 0.75, 2.0))
    img.SetOrigin((1.1, 2.2, 3.3))
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # columns = axis dirs
    img.SetDirection(direction.ravel().tolist())
    path = tmp_path / "x.mha"
    sitk.WriteImage(img, str(path), useCompression=compress)
    v = read_volume(path)
    np.testing.assert_array_equal(v.array, ARR)
    # by hand: LPS point of voxel (1, 0, 0) = origin + 0.5 * (c, s, 0)
    lps = np.array([1.1 + 0.5 * c, 2.2 + 0.5 * s, 3.3])
    np.testing.assert_allclose(v.index_to_world([1, 0, 0]), [-lps[0], -lps[1], lps[2]], atol=1e-12)
    for ijk in [(3, 2, 1), (0, 2, 0), (1, 1, 1)]:
        itk = np.array(img.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(v.index_to_world(ijk), itk * [-1, -1, 1], atol=1e-12)


def _write(path: Path, header: str, data: bytes = b"") -> None:
    path.write_bytes(header.encode("ascii") + data)


def test_hand_written_mhd_with_raw_file_and_msb(tmp_path: Path) -> None:
    (tmp_path / "x.raw").write_bytes(ARR.astype(">i2").tobytes(order="F"))
    _write(
        tmp_path / "x.mhd",
        "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
        "BinaryDataByteOrderMSB = True\nElementSpacing = 1 2 3\nOffset = 10 20 30\n"
        "TransformMatrix = 0 1 0 -1 0 0 0 0 1\nElementDataFile = x.raw\n",
    )
    v = read_volume(tmp_path / "x.mhd")
    np.testing.assert_array_equal(v.array, ARR)
    # axis 0 along LPS +y (spacing 1), axis 1 along LPS -x (spacing 2)
    # voxel (1, 1, 1): LPS (10 - 2, 20 + 1, 30 + 3) -> RAS (-8, -21, 33)
    np.testing.assert_allclose(v.index_to_world([1, 1, 1]), [-8.0, -21.0, 33.0])
    assert v.axis_codes() == ("P", "R", "S")


def test_met_long_is_32_bit_and_long_long_64(tmp_path: Path) -> None:
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = {}\n"
        "ElementDataFile = LOCAL\n"
    )
    _write(tmp_path / "a.mha", header.format("MET_LONG"), ARR.astype("<i4").tobytes(order="F"))
    _write(tmp_path / "b.mha", header.format("MET_LONG_LONG"), ARR.astype("<i8").tobytes(order="F"))
    a, b = read_volume(tmp_path / "a.mha"), read_volume(tmp_path / "b.mha")
    assert a.array.dtype == np.int32 and b.array.dtype == np.int64
    np.testing.assert_array_equal(a.array, ARR)
    np.testing.assert_array_equal(b.array, ARR)
    # no geometry given: identity LPS, so i points to L
    np.testing.assert_allclose(a.affine, np.diag([-1.0, -1.0, 1.0, 1.0]))


def test_4d_with_last_dim_one_reads_and_more_is_refused(tmp_path: Path) -> None:
    header = (
        "ObjectType = Image\nNDims = 4\nDimSize = 4 3 2 {}\nElementType = MET_SHORT\n"
        "ElementSpacing = 1 1 2 1\nElementDataFile = LOCAL\n"
    )
    _write(tmp_path / "a.mha", header.format(1), ARR.tobytes(order="F"))
    v = read_volume(tmp_path / "a.mha")
    assert v.shape == (4, 3, 2) and v.spacing == (1.0, 1.0, 2.0)
    _write(tmp_path / "b.mha", header.format(5), ARR.tobytes(order="F") * 5)
    with pytest.raises(InputError, match=r"expected a 3D MetaImage, found 4D.*5 volumes"):
        read_volume(tmp_path / "b.mha")


def test_vector_images_and_lists_are_refused(tmp_path: Path) -> None:
    base = "ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\nElementType = MET_SHORT\n"
    _write(tmp_path / "a.mha", base + "ElementNumberOfChannels = 3\nElementDataFile = LOCAL\n")
    with pytest.raises(InputError, match="3 channels per voxel"):
        read_volume(tmp_path / "a.mha")
    _write(tmp_path / "b.mhd", base + "ElementDataFile = LIST\n")
    with pytest.raises(InputError, match="split over several files"):
        read_volume(tmp_path / "b.mhd")
    _write(tmp_path / "c.mha", base + "ElementDataFile = LOCAL\n", b"\x00" * 10)
    with pytest.raises(InputError, match=r"truncated: expected 48 bytes, found 10"):
        read_volume(tmp_path / "c.mha")

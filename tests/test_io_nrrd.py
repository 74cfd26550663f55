"""NRRD files written by other tools: spaces, detached data, encodings, hand-computed positions."""

from __future__ import annotations

import gzip
from pathlib import Path

import nrrd
import numpy as np
import pytest

from lungspread.errors import InputError
from lungspread.io import read_volume

ARR = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) - 100


def _header(space: str, directions: list[list[float]], origin: list[float]) -> dict[str, object]:
    return {
        "type": "short",
        "dimension": 3,
        "space": space,
        "space directions": np.array(directions, dtype=float),
        "space origin": np.array(origin, dtype=float),
        "kinds": ["domain"] * 3,
        "endian": "little",
        "encoding": "raw",
    }


DIRS = [[0.5, 0.0, 0.0], [0.0, 0.75, 0.0], [0.0, 0.0, 2.0]]


@pytest.mark.parametrize(
    ("space", "voxel_211_ras"),
    [
        # LPS origin (10, 20, 30) + (1.0, 0.75, 2.0) = LPS (11, 20.75, 32) -> RAS (-11, -20.75, 32)
        ("left-posterior-superior", [-11.0, -20.75, 32.0]),
        ("scanner-xyz", [-11.0, -20.75, 32.0]),  # read as LPS, like ITK / 3D Slicer
        ("right-anterior-superior", [11.0, 20.75, 32.0]),
        ("left-anterior-superior", [-11.0, 20.75, 32.0]),
    ],
)
def test_spaces_convert_to_ras(tmp_path: Path, space: str, voxel_211_ras: list[float]) -> None:
    path = tmp_path / "x.nrrd"
    nrrd.write(str(path), ARR, _header(space, DIRS, [10.0, 20.0, 30.0]))
    v = read_volume(path)
    np.testing.assert_array_equal(v.array, ARR)
    np.testing.assert_allclose(v.index_to_world([2, 1, 1]), voxel_211_ras)
    assert v.meta["nrrd_space"] == space


def test_detached_header_with_gzip_data(tmp_path: Path) -> None:
    hdr = _header("left-posterior-superior", DIRS, [0.0, 0.0, 0.0])
    hdr["encoding"] = "gzip"
    nrrd.write(str(tmp_path / "x.nhdr"), ARR, hdr, detached_header=True)
    assert (tmp_path / "x.raw.gz").is_file()
    v = read_volume(tmp_path / "x.nhdr")
    np.testing.assert_array_equal(v.array, ARR)
    (tmp_path / "x.raw.gz").unlink()
    with pytest.raises(InputError, match=r"data file 'x\.raw\.gz' named in the header was not"):
        read_volume(tmp_path / "x.nhdr")


@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii"])
def test_encodings_and_big_endian(tmp_path: Path, encoding: str) -> None:
    hdr = _header("RAS", DIRS, [1.0, 2.0, 3.0])
    hdr.update(encoding=encoding, endian="big")
    nrrd.write(str(tmp_path / "x.nrrd"), ARR.astype(">i2"), hdr)
    v = read_volume(tmp_path / "x.nrrd")
    assert v.array.dtype == np.int16 and v.array.dtype.isnative
    np.testing.assert_array_equal(v.array, ARR)


def test_spacings_only_is_axis_aligned_lps(tmp_path: Path) -> None:
    path = tmp_path / "x.nrrd"
    nrrd.write(
        str(path),
        ARR,
        {"type": "short", "dimension": 3, "spacings": [0.5, 0.75, 2.0], "encoding": "raw"},
    )
    v = read_volume(path)
    np.testing.assert_allclose(v.affine, np.diag([-0.5, -0.75, 2.0, 1.0]))


def test_list_axis_of_size_one_is_dropped_and_larger_refused(tmp_path: Path) -> None:
    hdr = _header("LPS", [[np.nan] * 3, *DIRS], [0.0, 0.0, 0.0])
    hdr.update(dimension=4, kinds=["list", "domain", "domain", "domain"])
    nrrd.write(str(tmp_path / "one.nrrd"), ARR[None], hdr)
    v = read_volume(tmp_path / "one.nrrd")
    assert v.shape == (4, 3, 2)
    np.testing.assert_array_equal(v.array, ARR)
    nrrd.write(str(tmp_path / "three.nrrd"), np.stack([ARR] * 3), hdr)
    with pytest.raises(InputError, match=r"expected a 3D image, found 4D NRRD with sizes \(3, 4"):
        read_volume(tmp_path / "three.nrrd")


def test_gzip_bomb_is_cut_at_the_header_size(tmp_path: Path) -> None:
    """Decompression stops at the size the header announces (here 24 voxels)."""
    path = tmp_path / "x.nrrd"
    head = (
        b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 3 2\nencoding: gzip\nendian: little\n"
        b"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n\n"
    )
    path.write_bytes(head + gzip.compress(b"\x01\x00" * 5_000_000))
    v = read_volume(path)
    assert v.shape == (4, 3, 2) and int(v.array.max()) == 1


def test_truncated_and_lying_headers(tmp_path: Path) -> None:
    path = tmp_path / "x.nrrd"
    nrrd.write(str(path), ARR, _header("LPS", DIRS, [0.0, 0.0, 0.0]))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(InputError, match=r"truncated: expected 48 bytes, found 38"):
        read_volume(path)
    path.write_bytes(data.replace(b"space: LPS", b"space: somewhere-else"))
    with pytest.raises(InputError, match="unsupported NRRD space 'somewhere-else'"):
        read_volume(path)
    path.write_bytes(b"P5\n4 3\n255\n" + bytes(12))
    with pytest.raises(InputError, match="not a NRRD file"):
        read_volume(path)

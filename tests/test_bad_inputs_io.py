"""Bad inputs for the readers and the CT check, as a corpus.

Every case asserts the error class and the key words of the message (what was expected, what
was found, which file), and that ``lungspread info`` exits with code 2, one line on stderr
naming the file, and no traceback.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lungspread.cli.app import main
from lungspread.errors import (
    GeometryError,
    InputError,
    LungspreadError,
    MissingDependencyError,
    NotCTError,
)
from lungspread.io.dicom import write_dicom_series
from lungspread.io.info import volume_info
from lungspread.volume import Volume

AFF = np.diag([-0.7, -0.7, 2.5, 1.0])


def chest(shape: tuple[int, int, int] = (32, 32, 8)) -> np.ndarray:
    """Small CT-like int16 volume: air, body at 40 HU, two lungs at -850 HU."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    img = np.full(shape[:2], -1000, np.int16)
    img[(x / 0.9) ** 2 + (y / 0.7) ** 2 < 1] = 40
    img[((np.abs(x) - 0.4) / 0.3) ** 2 + (y / 0.45) ** 2 < 1] = -850
    return np.repeat(img[:, :, None], shape[2], axis=2)


def _nifti(tmp: Path, arr: np.ndarray, name: str = "ct.nii.gz") -> Path:
    nib.save(nib.Nifti1Image(arr, AFF, dtype=arr.dtype), tmp / name)
    return tmp / name


def _series(tmp: Path, n: int = 6) -> tuple[Path, list[Path]]:
    folder = tmp / "series"
    vol = Volume(chest((16, 16, n)), np.diag([-0.8, -0.8, 2.0, 1.0]))
    return folder, write_dicom_series(vol, folder, series_uid="1.2.826.0.1.3680043.8.498.50")


def _set(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path)


# -- the cases: each builds its input and says what must be raised ---------------------------

Case = Callable[[Path], tuple[Path, type[LungspreadError], list[str]]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


@case
def missing_file(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    return tmp / "nope.nii.gz", InputError, ["no such file or folder"]


@case
def empty_file(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    (tmp / "empty.nii.gz").write_bytes(b"")
    return tmp / "empty.nii.gz", InputError, ["file is empty (0 bytes)"]


@case
def unknown_suffix(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    (tmp / "scan.png").write_bytes(b"\x89PNG\r\n")
    return tmp / "scan.png", InputError, ["unknown image format", ".nii.gz", "DICOM folder"]


@case
def folder_without_dicom(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder = tmp / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.dcm").write_bytes(b"\x00" * 200)
    return folder, InputError, ["expected a DICOM image series", "no DICOM files", "2 file(s)"]


@case
def dicom_without_images(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp, 2)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    return folder, InputError, ["2 DICOM file(s) but no image slice with a position"]


@case
def truncated_nii_gz(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest(), "ct.nii")
    (tmp / "cut.nii.gz").write_bytes(gzip.compress(path.read_bytes()[:5000]))
    return tmp / "cut.nii.gz", InputError, ["NIfTI voxel data is truncated", "16,384 bytes"]


@case
def truncated_gzip_stream(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, InputError, ["NIfTI", "truncated"]


@case
def corrupt_nifti_header(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest(), "ct.nii")
    data = bytearray(path.read_bytes())
    data[0:4] = b"\x13\x37\x00\x00"  # sizeof_hdr
    data[344:348] = b"xyz\x00"  # magic
    path.write_bytes(bytes(data))
    return path, InputError, ["not a readable NIfTI file"]


@case
def nifti_bad_datatype(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest(), "ct.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 70, 1234)  # datatype code that does not exist
    path.write_bytes(bytes(data))
    return path, InputError, ["NIfTI"]


@case
def singular_affine(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest(), "flat.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 252, 0)  # qform_code 0: the sform alone counts
    struct.pack_into("<4f", data, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z = 0: k axis has no extent
    path.write_bytes(bytes(data))
    return path, InputError, ["singular voxel-to-world matrix"]


@case
def complex_voxels(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest().astype(np.complex64))
    return path, InputError, ["unsupported voxel type complex64", "expected integer, float"]


@case
def image_2d(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest()[:, :, 0])
    return path, NotCTError, ["32x32x1 voxels", "a dimension of 1", "where a 3D CT is needed"]


@case
def image_4d(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, np.stack([chest()] * 3, axis=-1))
    return path, InputError, ["expected a 3D image, found 4D", "(32, 32, 8, 3)", "3 volumes"]


@case
def nrrd_vector_image(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    import nrrd

    path = tmp / "vec.nrrd"
    nrrd.write(
        str(path), np.zeros((3, 4, 4, 4), np.float32), {"kinds": ["vector"] + ["domain"] * 3}
    )
    return path, InputError, ["expected a 3D image, found 4D NRRD with sizes (3, 4, 4, 4)"]


@case
def nan_and_inf(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    arr = chest().astype(np.float32)
    arr[0, 0, 0], arr[1, 1, 1] = np.nan, np.inf
    return _nifti(tmp, arr), NotCTError, ["2 of 8,192 voxels are not finite", "1 NaN, 1 infinite"]


@case
def constant_volume(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, np.full((32, 32, 8), 7, np.int16))
    return path, NotCTError, ["all voxels have the same value 7.00", "--force-ct"]


@case
def unit_range_image(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    arr = ((chest().astype(np.float32) + 1000) / 1100).clip(0, 1)
    path = _nifti(tmp, arr)
    return path, NotCTError, ["intensities span 0.00..0.95", "expected CT in HU", "--force-ct"]


@case
def mri_like(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    arr = np.random.default_rng(0).gamma(2.0, 300.0, (32, 32, 8)).astype(np.float32)
    return _nifti(tmp, arr), NotCTError, ["near -1000 HU", "looks like MRI", "--force-ct"]


@case
def one_voxel(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, np.full((1, 1, 1), -1000, np.int16))
    return path, NotCTError, ["1x1x1 voxels", "a dimension of 1"]


@case
def tiny_volume(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    return _nifti(tmp, chest((4, 4, 4))), NotCTError, ["only 64 voxels", "at least 1000"]


@case
def huge_nrrd_header(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = tmp / "huge.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: short\ndimension: 3\nsizes: 100000 100000 100000\n"
        b"encoding: gzip\nendian: little\n\n" + gzip.compress(b"\x00" * 100)
    )
    return path, InputError, ["image too large", "100000x100000x100000", "1,000,000,000,000,000"]


@case
def huge_mha_header(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = tmp / "huge.mha"
    path.write_bytes(
        b"ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\n"
        b"ElementType = MET_SHORT\nElementDataFile = LOCAL\n" + b"\x00" * 100
    )
    return path, InputError, ["image too large", "1.8 PiB in memory", "limit is"]


@case
def huge_nifti2_header(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = tmp / "huge.nii"
    nib.save(nib.Nifti2Image(np.zeros((2, 2, 2), np.int16), AFF), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<qqq", data, 16 + 8, 100000, 100000, 100000)  # dim[1..3], int64
    path.write_bytes(bytes(data))
    return path, InputError, ["image too large", "100000x100000x100000"]


@case
def huge_nifti1_header(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, chest(), "ct.nii")
    data = bytearray(path.read_bytes())
    struct.pack_into("<hhh", data, 42, 32767, 32767, 32767)
    path.write_bytes(bytes(data))
    return path, InputError, ["image too large", "32767x32767x32767", "64.0 TiB"]


@case
def huge_dicom_series(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp, 3)
    for p in paths:
        _set(p, Rows=65535, Columns=65535)
    return folder, InputError, ["image too large", "65535x65535x3"]


@case
def uneven_spacing(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    _set(paths[3], ImagePositionPatient=[0.0, 0.0, 6.7])  # 6.0 -> 6.7
    return (
        folder,
        GeometryError,
        ["uneven slice spacing", "gaps from 1.300 to 2.700", "--allow-uneven"],
    )


@case
def missing_slice(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    paths[2].unlink()
    return (
        folder,
        GeometryError,
        ["missing slice(s)", "2.00 and 6.00 (4.00 mm)", "expected 2.00 mm"],
    )


@case
def duplicate_slices(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    _set(paths[4], ImagePositionPatient=[0.0, 0.0, 6.0])
    return folder, GeometryError, ["duplicate slice position", "several acquisitions"]


@case
def gantry_tilt(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    for k, p in enumerate(paths):
        _set(p, ImagePositionPatient=[0.0, 0.5 * k, 2.0 * k])
    return folder, GeometryError, ["gantry tilt of about 14.04 degrees", "--allow-tilt"]


@case
def mixed_orientation(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    _set(paths[1], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    return folder, GeometryError, ["slices differ in orientation", "several stacks"]


@case
def non_orthogonal_orientation(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp)
    for p in paths:
        _set(p, ImageOrientationPatient=[1, 0, 0, 0.5, 0.866, 0])
    return folder, GeometryError, ["is not two orthogonal unit vectors"]


@case
def multi_frame_dicom(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp, 1)
    _set(paths[0], NumberOfFrames=2)
    return folder, InputError, ["multi-frame DICOM (2 frames in one file)"]


@case
def colour_dicom(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp, 2)
    for p in paths:
        _set(p, SamplesPerPixel=3)
    return folder, InputError, ["expected a greyscale DICOM image"]


@case
def compressed_dicom_without_decoder(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000

    folder, paths = _series(tmp, 2)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.file_meta.TransferSyntaxUID = JPEG2000
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 20])
        ds["PixelData"].VR = "OB"
        ds.save_as(p)
    return folder, MissingDependencyError, ["JPEG 2000", "install pylibjpeg"]


@case
def short_dicom_pixel_data(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    folder, paths = _series(tmp, 2)
    _set(paths[1], PixelData=b"\x00" * 30)
    return folder, InputError, ["DICOM slice could not be read"]


@case
def not_a_nrrd(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    (tmp / "x.nrrd").write_bytes(b"PK\x03\x04 zip archive")
    return tmp / "x.nrrd", InputError, ["not a NRRD file", "expected 'NRRD000x'"]


@case
def metaimage_without_data_line(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    (tmp / "x.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n")
    return tmp / "x.mha", InputError, ["not a MetaImage file", "ElementDataFile"]


@case
def ct_without_rescale(tmp: Path) -> tuple[Path, type[LungspreadError], list[str]]:
    path = _nifti(tmp, (chest().astype(np.int32) + 1024).astype(np.uint16))
    return path, NotCTError, ["CT without its rescale to HU"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_library_raises_with_clear_message(tmp_path: Path, name: str) -> None:
    path, error, words = CASES[name](tmp_path)
    with pytest.raises(error) as err:
        volume_info(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg or str(path.parent) in msg, msg
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_exits_2_with_one_line(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, words = CASES[name](tmp_path)
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("error: ")
    assert words[0] in lines[0]
    assert "Traceback" not in out.err + out.out


def test_corpus_is_large() -> None:
    assert len(CASES) >= 30


# -- things that look odd but must read --------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.float32, np.int16])
def test_unusual_dtypes_of_a_real_ct_pass(tmp_path: Path, dtype: type) -> None:
    path = _nifti(tmp_path, chest().astype(dtype))
    info = volume_info(path)
    assert info.dtype == np.dtype(dtype).name and info.ct.looks_like_ct


@pytest.mark.parametrize(
    ("arr", "dtype"),
    [(chest() > 0, "uint8"), ((chest() // 8).astype(np.int8), "int8"), (chest() + 1024, "uint16")],
)
def test_unusual_dtypes_read_then_ct_check_decides(
    tmp_path: Path, arr: np.ndarray, dtype: str
) -> None:
    vol = Volume(arr.astype(np.uint16) if dtype == "uint16" else arr, AFF)
    from lungspread.io import read_volume, write_volume

    back = read_volume(write_volume(vol, tmp_path / "x.nrrd"))
    assert back.array.dtype == np.dtype(dtype)
    with pytest.raises(NotCTError):
        volume_info(back)
    assert volume_info(back, force_ct=True).ct.forced


def test_two_series_folder_reads_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = _series(tmp_path)
    mr = Volume(np.full((8, 8, 9), 300, np.int16), np.eye(4))
    write_dicom_series(mr, folder / "mr", modality="MR", series_uid="1.2.826.0.1.3680043.8.498.51")
    assert main(["info", str(folder)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1.2.826.0.1.3680043.8.498.50" in out and "CT, 6 slices" in out
    assert "skipped" in out and "MR, 9 slices" in out


def test_allow_flags_reach_the_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder, paths = _series(tmp_path)
    paths[2].unlink()
    assert main(["info", str(folder), "--allow-uneven"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "interpolated 5 slices linearly onto 6" in out
    assert main(["info", str(folder), "--json"]) == 2


def test_console_script_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    path, _, words = CASES["gantry_tilt"](tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "lungspread", "info", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert words[0] in proc.stderr and "Traceback" not in proc.stderr

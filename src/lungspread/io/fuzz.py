"""Mutation fuzzing of the readers: broken files must give lungspread errors, nothing else.

:func:`fuzz_reader` writes small valid seed files of one format, then, input after input,
applies one to three random mutations (bit flips, overwritten/inserted/deleted bytes,
truncation, and format-aware ones: header numbers replaced by extreme values, header lines
deleted or duplicated, NIfTI header fields and DICOM elements set to odd values, JSON values
replaced by wrong types, odd paths and raw text the encoder would never write) and calls the
reader: :func:`lungspread.io.read_volume` and, when that succeeds,
:func:`lungspread.ct_check.assess_ct` for the image formats; for ``dataset.json``,
:meth:`lungspread.data.msd.MSDDataset.open` on an MSD folder with tiny images and labels, then
the dataset's properties and :meth:`~lungspread.data.msd.MSDDataset.validate`.
Any exception that is not a :class:`~lungspread.errors.LungspreadError`, and a lungspread error
whose message is more than one line, is an *escape* and is recorded with the input that caused
it. Deterministic for a seed.

Used by ``tests/test_fuzz_readers.py`` (a few hundred inputs) and
``benchmarks/fuzz_readers.py`` (10,000+ per reader).
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import LungspreadError
from lungspread.volume import Volume

READERS = ("nifti", "nrrd", "metaimage", "dicom", "dataset.json")

_INTERESTING_NUMBERS = (
    "0",
    "-1",
    "1",
    "2",
    "3",
    "4",
    "-0",
    "65535",
    "32768",
    "2147483648",
    "4294967296",
    "100000",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "",
    "x",
    "1 2",
    "99999999999999999999",
    "3 3 3 3",
    "-2",
)
_INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x20, 0x0A)


@dataclass
class FuzzReport:
    """Outcome counts of one fuzzing run of one reader."""

    reader: str
    n_inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    escapes: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    seconds: float = 0.0

    @property
    def n_escapes(self) -> int:
        return len(self.escapes)

    def line(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.reader}: {self.n_inputs} inputs in {self.seconds:.1f} s "
            f"(slowest {1000 * self.slowest_s:.0f} ms): {parts}; escaped: {self.n_escapes}"
        )


# -- seed files ------------------------------------------------------------------------------


def _seed_volume() -> Volume:
    rng = np.random.default_rng(7)
    arr = rng.integers(-1000, 400, size=(6, 5, 4)).astype(np.int16)
    arr[:2] = -1000
    theta = 0.2
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.7, 0.8, 2.5])
    affine[:3, 3] = [-12.5, 30.25, -100.0]
    return Volume(arr, affine)


def _dataset_seeds(tmp: Path, vol: Volume) -> list[dict[str, bytes]]:
    """Three small MSD folders: MSD form (with ``patient``, a test list), nnU-Net v2 form,
    and an MSD form with three labels and an unlabelled case, written on one line."""
    import json

    from lungspread.io.nifti import write_nifti

    img = Volume(vol.array[:4, :4, :3], vol.affine)
    lab_arr = np.zeros(img.shape, np.uint8)
    lab_arr[1:3, 1:3, 1] = 1
    write_nifti(img, tmp / "img.nii.gz")
    write_nifti(Volume(lab_arr, img.affine), tmp / "lab.nii.gz")
    lab_arr[0, 0, 0] = 2
    write_nifti(Volume(lab_arr, img.affine), tmp / "lab3.nii.gz")
    image, label, label3 = (tmp / n for n in ("img.nii.gz", "lab.nii.gz", "lab3.nii.gz"))
    msd = {
        "name": "Lung",
        "description": "fuzz seed",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "cancer"},
        "numTraining": 2,
        "numTest": 1,
        "training": [
            {"image": "./imagesTr/lung_001.nii.gz", "label": "./labelsTr/lung_001.nii.gz",
             "patient": "p1"},
            {"image": "./imagesTr/lung_002.nii.gz", "label": "./labelsTr/lung_002.nii.gz"},
        ],
        "test": ["./imagesTs/lung_003.nii.gz"],
    }  # fmt: skip
    v2 = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "tumor": 1},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    multi = {
        "name": "Multi",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "tumor", "2": "vessel"},
        "training": [
            {"image": "imagesTr/a.nii.gz", "label": "labelsTr/a.nii.gz"},
            {"image": "imagesTr/b.nii.gz", "label": None},
        ],
    }
    return [
        {
            "dataset.json": json.dumps(msd, indent=4).encode(),
            "imagesTr/lung_001.nii.gz": image.read_bytes(),
            "labelsTr/lung_001.nii.gz": label.read_bytes(),
            "imagesTr/lung_002.nii.gz": image.read_bytes(),
            "labelsTr/lung_002.nii.gz": label.read_bytes(),
            "imagesTs/lung_003.nii.gz": image.read_bytes(),
        },
        {
            "dataset.json": json.dumps(v2, indent=2).encode(),
            "imagesTr/case_000_0000.nii.gz": image.read_bytes(),
            "labelsTr/case_000.nii.gz": label.read_bytes(),
            "imagesTr/case_001_0000.nii.gz": image.read_bytes(),
            "labelsTr/case_001.nii.gz": label.read_bytes(),
        },
        {
            "dataset.json": json.dumps(multi).encode(),
            "imagesTr/a.nii.gz": image.read_bytes(),
            "labelsTr/a.nii.gz": label3.read_bytes(),
            "imagesTr/b.nii.gz": image.read_bytes(),
        },
    ]


def seed_files(reader: str) -> list[dict[str, bytes]]:
    """Valid small inputs of one reader, each a mapping file name -> bytes.

    The first name of each mapping is what :func:`read_volume` is called on (for DICOM the
    folder holding all the names; for ``dataset.json`` the folder, an MSD dataset whose other
    names are relative paths such as ``imagesTr/lung_001.nii.gz``).
    """
    from lungspread.io.metaimage import write_metaimage
    from lungspread.io.nifti import write_nifti
    from lungspread.io.nrrd_io import write_nrrd

    vol = _seed_volume()
    tmp = Path(tempfile.mkdtemp(prefix="lungspread-seed-"))
    try:
        if reader == "nifti":
            write_nifti(vol, tmp / "a.nii")
            write_nifti(vol, tmp / "b.nii.gz")
            f32 = Volume(vol.array.astype(np.float32), vol.affine)
            write_nifti(f32, tmp / "c.nii")
            return [
                {"a.nii": (tmp / "a.nii").read_bytes()},
                {"b.nii.gz": (tmp / "b.nii.gz").read_bytes()},
                {"c.nii": (tmp / "c.nii").read_bytes()},
            ]
        if reader == "nrrd":
            import nrrd

            write_nrrd(vol, tmp / "a.nrrd")
            lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
            hdr = {
                "type": "short",
                "dimension": 3,
                "space": "left-posterior-superior",
                "space directions": lps[:3, :3].T,
                "space origin": lps[:3, 3],
                "kinds": ["domain"] * 3,
                "endian": "little",
            }
            nrrd.write(str(tmp / "b.nrrd"), vol.array, {**hdr, "encoding": "raw"})
            nrrd.write(str(tmp / "c.nrrd"), vol.array[:3, :3, :2], {**hdr, "encoding": "ascii"})
            nrrd.write(
                str(tmp / "d.nhdr"), vol.array, {**hdr, "encoding": "raw"}, detached_header=True
            )
            return [
                {"a.nrrd": (tmp / "a.nrrd").read_bytes()},
                {"b.nrrd": (tmp / "b.nrrd").read_bytes()},
                {"c.nrrd": (tmp / "c.nrrd").read_bytes()},
                {"d.nhdr": (tmp / "d.nhdr").read_bytes(), "d.raw": (tmp / "d.raw").read_bytes()},
            ]
        if reader == "metaimage":
            write_metaimage(vol, tmp / "a.mha")
            text = (tmp / "a.mha").read_bytes().split(b"ElementDataFile")[0]
            raw = vol.array.astype("<i2").tobytes(order="F")
            plain = re.sub(rb"CompressedData = True\nCompressedDataSize = \d+\n", b"", text)
            plain = plain.replace(
                b"BinaryDataByteOrderMSB", b"CompressedData = False\nBinaryDataByteOrderMSB"
            )
            b_mha = plain + b"ElementDataFile = LOCAL\n" + raw
            c_mhd = plain + b"ElementDataFile = c.raw\n"
            return [
                {"a.mha": (tmp / "a.mha").read_bytes()},
                {"b.mha": b_mha},
                {"c.mhd": c_mhd, "c.raw": raw},
            ]
        if reader == "dicom":
            from lungspread.io.dicom import write_dicom_series

            small = Volume(vol.array[:5, :4, :3], vol.affine)
            paths = write_dicom_series(
                small,
                tmp / "series",
                series_uid="1.2.826.0.1.3680043.8.498.4",
                study_uid="1.2.826.0.1.3680043.8.498.2",
                frame_uid="1.2.826.0.1.3680043.8.498.3",
                rescale_intercept=-1024.0,
            )
            return [{p.name: p.read_bytes() for p in paths}]
        if reader == "dataset.json":
            return _dataset_seeds(tmp, vol)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    raise ValueError(f"unknown reader {reader!r}; expected one of {READERS}")


# -- mutations -------------------------------------------------------------------------------


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _overwrite(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    if not b:
        return data
    i = rng.randrange(len(b))
    for j in range(i, min(len(b), i + rng.randint(1, 16))):
        b[j] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(b)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)] if data else data


def _insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return data[:i] + junk + data[i:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 64) :]


def _duplicate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 64))
    return data[:j] + data[i:j] + data[j:]


_BYTE_MUTATIONS: tuple[Callable[[bytes, random.Random], bytes], ...] = (
    _flip_bits,
    _overwrite,
    _truncate,
    _insert,
    _delete,
    _duplicate,
)


def _text_header_split(data: bytes) -> tuple[bytes, bytes]:
    """(header, rest) for NRRD (blank line) and MetaImage (ElementDataFile line)."""
    if data.startswith(b"NRRD"):
        i = data.find(b"\n\n")
        return (data, b"") if i < 0 else (data[: i + 1], data[i + 1 :])
    i = data.find(b"ElementDataFile")
    if i < 0:
        return data, b""
    j = data.find(b"\n", i)
    return (data, b"") if j < 0 else (data[: j + 1], data[j + 1 :])


_NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")
_FIELD_VALUES = (
    b"type: double",
    b"type: block",
    b"encoding: bzip2",
    b"encoding: hex",
    b"encoding: ascii",
    b"space: right-anterior-superior",
    b"space: scanner-xyz",
    b"space: 3D-right-handed-time",
    b"dimension: 4",
    b"space directions: none (1,0,0) (0,1,0)",
    b"data file: LIST",
    b"byte skip: -1",
    b"ElementType = MET_DOUBLE",
    b"ElementNumberOfChannels = 3",
    b"NDims = 4",
    b"NDims = 2",
    b"CompressedData = True",
    b"BinaryData = False",
    b"ElementDataFile = missing.raw",
    b"DimSize = 100000 100000 100000",
    b"TransformMatrix = 0 0 0 0 0 0 0 0 0",
    b"BinaryDataByteOrderMSB = True",
)


def _mutate_text_header(data: bytes, rng: random.Random) -> bytes:
    header, rest = _text_header_split(data)
    lines = header.split(b"\n")
    choice = rng.random()
    if choice < 0.45:
        numbers = list(_NUMBER.finditer(header))
        if numbers:
            m = rng.choice(numbers)
            repl = rng.choice(_INTERESTING_NUMBERS).encode()
            header = header[: m.start()] + repl + header[m.end() :]
            return header + rest
    if choice < 0.6 and len(lines) > 2:
        del lines[rng.randrange(1, len(lines) - 1)]
    elif choice < 0.7 and len(lines) > 2:
        i = rng.randrange(1, len(lines) - 1)
        lines.insert(i, lines[i])
    elif len(lines) > 2:
        i = rng.randrange(1, len(lines) - 1)
        lines.insert(i, rng.choice(_FIELD_VALUES))
    return b"\n".join(lines) + rest


# NIfTI-1 header fields: (offset, struct format) for the ones that steer reading.
_NIFTI_FIELDS = (
    (0, "<i"),  # sizeof_hdr
    (40, "<h"),
    (42, "<h"),
    (44, "<h"),
    (46, "<h"),
    (48, "<h"),
    (50, "<h"),  # dim[0..5]
    (70, "<h"),  # datatype
    (72, "<h"),  # bitpix
    (76, "<f"),
    (80, "<f"),
    (84, "<f"),
    (88, "<f"),  # pixdim[0..3]
    (108, "<f"),  # vox_offset
    (112, "<f"),
    (116, "<f"),  # scl_slope, scl_inter
    (252, "<h"),
    (254, "<h"),  # qform_code, sform_code
    (256, "<f"),
    (260, "<f"),
    (264, "<f"),  # quatern b, c, d
    (280, "<f"),
    (284, "<f"),
    (296, "<f"),
    (316, "<f"),  # srow entries
    (348, "<i"),  # extension flag
)
_NIFTI_VALUES = (
    0,
    1,
    -1,
    2,
    3,
    4,
    5,
    7,
    8,
    16,
    32,
    64,
    128,
    256,
    511,
    512,
    768,
    1024,
    1280,
    1536,
    1792,
    2048,
    2304,
    32767,
    -32768,
    352,
    348,
    540,
    100000,
)


def _mutate_nifti_header(data: bytes, rng: random.Random) -> bytes:
    import struct

    b = bytearray(data)
    off, fmt = rng.choice(_NIFTI_FIELDS)
    if off + struct.calcsize(fmt) > len(b):
        return data
    if fmt == "<f":
        value: float = rng.choice(
            (0.0, -1.0, 1e30, -1e30, float("nan"), float("inf"), 1e-30, 352.0, 0.5, 2.0)
        )
        struct.pack_into(fmt, b, off, value)
    elif fmt == "<h":
        struct.pack_into(fmt, b, off, int(np.clip(rng.choice(_NIFTI_VALUES), -32768, 32767)))
    else:
        struct.pack_into(fmt, b, off, rng.choice(_NIFTI_VALUES))
    return bytes(b)


def _mutate_dicom(data: bytes, rng: random.Random) -> bytes:
    """Set one DICOM element that steers reading to an odd value (or delete it)."""
    import io

    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        return _overwrite(data, rng)
    keyword = rng.choice(
        (
            "Rows",
            "Columns",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "SamplesPerPixel",
            "NumberOfFrames",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "RescaleSlope",
            "RescaleIntercept",
            "SeriesInstanceUID",
            "Modality",
            "PhotometricInterpretation",
            "PixelData",
            "InstanceNumber",
        )
    )
    values: dict[str, list[object]] = {
        "Rows": [0, 1, 3, 65535, 4000],
        "Columns": [0, 1, 4, 65535, 4000],
        "BitsAllocated": [0, 1, 8, 12, 32, 64],
        "BitsStored": [0, 1, 12, 17, 64],
        "HighBit": [0, 7, 31],
        "PixelRepresentation": [0, 1, 2],
        "SamplesPerPixel": [0, 3],
        "NumberOfFrames": [0, 2, 1000],
        "ImagePositionPatient": [[0, 0, 0], [1e308, 0, 0], ["nan", 0, 0], [0, 0], [0.5, 0.3, -50]],
        "ImageOrientationPatient": [[0] * 6, [1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0.9, 0.4], [1, 0]],
        "PixelSpacing": [[0, 0], [-1, 1], ["nan", 1], [1e308, 1e308], [1]],
        "RescaleSlope": [0, -1, "nan", 0.5, 1e308],
        "RescaleIntercept": [0, "inf", 1e9, -0.5],
        "SeriesInstanceUID": ["1.2.3", ""],
        "Modality": ["MR", "", "SEG"],
        "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "YBR_FULL"],
        "PixelData": [b"", b"\x00" * 7, b"\x00" * 100000],
        "InstanceNumber": [0, -5, 99999],
    }
    try:
        if rng.random() < 0.2 and keyword in ds:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, rng.choice(values[keyword]))
        buf = io.BytesIO()
        ds.save_as(buf)
        return buf.getvalue()
    except Exception:
        return _overwrite(data, rng)


#: Values a JSON node is replaced with: wrong types, edge numbers, odd strings.
_JSON_VALUES: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    256,
    2.5,
    1e308,
    -1e308,
    10**40,
    "",
    " ",
    "0",
    "-1",
    "1.5",
    "256",
    "CT",
    "MR",
    "background",
    "a\nb",
    "\u202e\u0000x",
    [],
    {},
    [1, 2],
    [None],
    {"0": "CT"},
    {"0": ["CT"]},
    {"background": 0, "tumor": 0},
    {"0": "background", "00": "x"},
    {"image": 1},
    {"image": None, "label": "./labelsTr/lung_001.nii.gz"},
    {"label": "./labelsTr/lung_001.nii.gz"},
)

#: Strings for path entries: traversal, absolute paths, links to elsewhere, odd characters.
_JSON_PATHS: tuple[str, ...] = (
    "../outside.nii.gz",
    "./imagesTr/../../etc/passwd",
    "imagesTr/../imagesTr/lung_001.nii.gz",
    "/etc/passwd",
    "/dev/zero",
    "/proc/self/mem",
    "~/x.nii.gz",
    "C:\\Windows\\x.nii.gz",
    "\\\\server\\share\\x.nii.gz",
    "imagesTr",
    ".",
    "./",
    "",
    "imagesTr/lung_001.nii",
    "imagesTr/lung_002.nii.gz",
    "labelsTr/lung_001.nii.gz",
    "imagesTr/\u0000.nii.gz",
    "imagesTr/\ud800.nii.gz",
    "imagesTr/\udcff.nii.gz",
    "imagesTr/a\nb.nii.gz",
    "imagesTr/" + "x" * 300 + ".nii.gz",
    "d/" * 2100 + "x.nii.gz",
    "imagesTr/lung_001.nii.gz\u0000.txt",
)

#: Text that ``json.dumps`` never writes, put in place of a node: deep nesting, numbers too
#: long or too large, NaN/Infinity literals, invalid UTF-8 and lone surrogates.
_JSON_RAW: tuple[bytes, ...] = (
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 30_000 + b"1" + b"}" * 30_000,
    b"[" * 900 + b"]" * 900,
    b"9" * 5000,
    b"-" + b"9" * 4400,
    b"0." + b"1" * 5000,
    b"1e999",
    b"-1E400",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b'"\xff\xfe\x80"',
    b'"\xed\xa0\x80"',
    b'"\\ud800"',
    b'"\\udc00x"',
    b"\x00",
    b"-0",
    b"01",
    b"1_000",
    b"0x1F",
    b"'CT'",
    b"[1,]",
)


def _json_nodes(obj: Any, out: list[tuple[Any, Any]]) -> None:
    """Every (container, key) pair of a parsed JSON document, depth first."""
    if isinstance(obj, dict):
        for k in list(obj):
            out.append((obj, k))
            _json_nodes(obj[k], out)
    elif isinstance(obj, list):
        for i in range(len(obj)):
            out.append((obj, i))
            _json_nodes(obj[i], out)


def _mutate_json(data: bytes, rng: random.Random) -> bytes:
    """One structure-aware change of a JSON document: a node replaced (by a wrong type, an odd
    path or raw text), deleted, duplicated or renamed, or the whole text re-encoded."""
    import json

    try:
        doc: object = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return rng.choice(_BYTE_MUTATIONS)(data, rng)
    nodes: list[tuple[Any, Any]] = []
    try:
        _json_nodes(doc, nodes)
    except RecursionError:  # a document nested about as deep as the parser allows
        return rng.choice(_BYTE_MUTATIONS)(data, rng)
    raw: dict[str, bytes] = {}
    op = rng.random()
    if not nodes or op < 0.05:
        doc = rng.choice([[doc], {"dataset": doc}, None, "dataset.json", 1, []])
    elif op < 0.6:
        parent, key = rng.choice(nodes)
        r = rng.random()
        value: object
        if r < 0.3:
            value = rng.choice(_JSON_PATHS)
        elif r < 0.55:
            sentinel = f"\u0000RAW{len(raw)}\u0000"
            raw[sentinel] = rng.choice(_JSON_RAW)
            value = sentinel
        else:
            value = rng.choice(_JSON_VALUES)
        parent[key] = value
    elif op < 0.75:
        parent, key = rng.choice(nodes)
        del parent[key]  # parents are dicts and lists
    elif op < 0.85:
        parent, key = rng.choice(nodes)
        if isinstance(parent, list):
            parent.insert(int(key), parent[key])
        elif isinstance(parent, dict):
            parent[rng.choice(("modality", "channel_names", "labels", "training", "test",
                               "image", "label", "patient", "name", "file_ending",
                               "numTraining", str(key).upper(), "1"))] = parent[key]  # fmt: skip
    else:
        parent, key = rng.choice(nodes)
        if isinstance(parent, dict):
            parent[str(key) + rng.choice(("", " ", "_", "\u00e9"))] = parent.pop(key)
            if isinstance(key, str) and rng.random() < 0.5:
                parent[key.upper()] = parent.pop(str(key), None)
    try:
        text = json.dumps(
            doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice((None, 1, 4)), allow_nan=True
        )
    except (RecursionError, ValueError):
        return rng.choice(_BYTE_MUTATIONS)(data, rng)
    encoded = text.encode("utf-8", errors="surrogatepass")
    for sentinel, blob in raw.items():
        quoted = json.dumps(sentinel).encode()
        encoded = encoded.replace(quoted, blob)
    r = rng.random()
    if r < 0.03:
        encoded = text.encode("utf-16", errors="surrogatepass")
    elif r < 0.06:
        encoded = b"\xef\xbb\xbf" + encoded
    elif r < 0.09:
        encoded = text.encode("latin-1", errors="replace")
    return encoded


def mutate(name: str, data: bytes, rng: random.Random) -> bytes:
    """One to three stacked mutations of a file's bytes, format-aware by ``name``."""
    out = data
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        lname = name.lower()
        if r < 0.5 and lname.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            out = _mutate_text_header(out, rng)
        elif r < 0.5 and lname.endswith(".nii"):
            out = _mutate_nifti_header(out, rng)
        elif r < 0.5 and lname.endswith(".dcm"):
            out = _mutate_dicom(out, rng)
        elif r < 0.9 and lname.endswith(".json"):
            out = _mutate_json(out, rng)
        elif r < 0.7 and lname.endswith((".nii", ".nrrd", ".mha", ".dcm")):
            # mutations confined to the first kilobyte, where the headers are
            head, tail = out[:1024], out[1024:]
            out = rng.choice(_BYTE_MUTATIONS)(head, rng) + tail
        else:
            out = rng.choice(_BYTE_MUTATIONS)(out, rng)
    return out


def _gz_variant(name: str, data: bytes, rng: random.Random) -> bytes:
    """For .nii.gz: mutate the decompressed file (then recompress) or the compressed bytes."""
    import gzip

    if rng.random() < 0.8:
        try:
            inner = gzip.decompress(data)
        except Exception:
            return mutate(name, data, rng)
        return gzip.compress(mutate("x.nii", inner, rng), compresslevel=1, mtime=0)
    return mutate(name, data, rng)


# -- the loop -----------------------------------------------------------------------------


def read_input(reader: str, target: Path) -> None:
    """What the fuzzer runs on one input: the reader, then what is done next with its result.

    Images: :func:`~lungspread.io.read_volume` and :func:`~lungspread.ct_check.assess_ct`.
    ``dataset.json``: :meth:`MSDDataset.open(folder) <lungspread.data.msd.MSDDataset.open>`,
    the properties the commands use, and :meth:`~lungspread.data.msd.MSDDataset.validate`
    (which reads every case and returns the problems as lungspread errors).
    """
    if reader == "dataset.json":
        from lungspread.data.msd import MSDDataset

        ds = MSDDataset.open(target)
        _ = (ds.is_ct, ds.label_values, ds.groups, ds.is_2d, [ds.case(c.id) for c in ds.cases])
        for problem in ds.validate(check_voxels=True):
            _check_one_line(problem)
        return
    from lungspread.ct_check import assess_ct
    from lungspread.io.readers import read_volume

    assess_ct(read_volume(target))


def _check_one_line(exc: LungspreadError) -> None:
    if "\n" in str(exc) or "\r" in str(exc):
        raise AssertionError(f"{type(exc).__name__} message is not one line: {str(exc)!r}")


def fuzz_reader(
    reader: str,
    n_inputs: int,
    seed: int = 0,
    workdir: str | Path | None = None,
    max_escapes: int = 20,
) -> FuzzReport:
    """Run ``n_inputs`` mutated inputs of ``reader`` (one of :data:`READERS`) through
    :func:`read_input`; counts each outcome (``read`` or the lungspread error's class) and
    keeps the first ``max_escapes`` escapes with their inputs (under ``workdir``)."""
    seeds = seed_files(reader)
    rng = random.Random(f"{reader}-{seed}")
    report = FuzzReport(reader)
    own_tmp = workdir is None
    base = Path(tempfile.mkdtemp(prefix=f"lungspread-fuzz-{reader}-")) if own_tmp else Path(workdir)  # type: ignore[arg-type]
    base.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    previous_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # broken inputs make pydicom/nibabel log a lot
    catcher = warnings.catch_warnings()
    catcher.__enter__()
    warnings.simplefilter("ignore")
    try:
        for i in range(n_inputs):
            case = seeds[i % len(seeds)]
            folder = base / f"case{i % 2}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            names = list(case)
            victims = {rng.choice(names)}
            if reader == "dicom" and rng.random() < 0.2:
                victims = set(names)
            if reader == "dataset.json":  # the images are fuzzed as NIfTI already
                victims = {"dataset.json"}
            for name, data in case.items():
                if name in victims:
                    data = (
                        _gz_variant(name, data, rng)
                        if name.endswith(".gz")
                        else mutate(name, data, rng)
                    )
                path = folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            target = folder if reader in ("dicom", "dataset.json") else folder / names[0]
            t0 = time.perf_counter()
            problem: str | None = None
            try:
                read_input(reader, target)
                report.outcomes["read"] += 1
            except LungspreadError as exc:
                if "\n" in str(exc) or "\r" in str(exc):
                    problem = f"{type(exc).__name__} message is not one line: {str(exc)!r}"
                else:
                    report.outcomes[type(exc).__name__] += 1
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                report.outcomes["ESCAPED"] += 1
                if len(report.escapes) < max_escapes:
                    kept = base / f"escape-{i}"
                    shutil.copytree(folder, kept, dirs_exist_ok=True)
                    report.escapes.append(f"input {i}: {problem[:400]} (kept in {kept})")
            dt = time.perf_counter() - t0
            report.slowest_s = max(report.slowest_s, dt)
            report.n_inputs += 1
    finally:
        catcher.__exit__(None, None, None)
        logging.disable(previous_disable)
        report.seconds = time.perf_counter() - start
        if own_tmp and not report.escapes:
            shutil.rmtree(base, ignore_errors=True)
    return report

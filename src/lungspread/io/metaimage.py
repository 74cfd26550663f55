"""MetaImage (.mha with the data in the same file, .mhd with a separate data file).

The header is plain text, ``Key = Value`` lines ending with ``ElementDataFile``; it is parsed
here (no ITK needed, and a broken header cannot crash a C++ library). Geometry, as ITK reads
it:

* ``TransformMatrix`` (also ``Rotation``/``Orientation``) lists the unit direction of voxel
  axis 0, then axis 1, then axis 2, in LPS+ world coordinates: axis ``a``'s direction is
  ``values[3a : 3a + 3]``, i.e. ITK's direction matrix stored column after column.
* ``ElementSpacing`` is the voxel size in mm per axis; ``Offset`` (also ``Position``/``Origin``)
  the LPS position of voxel (0, 0, 0).
* ``AnatomicalOrientation`` is informative only; ITK ignores it on reading and so do we.

Writing prints every number with Python's shortest exact ``repr``, and chooses each direction
component (within one unit in the last place) so that ``direction * spacing`` reproduces the
affine bit for bit, since MetaImage stores directions and spacings separately.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError, OutputError
from lungspread.io._common import (
    bounded_decompress,
    check_affine,
    check_dtype,
    check_size,
    complete_affine_2d,
    foreign_errors,
    one_line,
    to_3d_shape,
)
from lungspread.volume import LPS_TO_RAS, Volume

_MET_TYPES: dict[str, str] = {
    "MET_CHAR": "i1",
    "MET_UCHAR": "u1",
    "MET_SHORT": "i2",
    "MET_USHORT": "u2",
    "MET_INT": "i4",
    "MET_UINT": "u4",
    "MET_LONG": "i4",
    "MET_ULONG": "u4",
    "MET_LONG_LONG": "i8",
    "MET_ULONG_LONG": "u8",
    "MET_FLOAT": "f4",
    "MET_DOUBLE": "f8",
}
_NUMPY_TO_MET: dict[str, str] = {
    "int8": "MET_CHAR",
    "uint8": "MET_UCHAR",
    "int16": "MET_SHORT",
    "uint16": "MET_USHORT",
    "int32": "MET_INT",
    "uint32": "MET_UINT",
    "int64": "MET_LONG_LONG",
    "uint64": "MET_ULONG_LONG",
    "float32": "MET_FLOAT",
    "float64": "MET_DOUBLE",
}
_MAX_HEADER_BYTES = 64 * 1024
_ALIASES = {
    "position": "offset",
    "origin": "offset",
    "rotation": "transformmatrix",
    "orientation": "transformmatrix",
    "elementbyteordermsb": "binarydatabyteordermsb",
}


def _parse_header(path: Path) -> tuple[dict[str, str], int]:
    """Header fields (keys lower-cased) and the byte offset where LOCAL data starts."""
    with open(path, "rb") as fh:
        head = fh.read(_MAX_HEADER_BYTES)
    fields: dict[str, str] = {}
    pos = 0
    while True:
        end = head.find(b"\n", pos)
        if end < 0:
            raise InputError(
                "not a MetaImage file: no 'ElementDataFile = ...' line in the first 64 KiB", path
            )
        raw_line = head[pos:end]
        pos = end + 1
        try:
            line = raw_line.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not a MetaImage file: header line {len(fields) + 1} is not text", path
            ) from exc
        if not line:
            continue
        if "=" not in line:
            raise InputError(
                f"not a MetaImage file: header line {one_line(line, 60)!r} is not 'Key = Value'",
                path,
            )
        key, value = (s.strip() for s in line.split("=", 1))
        k = key.lower()
        k = _ALIASES.get(k, k)
        fields[k] = value
        if k == "elementdatafile":
            return fields, pos


def _floats(
    fields: dict[str, str], key: str, n: int, default: list[float], path: Path
) -> list[float]:
    if key not in fields:
        return default
    try:
        vals = [float(v) for v in fields[key].split()]
    except ValueError as exc:
        raise InputError(
            f"MetaImage {key} is not numeric: {one_line(fields[key], 60)!r}", path
        ) from exc
    if len(vals) != n:
        raise InputError(f"MetaImage {key} needs {n} values, found {len(vals)}", path)
    return vals


def _bool(fields: dict[str, str], key: str, default: bool) -> bool:
    v = fields.get(key)
    return default if v is None else v.strip().lower() in ("true", "1", "yes")


def read_metaimage(path: Path) -> Volume:
    """Read a .mha/.mhd file into a RAS+ Volume (LPS converted here)."""
    path = Path(path)
    with foreign_errors(path, "not a readable MetaImage file"):
        fields, data_offset = _parse_header(path)
    obj = fields.get("objecttype", "Image")
    if obj.lower() != "image":
        raise InputError(f"expected a MetaImage of ObjectType Image, found {obj!r}", path)
    try:
        ndims = int(fields.get("ndims", ""))
        dims = [int(v) for v in fields.get("dimsize", "").split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except ValueError as exc:
        raise InputError(
            "MetaImage header needs integer NDims, DimSize and channels", path
        ) from exc
    if ndims < 1 or ndims > 16 or len(dims) != ndims:
        raise InputError(f"MetaImage NDims = {ndims} but DimSize has {len(dims)} values", path)
    if channels != 1:
        raise InputError(
            f"expected a scalar image, found {channels} channels per voxel (vector image)", path
        )
    etype = fields.get("elementtype", "")
    if etype.upper() not in _MET_TYPES:
        raise InputError(f"unsupported MetaImage ElementType {one_line(etype, 40)!r}", path)
    msb = _bool(fields, "binarydatabyteordermsb", False)
    dt = np.dtype(_MET_TYPES[etype.upper()]).newbyteorder(">" if msb else "<")
    check_dtype(dt.newbyteorder("="), path)
    check_size(dims, dt.itemsize, path)
    shape = to_3d_shape(dims, path, "MetaImage")

    nd3 = min(ndims, 3)
    spacing = _floats(fields, "elementspacing", ndims, [], path) or _floats(
        fields, "elementsize", ndims, [1.0] * ndims, path
    )
    offset = _floats(fields, "offset", ndims, [0.0] * ndims, path)
    matrix = _floats(
        fields,
        "transformmatrix",
        ndims * ndims,
        list(np.eye(ndims).ravel()),
        path,
    )
    lps = np.eye(4)
    for a in range(nd3):
        # axis a's direction is the a-th group of ndims values (ITK's column a).
        col = np.asarray(matrix[a * ndims : a * ndims + nd3], dtype=np.float64)
        lps[:nd3, a] = col * spacing[a]
    lps[:nd3, 3] = offset[:nd3]
    affine = LPS_TO_RAS @ lps
    if ndims == 2:
        affine = complete_affine_2d(affine)
    affine = check_affine(affine, path, "MetaImage header")

    n = int(np.prod(dims, dtype=np.int64))
    nbytes = n * dt.itemsize
    with foreign_errors(path, "MetaImage voxel data could not be read"):
        flat = _read_data(fields, path, data_offset, nbytes, n, dt)
    arr = flat.reshape(dims, order="F").reshape(shape, order="F")
    meta: dict[str, Any] = {"source": str(path), "format": "metaimage"}
    if "anatomicalorientation" in fields:
        meta["anatomical_orientation"] = one_line(fields["anatomicalorientation"], 16)
    return Volume(arr, affine, meta)


def _read_data(
    fields: dict[str, str], path: Path, data_offset: int, nbytes: int, n: int, dt: np.dtype
) -> np.ndarray:
    data_file = fields["elementdatafile"].strip()
    compressed = _bool(fields, "compresseddata", False)
    binary = _bool(fields, "binarydata", True)
    if data_file.upper() == "LOCAL":
        with open(path, "rb") as fh:
            fh.seek(data_offset)
            blob = fh.read()
    else:
        if data_file.upper().startswith("LIST") or "%" in data_file or len(data_file.split()) > 1:
            raise InputError(
                f"MetaImage data split over several files ({one_line(data_file, 60)}) is not "
                "supported",
                path,
            )
        src = Path(data_file) if Path(data_file).is_absolute() else path.parent / data_file
        if not src.is_file():
            raise InputError(f"MetaImage data file {data_file!r} was not found", path)
        blob = src.read_bytes()
        header_size = int(fields.get("headersize", "0"))
        if header_size == -1:
            blob = blob[-nbytes:] if not compressed and nbytes else blob
        elif header_size > 0:
            blob = blob[header_size:]
    if not binary:
        values = np.array(blob.split()[: n + 1], dtype=np.float64)
        if values.size < n:
            raise InputError(f"MetaImage text voxel data is truncated: expected {n:,} values", path)
        return values[:n].astype(dt.newbyteorder("="))
    if compressed:
        data = bounded_decompress(blob, nbytes, path, "MetaImage")
    else:
        if len(blob) < nbytes:
            raise InputError(
                f"MetaImage voxel data is truncated: expected {nbytes:,} bytes, "
                f"found {len(blob):,}",
                path,
            )
        data = blob[:nbytes]
    flat = np.frombuffer(bytearray(data), dtype=dt)
    return flat if dt.isnative else flat.astype(dt.newbyteorder("="))


def _exact_direction(column: np.ndarray, spacing: float) -> list[float]:
    """Unit direction whose product with ``spacing`` gives ``column`` exactly, where possible."""
    out = []
    for c in column:
        d = float(c) / spacing
        for cand in (d, math.nextafter(d, math.inf), math.nextafter(d, -math.inf)):
            if cand * spacing == c:
                d = cand
                break
        out.append(d)
    return out


def _orientation_code(lps_dirs: np.ndarray) -> str:
    """ITK's AnatomicalOrientation letters: where each axis comes *from* (RAI = identity LPS)."""
    letters = (("R", "L"), ("A", "P"), ("I", "S"))
    code = ""
    for col in lps_dirs.T:
        ax = int(np.argmax(np.abs(col)))
        code += letters[ax][0] if col[ax] > 0 else letters[ax][1]
    return code


def write_metaimage(volume: Volume, path: Path, *, compression_level: int = 1) -> None:
    """Write a single-file .mha (zlib-compressed) in LPS with the volume's exact geometry."""
    path = Path(path)
    arr = volume.array
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    name = np.dtype(arr.dtype).newbyteorder("=").name
    if name not in _NUMPY_TO_MET:
        raise OutputError(f"cannot write voxel type {arr.dtype} to MetaImage", path)
    if path.name.lower().endswith(".mhd"):
        raise OutputError("write MetaImage as a single .mha file (.mhd needs a data file)", path)
    lps = LPS_TO_RAS @ volume.affine
    spacing = [float(s) for s in np.linalg.norm(lps[:3, :3], axis=0)]
    dirs: list[float] = []
    for a in range(3):
        dirs += _exact_direction(lps[:3, a], spacing[a])
    data = np.asarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes(order="F")
    payload = zlib.compress(data, compression_level)

    def fmt(values: list[float]) -> str:
        return " ".join(repr(float(v)) for v in values)

    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = True",
        f"CompressedDataSize = {len(payload)}",
        f"TransformMatrix = {fmt(dirs)}",
        f"Offset = {fmt([float(v) for v in lps[:3, 3]])}",
        "CenterOfRotation = 0 0 0",
        f"AnatomicalOrientation = {_orientation_code(lps[:3, :3])}",
        f"ElementSpacing = {fmt(spacing)}",
        f"DimSize = {' '.join(str(s) for s in arr.shape)}",
        f"ElementType = {_NUMPY_TO_MET[name]}",
        "ElementDataFile = LOCAL",
    ]
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode("ascii"))
        fh.write(payload)

"""NRRD (.nrrd with attached data, .nhdr with detached data) with exact geometry.

NRRD keeps geometry as ``space``, ``space directions`` (one vector per axis, in world mm) and
``space origin``. The world frame named by ``space`` is converted to RAS+ here and nowhere
else: ``left-posterior-superior`` (what 3D Slicer and ITK write) flips x and y,
``right-anterior-superior`` is kept, ``left-anterior-superior`` flips x, and ``scanner-xyz`` or
a bare ``space dimension: 3`` are read as LPS, as ITK (and so 3D Slicer) reads them. A file
without space directions gets axis-aligned LPS axes with its ``spacings`` (1 mm if absent).

The header is parsed with pynrrd; the voxel data is read here so that the size announced by
the header is checked first and decompression stops at that size.

Writing uses ``space: left-posterior-superior``, every number printed with 17 significant
digits (so the affine round-trips bit for bit) and gzip encoding.
"""

from __future__ import annotations

import bz2
import io
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

#: World frame of each NRRD ``space`` -> diagonal that converts it to RAS+.
_SPACE_TO_RAS: dict[str, tuple[float, float, float]] = {
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
    "scanner-xyz": (-1.0, -1.0, 1.0),
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
}

_SPATIAL_KINDS = {"domain", "space", "time"}  # "time" only matters for its size (must be 1)


def _dtype(header: dict[str, Any], path: Path) -> np.dtype:
    import nrrd.reader

    with foreign_errors(path, "NRRD header has an invalid type"):
        t = nrrd.reader._TYPEMAP_NRRD2NUMPY[header["type"]]
    dt = np.dtype(t).newbyteorder("=")
    if dt.kind not in "iuf" or dt.itemsize > 8:
        raise InputError(f"unsupported NRRD voxel type {header['type']!r}", path)
    if dt.itemsize > 1:
        endian = str(header.get("endian", "little")).lower()
        if endian not in ("little", "big"):
            raise InputError(f"NRRD header has an invalid endian {endian!r}", path)
        dt = dt.newbyteorder("<" if endian == "little" else ">")
    return dt


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    import nrrd

    with foreign_errors(path, "not a readable NRRD file"), open(path, "rb") as fh:
        magic = fh.read(8)
        if not magic.startswith(b"NRRD000"):
            raise InputError(
                f"not a NRRD file: starts with {magic[:8]!r}, expected 'NRRD000x'", path
            )
        fh.seek(0)
        header = dict(nrrd.read_header(fh))
        offset = fh.tell()
    return header, offset


def _read_payload(header: dict[str, Any], offset: int, path: Path, nbytes: int) -> bytes:
    """The raw (decoded, decompressed) voxel bytes, exactly ``nbytes`` of them."""
    data_file = header.get("data file", header.get("datafile"))
    encoding = str(header.get("encoding", "")).lower()
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if line_skip < 0 or byte_skip < -1:
        raise InputError(
            f"NRRD header has invalid line skip {line_skip} / byte skip {byte_skip}", path
        )
    if data_file is not None:
        name = str(data_file).strip()
        if name.upper().startswith("LIST") or "%" in name or len(name.split()) > 1:
            raise InputError(
                f"NRRD data split over several files ({one_line(name, 60)}) is not supported", path
            )
        src = Path(name) if Path(name).is_absolute() else path.parent / name
        if not src.is_file():
            raise InputError(f"NRRD data file {name!r} named in the header was not found", path)
        blob = src.read_bytes()
        start = 0
    else:
        blob = path.read_bytes()
        start = offset
    buf = io.BytesIO(blob)
    buf.seek(start)
    for _ in range(line_skip):
        buf.readline()
    body = buf.read()
    what = "NRRD"
    if encoding == "raw":
        # byte skip -1: the data are the last nbytes of the file
        start = max(len(body) - nbytes, 0) if byte_skip == -1 else byte_skip
        body = body[start:]
        if len(body) < nbytes:
            raise InputError(
                f"NRRD voxel data is truncated: expected {nbytes:,} bytes, found {len(body):,}",
                path,
            )
        return body[:nbytes]
    if encoding in ("gzip", "gz", "bzip2", "bz2"):
        skip = 0 if byte_skip == -1 else byte_skip
        if encoding.startswith("gz"):
            data = bounded_decompress(body, nbytes + skip, path, what)
        else:
            try:
                dec = bz2.BZ2Decompressor()
                data = dec.decompress(body, max_length=nbytes + skip)
            except (OSError, ValueError, EOFError) as exc:
                raise InputError(f"NRRD bzip2 voxel data is corrupt ({exc})", path) from exc
            if len(data) < nbytes + skip:
                raise InputError(
                    f"NRRD voxel data is truncated: expected {nbytes:,} bytes after "
                    f"decompression, found {max(len(data) - skip, 0):,}",
                    path,
                )
        return data[skip : skip + nbytes]
    if encoding in ("ascii", "text", "txt"):
        raise InputError("internal: ascii handled by caller", path)  # pragma: no cover
    if encoding == "hex":
        with foreign_errors(path, "NRRD hex voxel data is malformed"):
            data = bytes.fromhex("".join(body.decode("ascii").split()))
        if len(data) < nbytes:
            raise InputError(f"NRRD voxel data is truncated: expected {nbytes:,} bytes", path)
        return data[:nbytes]
    raise InputError(f"unsupported NRRD encoding {encoding!r}", path)


def _read_ascii(
    header: dict[str, Any], offset: int, path: Path, n: int, dt: np.dtype
) -> np.ndarray:
    data_file = header.get("data file", header.get("datafile"))
    if data_file is not None:
        name = str(data_file).strip()
        src = Path(name) if Path(name).is_absolute() else path.parent / name
        if not src.is_file():
            raise InputError(f"NRRD data file {name!r} named in the header was not found", path)
        text = src.read_bytes()
    else:
        text = path.read_bytes()[offset:]
    with foreign_errors(path, "NRRD ascii voxel data is malformed"):
        values = np.array(text.split()[: n + 1], dtype=np.float64)
    if values.size < n:
        raise InputError(f"NRRD ascii voxel data is truncated: expected {n:,} values", path)
    return values[:n].astype(dt.newbyteorder("="))


def _geometry(header: dict[str, Any], spatial_axes: list[int], path: Path) -> np.ndarray:
    """4x4 RAS affine of the spatial axes (in file order)."""
    space = header.get("space")
    if space is not None:
        key = str(space).lower()
        if key.endswith("-time"):
            key = key[: -len("-time")]
        if key not in _SPACE_TO_RAS:
            if key.startswith("3d-"):
                flip = (-1.0, -1.0, 1.0)  # ITK reads generic 3D spaces as LPS
            else:
                raise InputError(f"unsupported NRRD space {space!r}", path)
        else:
            flip = _SPACE_TO_RAS[key]
    else:
        sdim = header.get("space dimension")
        if sdim is not None and int(sdim) != 3:
            raise InputError(f"expected a 3D space, NRRD header has space dimension {sdim}", path)
        flip = (-1.0, -1.0, 1.0)
    lps_or_native = np.eye(4)
    sd = header.get("space directions")
    if sd is not None:
        sd_arr = np.asarray(sd, dtype=np.float64)
        if sd_arr.ndim != 2 or sd_arr.shape[1] != 3:
            raise InputError(
                f"NRRD space directions must be 3D vectors, found shape {sd_arr.shape}", path
            )
        vecs = sd_arr[spatial_axes]
        if not np.all(np.isfinite(vecs)):
            raise InputError("NRRD space directions are missing ('none') for a spatial axis", path)
        lps_or_native[:3, : len(spatial_axes)] = vecs.T
    else:
        spacings = header.get("spacings")
        sp = np.ones(len(header["sizes"]))
        if spacings is not None:
            sp = np.asarray(spacings, dtype=np.float64)
            sp = np.where(np.isfinite(sp), sp, 1.0)
        for col, ax in enumerate(spatial_axes):
            lps_or_native[col, col] = float(sp[ax]) if ax < len(sp) else 1.0
    origin = header.get("space origin")
    if origin is not None:
        org = np.asarray(origin, dtype=np.float64).reshape(-1)
        if org.shape != (3,):
            raise InputError(f"NRRD space origin must have 3 values, found {org.size}", path)
        lps_or_native[:3, 3] = org
    return np.diag([*flip, 1.0]) @ lps_or_native


def read_nrrd(path: Path) -> Volume:
    """Read a .nrrd (attached) or .nhdr (detached data) file into a RAS+ Volume."""
    path = Path(path)
    header, offset = _read_header(path)
    for field in ("type", "dimension", "sizes", "encoding"):
        if field not in header:
            raise InputError(f"NRRD header lacks the required field {field!r}", path)
    with foreign_errors(path, "NRRD header is invalid"):
        dim = int(header["dimension"])
        sizes = [int(s) for s in np.asarray(header["sizes"]).reshape(-1)]
    if dim != len(sizes):
        raise InputError(f"NRRD header has dimension {dim} but {len(sizes)} sizes", path)
    dt = _dtype(header, path)
    check_dtype(dt.newbyteorder("="), path)
    check_size(sizes, dt.itemsize, path)

    # Which axes are spatial: those with a space direction (or all when there is none).
    sd = header.get("space directions")
    if sd is not None:
        with foreign_errors(path, "NRRD space directions are invalid"):
            sd_arr = np.asarray(sd, dtype=np.float64)
        if sd_arr.ndim != 2 or sd_arr.shape[0] != dim:
            raise InputError(
                f"NRRD header has {dim} axes but space directions of shape {sd_arr.shape}", path
            )
        spatial = [i for i in range(dim) if np.all(np.isfinite(sd_arr[i]))]
    else:
        kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * dim)]
        spatial = [i for i in range(dim) if i >= len(kinds) or kinds[i] in _SPATIAL_KINDS]
    nonspatial = [i for i in range(dim) if i not in spatial]
    if any(sizes[i] > 1 for i in nonspatial) or len(spatial) > 3:
        raise InputError(
            f"expected a 3D image, found {dim}D NRRD with sizes {tuple(sizes)}; extract one 3D "
            "volume first",
            path,
        )
    spatial_sizes = [sizes[i] for i in spatial]
    shape = to_3d_shape(spatial_sizes, path, "NRRD image")
    if len(spatial) < 2:
        raise InputError(f"expected a 3D image, found NRRD with sizes {tuple(sizes)}", path)

    n = int(np.prod(sizes, dtype=np.int64))
    nbytes = n * dt.itemsize
    encoding = str(header["encoding"]).lower()
    if encoding in ("ascii", "text", "txt"):
        flat = _read_ascii(header, offset, path, n, dt)
    else:
        with foreign_errors(path, "NRRD voxel data could not be read"):
            payload = _read_payload(header, offset, path, nbytes)
        flat = np.frombuffer(bytearray(payload), dtype=dt)
        if not dt.isnative:
            flat = flat.astype(dt.newbyteorder("="))
    arr = flat.reshape(sizes, order="F")
    arr = arr.reshape(spatial_sizes, order="F") if nonspatial else arr
    arr = arr.reshape(shape, order="F")

    affine = _geometry(header, spatial, path)
    if len(spatial) == 2:
        affine = complete_affine_2d(affine)
    affine = check_affine(affine, path, "NRRD header")
    meta: dict[str, Any] = {"source": str(path), "format": "nrrd"}
    if header.get("space") is not None:
        meta["nrrd_space"] = str(header["space"])
    return Volume(arr, affine, meta)


def _nrrd_array(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if np.dtype(arr.dtype.newbyteorder("=")).name not in (
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
    ):
        raise OutputError(f"cannot write voxel type {arr.dtype} to NRRD", path)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False)


def write_nrrd(volume: Volume, path: Path, *, compression_level: int = 1) -> None:
    """Write an attached-header NRRD (gzip) in LPS with the volume's exact affine.

    bool is written as uint8 and float16 as float32 (NRRD has neither).
    """
    import nrrd

    path = Path(path)
    arr = _nrrd_array(volume.array, path)
    lps = LPS_TO_RAS @ volume.affine  # the same diagonal converts both ways
    header: dict[str, Any] = {
        "type": _numpy_to_nrrd_type(arr.dtype),
        "dimension": 3,
        "space": "left-posterior-superior",
        "sizes": np.array(arr.shape),
        "space directions": lps[:3, :3].T.copy(),
        "kinds": ["domain", "domain", "domain"],
        "endian": "little",
        "encoding": "gzip",
        "space origin": lps[:3, 3].copy(),
    }
    nrrd.write(str(path), arr, header, compression_level=compression_level, index_order="F")


def _numpy_to_nrrd_type(dt: np.dtype) -> str:
    name = np.dtype(dt).newbyteorder("=").name
    return {"float32": "float", "float64": "double"}.get(name, name)

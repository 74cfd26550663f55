"""A folder of single-frame DICOM slices -> one Volume, with its geometry checked.

What happens, in order:

1. Every file under the folder (recursively, hidden files skipped) is opened with pydicom
   (headers only). Files that are not DICOM, and DICOM files that are not images with a
   position (DICOMDIR, reports, presentation states), are ignored. No image at all is an
   :class:`InputError`.
2. Slices are grouped by SeriesInstanceUID. With several series, the CT series with the most
   slices is used (any modality when there is no CT); the choice and the skipped series are
   logged and recorded in ``meta["dicom"]["series_found"]``. ``series_uid=`` picks one
   explicitly.
3. Slices are sorted by their position along the slice normal (``cross(row, column)`` of
   ImageOrientationPatient, dotted with ImagePositionPatient), never by file name or
   InstanceNumber.
4. Spacing is checked: duplicate positions, missing slices (a gap over 1.5x the median) and
   uneven spacing (a slice more than 5% of the spacing, and over 0.01 mm, away from an even
   grid) raise :class:`GeometryError` naming the positions, unless ``allow_uneven=True``, in
   which case the slices are interpolated (linearly along the normal) onto an even grid with
   the median spacing and ``meta["dicom"]["resampled"]`` says so. Gantry tilt (slice
   positions drifting sideways) is refused unless ``allow_tilt=True``, in which case each
   slice is shifted in-plane onto an orthogonal grid.
5. Pixel values become HU with RescaleSlope/RescaleIntercept of each slice: int16 when the
   result is integral and fits, float32 otherwise.

Array order: ``array[i, j, k]`` with ``i`` the column index of the DICOM pixel matrix (along
the first ImageOrientationPatient vector), ``j`` the row index and ``k`` the slice index in
increasing position along the normal: the order nibabel gives for the same scan converted by
dcm2niix-like tools. The affine is built in LPS from ImageOrientationPatient,
ImagePositionPatient and PixelSpacing and converted to RAS at the end.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import GeometryError, InputError, MissingDependencyError
from lungspread.io._common import (
    check_affine,
    check_size,
    foreign_errors,
    one_line,
    rescale_to_values,
)
from lungspread.volume import LPS_TO_RAS, Volume

log = logging.getLogger(__name__)

#: Relative gap above which a slice is reported missing (gap > 1.5 x median spacing).
MISSING_GAP_FACTOR = 1.5
#: A slice farther than this fraction of the spacing from the even grid makes it "uneven".
UNEVEN_TOLERANCE = 0.05
#: In-plane drift (mm, first to last slice) above which the series counts as tilted.
TILT_TOLERANCE_MM = 0.01


@dataclass
class _Slice:
    path: Path
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient (6,)
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns)
    rows: int
    cols: int
    instance: int
    series_uid: str
    modality: str
    description: str
    series_number: str
    study_uid: str
    frame_uid: str
    thickness: float | None
    slope: float


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    # Files without the 128-byte preamble usually start with a group 0x0008 tag.
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x00\x08")


def _scan(folder: Path) -> tuple[list[Any], int, list[str]]:
    """(datasets with their paths, number of files looked at, unreadable DICOM files)."""
    import pydicom

    found: list[Any] = []
    unreadable: list[str] = []
    n_files = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = Path(root) / name
            n_files += 1
            if not _looks_like_dicom(p):
                continue
            try:
                ds = pydicom.dcmread(str(p), stop_before_pixels=True, force=True)
            except Exception as exc:
                unreadable.append(f"{p.name} ({type(exc).__name__})")
                continue
            found.append((p, ds))
    return found, n_files, unreadable


def _float_list(ds: Any, keyword: str, n: int) -> np.ndarray | None:
    value = ds.get(keyword)
    if value is None:
        return None
    try:
        seq = list(value) if not isinstance(value, (str, bytes)) else [value]
        arr = np.array([float(v) for v in seq], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        return None
    return arr


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else one_line(str(value), 128)


def _as_slice(path: Path, ds: Any) -> _Slice | None:
    """The geometry of one image slice, or None when the dataset is not a positioned image.

    Every value is read here (pydicom converts element values lazily, and a malformed value
    raises on first access), so the rest of the module works on plain numbers and strings.
    """
    if "Rows" not in ds or "Columns" not in ds:
        return None
    ipp = _float_list(ds, "ImagePositionPatient", 3)
    iop = _float_list(ds, "ImageOrientationPatient", 6)
    ps = _float_list(ds, "PixelSpacing", 2)
    if ipp is None or iop is None:
        return None
    if ps is None:
        ps = _float_list(ds, "ImagerPixelSpacing", 2)
    rows, cols = int(ds.Rows), int(ds.Columns)
    instance = int(ds.get("InstanceNumber") or 0)
    spacing = (float(ps[0]), float(ps[1])) if ps is not None else (float("nan"), float("nan"))
    thickness: float | None = None
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = _number(ds, key, float("nan"))
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            thickness = value
            break
    try:
        slope = _number(ds, "RescaleSlope", 1.0)
    except (TypeError, ValueError):
        slope = float("nan")
    return _Slice(
        path=path,
        position=ipp,
        orientation=iop,
        spacing=spacing,
        rows=rows,
        cols=cols,
        instance=instance,
        series_uid=_text(ds, "SeriesInstanceUID") or "(no SeriesInstanceUID)",
        modality=_text(ds, "Modality"),
        description=_text(ds, "SeriesDescription"),
        series_number=_text(ds, "SeriesNumber"),
        study_uid=_text(ds, "StudyInstanceUID"),
        frame_uid=_text(ds, "FrameOfReferenceUID"),
        thickness=thickness,
        slope=slope,
    )


def _series_label(uid: str, slices: list[_Slice]) -> str:
    first = slices[0]
    modality = first.modality or "?"
    desc = one_line(first.description, 40)
    parts = [f"{uid}", f"{modality}", f"{len(slices)} slices"]
    if first.series_number:
        parts.insert(1, f"#{first.series_number}")
    if desc:
        parts.append(repr(desc))
    return f"{parts[0]} ({', '.join(parts[1:])})"


def _pick_series(
    groups: dict[str, list[_Slice]], series_uid: str | None, folder: Path
) -> tuple[str, list[str]]:
    labels = {uid: _series_label(uid, s) for uid, s in groups.items()}
    if series_uid is not None:
        if series_uid not in groups:
            listed = "; ".join(labels.values())
            raise InputError(
                f"no series with SeriesInstanceUID {series_uid}; found {listed}", folder
            )
        return series_uid, [labels[u] for u in sorted(groups) if u != series_uid]

    def modality(uid: str) -> str:
        return groups[uid][0].modality.upper()

    ct = [u for u in groups if modality(u) == "CT"]
    pool = ct or list(groups)
    chosen = sorted(pool, key=lambda u: (-len(groups[u]), u))[0]
    skipped = [labels[u] for u in sorted(groups) if u != chosen]
    return chosen, skipped


def _check_consistent(slices: list[_Slice], folder: Path) -> None:
    first = slices[0]
    for s in slices[1:]:
        if (s.rows, s.cols) != (first.rows, first.cols):
            raise GeometryError(
                f"slices differ in size: {first.path.name} is {first.rows}x{first.cols}, "
                f"{s.path.name} is {s.rows}x{s.cols}",
                folder,
            )
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise GeometryError(
                f"slices differ in orientation (ImageOrientationPatient): {first.path.name} and "
                f"{s.path.name}; the series mixes several stacks",
                folder,
            )
        if not np.allclose(s.spacing, first.spacing, rtol=1e-4, atol=1e-5, equal_nan=True):
            raise GeometryError(
                f"slices differ in PixelSpacing: {first.spacing} in {first.path.name}, "
                f"{s.spacing} in {s.path.name}",
                folder,
            )


def _fmt_positions(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _slice_grid(
    s_pos: np.ndarray, folder: Path, allow_uneven: bool
) -> tuple[float, np.ndarray | None, str | None]:
    """(spacing along the normal, target positions when resampling is needed, note)."""
    n = len(s_pos)
    gaps = np.diff(s_pos)
    dup = np.flatnonzero(gaps < 1e-3)
    if dup.size:
        where = _fmt_positions([float(s_pos[i]) for i in dup[:5]])
        raise GeometryError(
            f"{dup.size} duplicate slice position(s) at {where} mm along the slice normal; the "
            "series holds several acquisitions or phases at the same positions",
            folder,
        )
    median = float(np.median(gaps))
    step = float(s_pos[-1] - s_pos[0]) / (n - 1)
    even = s_pos[0] + step * np.arange(n)
    off_grid = float(np.max(np.abs(s_pos - even)))
    big = np.flatnonzero(gaps > MISSING_GAP_FACTOR * median)
    if big.size == 0 and off_grid <= max(UNEVEN_TOLERANCE * step, 0.01):
        return step, None, None
    if big.size:
        pairs = [f"{s_pos[i]:.2f} and {s_pos[i + 1]:.2f} ({gaps[i]:.2f} mm)" for i in big[:5]]
        more = f" and {big.size - 5} more" if big.size > 5 else ""
        problem = (
            f"missing slice(s): gaps between slice positions {'; '.join(pairs)}{more}, expected "
            f"{median:.2f} mm"
        )
    else:
        worst = np.argsort(-np.abs(gaps - median))[:5]
        listed = "; ".join(
            f"{s_pos[i]:.2f} to {s_pos[i + 1]:.2f} ({gaps[i]:.3f} mm)" for i in sorted(worst)
        )
        problem = (
            f"uneven slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
            f"(median {median:.3f} mm), e.g. {listed}"
        )
    if not allow_uneven:
        raise GeometryError(
            f"{problem}; pass allow_uneven=True (CLI: --allow-uneven) to interpolate onto an "
            "even grid",
            folder,
        )
    n_new = max(int(np.rint((s_pos[-1] - s_pos[0]) / median)) + 1, 2)
    new_step = float(s_pos[-1] - s_pos[0]) / (n_new - 1)
    targets = s_pos[0] + new_step * np.arange(n_new)
    note = (
        f"{problem}; interpolated {n} slices linearly onto {n_new} evenly spaced slices "
        f"({new_step:.4f} mm)"
    )
    log.warning("%s: %s", folder, note)
    return new_step, targets, note


def _number(ds: Any, keyword: str, default: float) -> float:
    value = ds.get(keyword)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    return float(value)


def _decode_pixels(sl: _Slice) -> tuple[np.ndarray, float, float]:
    """Pixel matrix (rows x cols), rescale slope and intercept of one slice."""
    import pydicom

    with foreign_errors(sl.path, "DICOM slice could not be read"):
        ds = pydicom.dcmread(str(sl.path), force=True)
        if "PixelData" not in ds:
            raise InputError("DICOM image has no pixel data", sl.path)
        frames = int(ds.get("NumberOfFrames") or 1)
        if frames != 1:
            raise InputError(
                f"multi-frame DICOM ({frames} frames in one file) is not supported; expected one "
                "slice per file",
                sl.path,
            )
        if int(ds.get("SamplesPerPixel") or 1) != 1:
            raise InputError(
                "expected a greyscale DICOM image, found colour (SamplesPerPixel > 1)", sl.path
            )
        try:
            slope = _number(ds, "RescaleSlope", 1.0)
            inter = _number(ds, "RescaleIntercept", 0.0)
        except (TypeError, ValueError) as exc:
            raise InputError(
                "DICOM RescaleSlope/RescaleIntercept are not numbers", sl.path
            ) from exc
        if not (np.isfinite(slope) and np.isfinite(inter)) or slope == 0:
            raise InputError(
                f"DICOM rescale slope {slope} / intercept {inter} are invalid", sl.path
            )
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        try:
            px = np.asarray(ds.pixel_array)
        except (NotImplementedError, RuntimeError) as exc:
            text = str(exc).lower()
            if any(w in text for w in ("handler", "plugin", "decoder", "missing required")):
                name = getattr(ts, "name", str(ts))
                raise MissingDependencyError(
                    f"cannot decode compressed DICOM pixel data ({name}); install pylibjpeg "
                    "with its plugins or python-gdcm",
                    sl.path,
                ) from exc
            raise
    if px.shape != (sl.rows, sl.cols):
        raise InputError(
            f"DICOM pixel data has shape {px.shape}, header says {sl.rows}x{sl.cols}", sl.path
        )
    if px.dtype.kind not in "iu":
        raise InputError(f"DICOM pixel data has type {px.dtype}, expected integers", sl.path)
    return px, slope, inter


def _to_values(pixels: list[np.ndarray], slopes: list[float], inters: list[float]) -> np.ndarray:
    """Stack slices (each rows x cols) into array[col, row, k] with the rescale applied."""
    rows, cols = pixels[0].shape
    raw_dtype = np.result_type(*[p.dtype for p in pixels])
    raw = np.empty((cols, rows, len(pixels)), dtype=raw_dtype, order="F")
    for k, p in enumerate(pixels):
        raw[:, :, k] = p.T
    if len(set(slopes)) == 1 and len(set(inters)) == 1:
        return rescale_to_values(raw, slopes[0], inters[0])
    # Rescale differs between slices: per-slice values, then the narrowest exact type.
    integral = raw.dtype.kind in "iu" and all(
        float(s).is_integer() and float(b).is_integer() for s, b in zip(slopes, inters, strict=True)
    )
    wide = np.empty(raw.shape, dtype=np.int64 if integral else np.float64, order="F")
    for k in range(raw.shape[2]):
        wide[:, :, k] = raw[:, :, k].astype(wide.dtype) * slopes[k] + inters[k]
    if integral:
        lo, hi = int(wide.min()), int(wide.max())
        for cand in (np.int16, np.int32):
            info = np.iinfo(cand)
            if info.min <= lo and hi <= info.max:
                return wide.astype(cand, order="F")
    return wide.astype(np.float32, order="F")


def _interpolate_slices(arr: np.ndarray, s_pos: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation along k from positions ``s_pos`` onto ``targets`` (both ascending)."""
    idx = np.clip(np.searchsorted(s_pos, targets, side="right") - 1, 0, len(s_pos) - 2)
    w = (targets - s_pos[idx]) / (s_pos[idx + 1] - s_pos[idx])
    w = np.clip(w, 0.0, 1.0).astype(np.float32)
    out = np.empty((*arr.shape[:2], len(targets)), dtype=np.float32, order="F")
    for t in range(len(targets)):
        a = arr[:, :, idx[t]].astype(np.float32)
        b = arr[:, :, idx[t] + 1].astype(np.float32)
        out[:, :, t] = a + w[t] * (b - a)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(arr.dtype, order="F")
    return out


def _untilt(arr: np.ndarray, shifts_ij: np.ndarray) -> np.ndarray:
    """Shift each slice k in-plane by ``shifts_ij[k]`` voxels (linear, edge = minimum value)."""
    from scipy import ndimage

    fill = float(arr.min())
    out = np.empty(arr.shape, dtype=np.float32, order="F")
    for k in range(arr.shape[2]):
        out[:, :, k] = ndimage.shift(
            arr[:, :, k].astype(np.float32), shifts_ij[k], order=1, mode="grid-constant", cval=fill
        )
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(arr.dtype, order="F")
    return out


def read_dicom_series(
    folder: str | Path,
    *,
    series_uid: str | None = None,
    allow_uneven: bool = False,
    allow_tilt: bool = False,
) -> Volume:
    """Read the CT series of a DICOM folder into a RAS+ Volume (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("expected a folder of DICOM files", folder)
    found, n_files, unreadable = _scan(folder)
    slices: list[_Slice] = []
    for p, ds in found:
        try:
            sl = _as_slice(p, ds)
        except Exception as exc:  # malformed element values
            unreadable.append(f"{p.name} ({type(exc).__name__})")
            continue
        if sl is not None:
            slices.append(sl)
    if not slices:
        what = (
            f"{len(found)} DICOM file(s) but no image slice with a position and orientation"
            if found
            else "no DICOM files"
        )
        extra = f"; {len(unreadable)} unreadable: {', '.join(unreadable[:3])}" if unreadable else ""
        raise InputError(
            f"expected a DICOM image series, found {what} among {n_files} file(s){extra}", folder
        )

    groups: dict[str, list[_Slice]] = {}
    for sl in slices:
        groups.setdefault(sl.series_uid, []).append(sl)
    chosen, skipped = _pick_series(groups, series_uid, folder)
    series = groups[chosen]
    label = _series_label(chosen, series)
    if skipped:
        log.warning(
            "%s: found %d series: %s; using %s",
            folder,
            len(groups),
            "; ".join([label, *skipped]),
            label,
        )

    _check_consistent(series, folder)
    first = series[0]
    row_dir = first.orientation[:3] / np.linalg.norm(first.orientation[:3])
    col_dir = first.orientation[3:] / np.linalg.norm(first.orientation[3:])
    if (
        not (np.all(np.isfinite(row_dir)) and np.all(np.isfinite(col_dir)))
        or abs(float(row_dir @ col_dir)) > 1e-3
    ):
        raise GeometryError(
            f"ImageOrientationPatient {first.orientation.tolist()} is not two orthogonal unit "
            "vectors",
            folder,
        )
    normal = np.cross(row_dir, col_dir)
    s_all = np.array([sl.position @ normal for sl in series])
    order = np.lexsort((np.array([sl.instance for sl in series]), s_all))
    series = [series[i] for i in order]
    s_pos = s_all[order]
    if not np.all(np.isfinite(first.spacing)) or min(first.spacing) <= 0:
        raise GeometryError(
            f"DICOM PixelSpacing {first.spacing} is missing or not positive", folder
        )
    itemsize = 2 if float(first.slope).is_integer() else 4
    check_size((first.cols, first.rows, len(series)), itemsize, folder)

    n = len(series)
    notes: dict[str, Any] = {}
    # Gantry tilt: in-plane drift of the slice positions relative to the first one.
    rel = np.array([sl.position - series[0].position for sl in series])
    drift = rel - np.outer(s_pos - s_pos[0], normal)
    drift_norm = np.linalg.norm(drift, axis=1)
    max_drift = float(drift_norm.max()) if n > 1 else 0.0
    tilted = max_drift > TILT_TOLERANCE_MM
    if tilted:
        along = np.maximum(s_pos - s_pos[0], 1e-9)
        angle = float(np.degrees(np.max(np.arctan2(drift_norm[1:], along[1:]))))
        problem = (
            f"gantry tilt of about {angle:.2f} degrees: slice positions drift {max_drift:.2f} mm "
            "sideways from the slice normal"
        )
        if not allow_tilt:
            raise GeometryError(
                f"{problem}; pass allow_tilt=True (CLI: --allow-tilt) to resample onto an "
                "orthogonal grid",
                folder,
            )
        notes["tilt_corrected_deg"] = round(angle, 3)
        log.warning("%s: %s; resampling slices in-plane onto an orthogonal grid", folder, problem)

    if n > 1:
        step, targets, note = _slice_grid(s_pos, folder, allow_uneven)
    else:
        step = first.thickness or 1.0
        targets, note = None, None

    pixels: list[np.ndarray] = []
    slopes: list[float] = []
    inters: list[float] = []
    for sl in series:
        px, slope, inter = _decode_pixels(sl)
        pixels.append(px)
        slopes.append(slope)
        inters.append(inter)
    arr = _to_values(pixels, slopes, inters)
    del pixels

    if tilted:
        # drift in voxel units along i (row_dir, column spacing) and j (col_dir, row spacing)
        shifts = np.stack(
            [drift @ row_dir / first.spacing[1], drift @ col_dir / first.spacing[0]], axis=1
        )
        arr = _untilt(arr, shifts)
    if targets is not None:
        arr = _interpolate_slices(arr, s_pos, targets)
        notes["resampled"] = note
        notes["original_slice_positions_mm"] = [round(float(v), 4) for v in s_pos]

    lps = np.eye(4)
    lps[:3, 0] = row_dir * first.spacing[1]
    lps[:3, 1] = col_dir * first.spacing[0]
    lps[:3, 2] = normal * step
    lps[:3, 3] = series[0].position
    affine = check_affine(LPS_TO_RAS @ lps, folder, "DICOM geometry")

    s0 = series[0]
    dicom_meta: dict[str, Any] = {
        "files": [str(sl.path) for sl in series],
        "StudyInstanceUID": s0.study_uid,
        "SeriesInstanceUID": chosen,
        "FrameOfReferenceUID": s0.frame_uid,
        "Modality": s0.modality,
        "SeriesDescription": s0.description,
        "series_used": label,
        "series_found": [label, *skipped],
        "rescale_slope": sorted(set(slopes)),
        "rescale_intercept": sorted(set(inters)),
        **notes,
    }
    if unreadable:
        dicom_meta["unreadable_files"] = unreadable[:20]
    meta: dict[str, Any] = {
        "source": str(folder),
        "format": "dicom",
        "modality": dicom_meta["Modality"],
        "dicom": dicom_meta,
    }
    if skipped:
        meta["note"] = f"found {len(groups)} series: {'; '.join([label, *skipped])}; using {label}"
    return Volume(arr, affine, meta)


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as fits."""
    for digits in range(15, 5, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"  # pragma: no cover


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    *,
    modality: str = "CT",
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_uid: str | None = None,
    series_description: str = "lungspread",
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
) -> list[Path]:
    """Write ``volume`` as single-frame DICOM slices ``slice_0000.dcm``... into ``folder``.

    Meant for tests and for handing a volume to DICOM-only tools: slice ``k`` holds
    ``array[:, :, k]`` (columns along axis i, rows along axis j), stored as int16
    ``(value - intercept) / slope``; positions and orientation come from the affine (LPS,
    decimal strings of at most 16 characters, so positions keep about 10 significant digits).
    Instance UIDs derive from the series UID, so a given ``series_uid`` gives identical files.
    The reader sorts slices along ``cross(row, column)``: a volume whose k axis points the other
    way reads back with k reversed (same voxels in space).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(volume.array)
    if arr.dtype.kind not in "iub":
        raise InputError(f"write_dicom_series needs integer voxels, found {arr.dtype}", folder)
    stored = np.rint((arr.astype(np.float64) - rescale_intercept) / rescale_slope)
    if stored.size and (stored.min() < -32768 or stored.max() > 32767):
        raise InputError("voxel values do not fit int16 with this rescale slope/intercept", folder)
    lps = LPS_TO_RAS @ volume.affine
    sp = np.linalg.norm(lps[:3, :3], axis=0)
    row_dir, col_dir = lps[:3, 0] / sp[0], lps[:3, 1] / sp[1]
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    sop_class = MRImageStorage if modality.upper() == "MR" else CTImageStorage
    paths: list[Path] = []
    for k in range(arr.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesDescription = series_description
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        pos = lps[:3, :3] @ np.array([0.0, 0.0, float(k)]) + lps[:3, 3]
        ds.ImagePositionPatient = [_ds(float(v)) for v in pos]
        ds.ImageOrientationPatient = [_ds(float(v)) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds(float(sp[1])), _ds(float(sp[0]))]
        ds.SliceThickness = _ds(float(sp[2]))
        ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _ds(rescale_slope)
        ds.RescaleIntercept = _ds(rescale_intercept)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype("<i2").tobytes()
        path = folder / f"slice_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

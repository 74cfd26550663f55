"""DICOM Segmentation (``segmentation.dcm``) that references the source CT series (highdicom).

Written only when the CT came from a DICOM series: ``ct.meta["dicom"]`` holds the slice files
(a dict with ``"files"``, or a plain list of paths, in any order). The SEG object takes the
source's patient and study (the standard requires it, so that a PACS or viewer files it with the
series), references every source instance, and has one segment per structure (right lung, left
lung, each lesion), with SNOMED CT codes and the lesion id as tracking id. Segments do not
overlap: a tumor voxel belongs to its lesion, not to the lung around it. Frames are matched to
the source slices by position, so the mask must lie on the source grid (any voxel-axis order or
flip of it); empty frames are omitted.

UIDs are derived from the source series and the mask contents, so the same input gives the same
SEG (deterministic output), while a different mask gives a new series.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import GeometryError, InputError, MissingDependencyError
from lungspread.export.structures import Structure
from lungspread.volume import LPS_TO_RAS, Volume


def dicom_files(ct: Volume) -> list[Path]:
    """The source slice files recorded by the DICOM reader (empty if the CT is not DICOM)."""
    info = ct.meta.get("dicom")
    files: Any = None
    if isinstance(info, dict):
        files = info.get("files")
    elif isinstance(info, (list, tuple)):
        files = info
    if not files:
        return []
    return [Path(f) for f in files]


def _require_highdicom() -> Any:
    try:
        import highdicom
    except ImportError as exc:
        raise MissingDependencyError(
            "DICOM-SEG export needs highdicom; install it with `pip install lungspread[dicomseg]`"
        ) from exc
    return highdicom


def read_source_headers(files: Sequence[Path]) -> list[Any]:
    """The source datasets without pixel data (enough for highdicom to reference them)."""
    import pydicom

    datasets = []
    for f in files:
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types for broken files
            raise InputError(f"cannot read DICOM header ({type(exc).__name__}: {exc})", f) from exc
        for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows"):
            if key not in ds:
                raise InputError(f"DICOM slice lacks {key}; cannot reference it in a SEG", f)
        datasets.append(ds)
    return datasets


def _frame_indices(ds: Any, ct: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Volume indices (i, j, k arrays of shape rows x cols) of every pixel of a source slice."""
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    to_index = np.linalg.inv(ct.affine)
    ras = LPS_TO_RAS[:3, :3]

    def index_of(lps: np.ndarray) -> np.ndarray:
        out: np.ndarray = to_index[:3, :3] @ (ras @ lps) + to_index[:3, 3]
        return out

    origin = index_of(ipp)
    step_col = index_of(ipp + iop[:3] * col_mm) - origin  # along a row: next column
    step_row = index_of(ipp + iop[3:] * row_mm) - origin  # down a column: next row
    for name, vec in (("origin", origin), ("column step", step_col), ("row step", step_row)):
        if np.max(np.abs(vec - np.round(vec))) > 0.05:
            raise GeometryError(
                f"the mask grid does not match the DICOM slice {ds.get('SOPInstanceUID', '?')} "
                f"({name} falls between voxels: {np.round(vec, 3).tolist()}); DICOM-SEG needs the "
                "mask on the source slices"
            )
    origin, step_col, step_row = np.round(origin), np.round(step_col), np.round(step_row)
    rows, cols = int(ds.Rows), int(ds.Columns)
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    idx = [(origin[a] + c * step_col[a] + r * step_row[a]).astype(np.int64) for a in range(3)]
    shape = ct.shape
    for a in range(3):
        if idx[a].min() < 0 or idx[a].max() >= shape[a]:
            raise GeometryError(
                f"DICOM slice {ds.get('SOPInstanceUID', '?')} lies outside the mask grid "
                f"{shape}; DICOM-SEG needs the mask on the source slices"
            )
    return idx[0], idx[1], idx[2]


def _segment_description(hd: Any, number: int, s: Structure, algorithm: str | None) -> Any:
    from pydicom.sr.codedict import codes

    from lungspread import __version__

    side = {"right": codes.SCT.Right, "left": codes.SCT.Left}.get(s.side or "")
    if s.kind == "lung":
        category, prop_type = codes.SCT.AnatomicalStructure, codes.SCT.Lung
        anatomic: list[Any] = []
    else:
        category, prop_type = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm
        lung = hd.sr.CodedConcept(
            value=codes.SCT.Lung.value,
            scheme_designator=codes.SCT.Lung.scheme_designator,
            meaning=codes.SCT.Lung.meaning,
        )
        anatomic = [lung]
    if algorithm:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        identification = hd.AlgorithmIdentificationSequence(
            name=algorithm[:64],
            family=codes.cid7162.ArtificialIntelligence,
            version=__version__,
        )
    else:
        algorithm_type = hd.seg.SegmentAlgorithmTypeValues.MANUAL
        identification = None
    label = s.name  # as in the .seg.nrrd; laterality is coded below
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label[:64],
        segmented_property_category=category,
        segmented_property_type=prop_type,
        algorithm_type=algorithm_type,
        algorithm_identification=identification,
        tracking_id=s.lesion_id if s.kind == "lesion" else s.key,
        tracking_uid=_uid("tracking", s.key, s.name),
        anatomic_regions=anatomic or None,
        display_color=hd.color.CIELabColor.from_rgb(*(round(c * 255) for c in s.color)),
    )
    if side is not None and s.kind == "lung":
        # Laterality of the segmented property itself: SegmentedPropertyTypeModifierCodeSequence.
        description.SegmentedPropertyTypeCodeSequence[
            0
        ].SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept(
                value=side.value, scheme_designator=side.scheme_designator, meaning=side.meaning
            )
        ]
    elif side is not None:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [
            hd.sr.CodedConcept(
                value=side.value, scheme_designator=side.scheme_designator, meaning=side.meaning
            )
        ]
    return description


def _uid(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(("lungspread", *parts)).encode("utf-8")).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def write_dicom_seg(
    path: str | Path,
    structures: Sequence[Structure],
    ct: Volume,
    *,
    algorithm: str | None = "lungspread",
    series_number: int = 9901,
) -> Path:
    """Write a binary DICOM Segmentation of ``structures`` referencing the CT's source series.

    ``algorithm``: name of the algorithm that made the masks (segments are AUTOMATIC); ``None``
    marks them MANUAL (a mask drawn by a person or of unknown origin).
    Raises :class:`InputError` when the CT did not come from DICOM files.
    """
    hd = _require_highdicom()
    from lungspread import __version__

    path = Path(path)
    files = dicom_files(ct)
    if not files:
        raise InputError(
            "DICOM-SEG needs a CT read from a DICOM series (no source slices recorded)",
            ct.meta.get("source"),
        )
    if not structures:
        raise InputError("DICOM-SEG needs at least one segment; the masks are empty")
    datasets = read_source_headers(files)
    multi = [d for d in datasets if int(d.get("NumberOfFrames", 1) or 1) > 1]
    if multi:
        raise InputError("DICOM-SEG export supports single-frame CT slices only", files[0])
    # Slice order by position along the slice normal (file names say nothing).
    normal = np.cross(
        np.asarray(datasets[0].ImageOrientationPatient[:3], dtype=float),
        np.asarray(datasets[0].ImageOrientationPatient[3:], dtype=float),
    )
    datasets.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    # One label map (segment numbers), lungs first and lesions painted over them: memory stays
    # at one byte per voxel whatever the number of lesions (a binary stack per segment would
    # need a byte per voxel per segment), at the price of lung segments without the tumor
    # voxels inside them (documented in docs/export.md).
    labels = np.zeros(ct.shape, dtype=np.uint8 if len(structures) < 256 else np.uint16)
    order = sorted(range(len(structures)), key=lambda n: structures[n].kind != "lung")
    for n in order:
        s = structures[n]
        view = labels[s.bbox]
        view[s.crop] = n + 1
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    pixels = np.zeros((len(datasets), rows, cols), dtype=labels.dtype)
    for f, ds in enumerate(datasets):
        ii, jj, kk = _frame_indices(ds, ct)
        pixels[f] = labels[ii, jj, kk]
    del labels
    source_series = str(datasets[0].SeriesInstanceUID)
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()
    names = "|".join(s.name for s in structures)
    descriptions = [
        _segment_description(hd, n, s, algorithm) for n, s in enumerate(structures, start=1)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=_uid("series", source_series, digest, names),
            series_number=series_number,
            sop_instance_uid=_uid("instance", source_series, digest, names),
            instance_number=1,
            manufacturer="lungspread",
            manufacturer_model_name="lungspread",
            software_versions=__version__,
            device_serial_number="none",
            series_description="lungspread lungs and tumor",
            content_label="LUNGSPREAD",
            content_description="Lungs and lung tumor lesions",
            omit_empty_frames=True,
        )
    except (AttributeError, KeyError) as exc:
        # highdicom copies the patient and study modules from the source; a series without
        # them (type 2 attributes left out, as some anonymizers do) cannot be referenced.
        raise InputError(
            f"the source series lacks an attribute a DICOM-SEG must copy ({exc})", files[0]
        ) from exc
    from lungspread.export.files import atomic_path

    with atomic_path(path) as tmp:
        seg.save_as(str(tmp))
    return path


def patient_identifiers(ct: Volume) -> dict[str, str]:
    """Patient and study identity of a DICOM-sourced CT (for reports made with keep_identifiers)."""
    files = dicom_files(ct)
    if not files:
        return {}
    import pydicom

    try:
        ds = pydicom.dcmread(str(files[0]), stop_before_pixels=True)
    except Exception:  # the identity is optional in a report; an unreadable file just lacks it
        return {}
    out: dict[str, str] = {}
    for key, label in (
        ("PatientName", "Patient name"),
        ("PatientID", "Patient ID"),
        ("PatientBirthDate", "Birth date"),
        ("AccessionNumber", "Accession number"),
        ("StudyDate", "Study date"),
        ("StudyDescription", "Study"),
        ("SeriesDescription", "Series"),
        ("StudyInstanceUID", "Study UID"),
        ("SeriesInstanceUID", "Series UID"),
    ):
        value = str(ds.get(key, "") or "").strip()
        if value:
            out[label] = value
    return out

"""Exports of a tumor (and lung) segmentation: 3D Slicer, meshes, DICOM-SEG, figures, HTML.

:func:`write_exports` is what ``lungspread analyze`` calls in its output step and what
``lungspread export`` calls for an existing mask. It writes into one folder::

    segmentation.seg.nrrd        3D Slicer segmentation (named, coloured segments, CT geometry)
    segmentation.dcm             DICOM-SEG, only when the CT came from a DICOM series
    meshes/<structure>.stl|.obj  surfaces in LPS mm (SPACE=LPS, as 3D Slicer expects)
    meshes/scene.glb             all surfaces, coloured, glTF frame (+X left, +Y up, metres)
    figures/*.png                per-lesion views, axial montage, 3D rendering
    report.html                  self-contained report with interactive 3D and slice views

Patient identifiers appear only in the DICOM-SEG (as the standard requires) unless
``keep_identifiers`` is set, which adds them to the HTML report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lungspread.errors import GeometryError, InputError, MissingDependencyError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

__all__ = ["ExportOptions", "export_mask", "write_all", "write_exports"]


@dataclass(frozen=True)
class ExportOptions:
    """Which outputs to write, and how.

    ``algorithm``: name recorded in the DICOM-SEG as the algorithm that made the masks; ``None``
    records them as manual (a mask from a person or of unknown origin).
    """

    slicer: bool = True
    meshes: bool = True
    dicom_seg: bool = True
    figures: bool = True
    html: bool = True
    keep_identifiers: bool = False
    algorithm: str | None = "lungspread"
    lung_max_faces: int = 60000
    lesion_max_faces: int = 20000
    smoothing_iterations: int = 10
    html_lung_faces: int = 12000
    html_lesion_faces: int = 3000
    html_slices: bool = True
    max_lesion_figures: int = 12

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _figure_caption(name: str, lesion_names: Mapping[str, str]) -> str:
    if name == "axial_montage.png":
        return "Axial slices that contain tumor, with the tumor and lung outlines."
    if name == "render_3d.png":
        return "3D rendering: translucent lungs with the tumor lesions in colour."
    stem = name.removesuffix(".png")
    label = lesion_names.get(stem, stem)
    return (
        f"{label}: axial, coronal and sagittal views through the lesion's centre (top) and "
        "zoomed in (bottom)."
    )


def write_exports(
    out_dir: str | Path,
    ct: Volume,
    tumor: Volume,
    lungs: Volume | None,
    report: Mapping[str, Any] | None,
    options: ExportOptions | None = None,
) -> list[Path]:
    """Write the selected exports for ``tumor`` (0/1 on the CT grid) into ``out_dir``.

    ``lungs`` (labels 1 right, 2 left) and ``report`` (the spread report dict) are optional:
    without them the lung segments and the report's measures are left out. Returns the paths
    written. Raises :class:`~lungspread.errors.GeometryError` when a mask is not on the CT
    grid.
    """
    from lungspread import __version__
    from lungspread.export.files import atomic_path, atomic_write
    from lungspread.export.structures import build_structures

    opts = options or ExportOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    structures = build_structures(ct, tumor, lungs, dict(report) if report else None)
    written: list[Path] = []

    if opts.slicer:
        from lungspread.export.slicer import write_seg_nrrd

        target = out / "segmentation.seg.nrrd"
        with atomic_path(target) as tmp:
            write_seg_nrrd(tmp, structures, ct)
        written.append(target)

    if opts.dicom_seg:
        from lungspread.export.dicom_seg import dicom_files, write_dicom_seg

        info = ct.meta.get("dicom")
        if not dicom_files(ct):
            log.info("DICOM-SEG skipped: the CT was not read from a DICOM series")
        elif not structures:
            log.info("DICOM-SEG skipped: no lung or tumor voxels")
        elif isinstance(info, dict) and info.get("resampled"):
            log.warning(
                "DICOM-SEG skipped: the DICOM slices were resampled to even spacing on reading, "
                "so the masks are not on the source slices"
            )
        else:
            try:
                written.append(
                    write_dicom_seg(
                        out / "segmentation.dcm", structures, ct, algorithm=opts.algorithm
                    )
                )
            except (GeometryError, InputError, MissingDependencyError) as exc:
                # The other exports are still valid; a SEG that cannot reference its source
                # slices (or without highdicom installed) is left out with the reason rather
                # than failing the whole run.
                log.warning("DICOM-SEG skipped: %s", exc)

    meshes = []
    if opts.meshes or opts.html or opts.figures:
        from lungspread.export.mesh import build_meshes

        meshes = build_meshes(
            structures,
            ct.affine,
            lung_max_faces=opts.lung_max_faces,
            lesion_max_faces=opts.lesion_max_faces,
            smoothing_iterations=opts.smoothing_iterations,
        )
        for m in meshes:
            if m.structure.kind == "lesion" and m.voxel_volume_mm3 > 0:
                log.info(
                    "%s: mesh volume %.1f mm3 (marching cubes %.1f mm3, voxels %.1f mm3, "
                    "offset %.3f mm)",
                    m.structure.name,
                    m.mesh_volume_mm3,
                    m.raw_volume_mm3,
                    m.voxel_volume_mm3,
                    m.offset_mm,
                )
    if opts.meshes and meshes:
        from lungspread.export.mesh import write_mesh_files

        written.extend(write_mesh_files(meshes, out / "meshes"))

    light: list[tuple[Any, Any, Any]] = []
    if (opts.figures or opts.html) and meshes:
        from lungspread.export.mesh import decimated

        for m in meshes:
            limit = opts.html_lung_faces if m.structure.kind == "lung" else opts.html_lesion_faces
            v, f = decimated(m, limit)
            light.append((m.structure, v, f))

    figures: dict[str, bytes] = {}
    if opts.figures or opts.html:
        from lungspread.report.figures import make_figures

        figures = make_figures(ct, structures, light, max_lesion_figures=opts.max_lesion_figures)
    if opts.figures:
        fig_dir = out / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, data in figures.items():
            written.append(atomic_write(fig_dir / name, data))

    if opts.html:
        from lungspread.report.context import build_context
        from lungspread.report.html import mesh_payload, render_html, write_html
        from lungspread.report.slices import axial_stack

        lesions = [s for s in structures if s.kind == "lesion"]
        lesion_info = [
            {
                "id": s.lesion_id,
                "name": s.name,
                "color": s.color_hex,
                "volume_ml": s.volume_ml,
                "report": s.report or {"volume_ml": s.volume_ml},
            }
            for s in lesions
        ]
        identifiers: dict[str, str] | None = None
        if opts.keep_identifiers:
            from lungspread.export.dicom_seg import patient_identifiers

            identifiers = patient_identifiers(ct)
            source = ct.meta.get("source")
            if source:
                identifiers = {"Source": str(source), **identifiers}
        names = {s.file_stem: s.name for s in lesions}
        order = [f"{s.file_stem}.png" for s in lesions] + ["axial_montage.png", "render_3d.png"]
        fig_list = [
            {"file": name, "caption": _figure_caption(name, names)}
            for name in order
            if name in figures
        ]
        ctx = build_context(
            report,
            lesions=lesion_info,
            identifiers=identifiers,
            version=__version__,
            figures=fig_list,
        )
        slice_data = axial_stack(ct, structures) if opts.html_slices else None
        page = render_html(
            ctx,
            figures=figures,
            mesh_data=mesh_payload(light) if light else None,
            slice_data=slice_data,
        )
        written.append(write_html(out / "report.html", page))
    return written


def write_all(
    out_dir: str | Path,
    *,
    ct: Volume,
    tumor: Volume,
    lungs: Volume | None,
    report: Mapping[str, Any] | None,
    source: Path | None = None,
    options: ExportOptions | None = None,
) -> list[Path]:
    """The hook ``lungspread analyze`` calls: :func:`write_exports` with keyword arguments.

    ``source`` (the input path) is accepted for the hook's contract and not written anywhere:
    paths can carry patient names.
    """
    del source
    return write_exports(out_dir, ct, tumor, lungs, report, options)


def export_mask(
    mask: str | Path,
    ct: str | Path,
    out: str | Path,
    *,
    lungs: str | Path | None = None,
    segment_lungs: bool = True,
    overwrite: bool = False,
    options: ExportOptions | None = None,
) -> list[Path]:
    """``lungspread export``: write the exports of an existing tumor mask (all or nothing).

    Reads the mask and its CT (and the lung mask, if given; otherwise the lungs are segmented
    when ``segment_lungs`` and :mod:`lungspread.lungs` is available), computes the spread report
    when :mod:`lungspread.spread` is available, and writes :func:`write_exports`' files plus
    ``run.json`` into ``out``. Returns the written paths (final locations).
    """
    from lungspread.io import read_volume
    from lungspread.outputs import RunRecord, output_dir

    opts = options or ExportOptions(algorithm=None)

    def shown(path: str | Path | None) -> str | None:
        # file names only unless identifiers are kept: folder names often carry patient names
        if path is None:
            return None
        return str(path) if opts.keep_identifiers else Path(path).name

    record = RunRecord(
        "export",
        inputs={"mask": shown(mask), "ct": shown(ct), "lungs": shown(lungs)},
        options=opts.as_dict(),
    )
    with output_dir(out, overwrite) as stage:
        ct_vol = read_volume(ct)
        tumor = read_volume(mask)
        lung_vol = read_volume(lungs) if lungs is not None else None
        record.stage("read")
        if lung_vol is None and segment_lungs:
            lung_vol = _segment_lungs(ct_vol)
            record.stage("lungs")
        report = _spread_report(tumor, ct_vol, lung_vol)
        record.stage("spread")
        written = write_exports(stage, ct_vol, tumor, lung_vol, report, opts)
        record.stage("export")
        rel = [p.relative_to(stage).as_posix() for p in written]
        record.write(stage, outputs=rel, lungs_source=_lungs_source(lungs, lung_vol))
    return [Path(out) / r for r in rel]


def _lungs_source(path: str | Path | None, lungs: Volume | None) -> str:
    if path is not None:
        return "given"
    return "segmented" if lungs is not None else "none"


def _segment_lungs(ct: Volume) -> Volume | None:
    """Lung mask from :mod:`lungspread.lungs`, or ``None`` while it is not installed."""
    try:
        from lungspread.lungs import segment_lungs
    except ImportError:
        log.info("lungspread.lungs is not available; exporting without lung segments")
        return None
    result: Volume = segment_lungs(ct)
    return result


def _spread_report(tumor: Volume, ct: Volume, lungs: Volume | None) -> dict[str, Any] | None:
    """The spread report, or ``None`` while :mod:`lungspread.spread` is not installed."""
    try:
        from lungspread.spread import spread_report
    except ImportError:
        log.info("lungspread.spread is not available; exporting without measures")
        return None
    result: dict[str, Any] = spread_report(tumor, ct=ct, lungs=lungs)
    return result

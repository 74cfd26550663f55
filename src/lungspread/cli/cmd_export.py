"""``lungspread export MASK --ct CT --out DIR``: 3D Slicer segmentation, meshes, DICOM-SEG,
figures and the HTML report for an existing tumor mask."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        mask: Path = typer.Argument(
            ..., help="Tumor mask (0/1) on the CT's grid: NIfTI, NRRD or MHA."
        ),
        ct: Path = typer.Option(
            ..., "--ct", help="The CT the mask belongs to (file or DICOM series folder)."
        ),
        out: Path = typer.Option(..., "--out", help="Output folder."),
        lungs: Path | None = typer.Option(
            None,
            "--lungs",
            help="Lung mask (1 right, 2 left) on the CT's grid; segmented from the CT if absent.",
        ),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace files in an existing output folder."
        ),
        no_meshes: bool = typer.Option(False, "--no-meshes", help="Skip STL/OBJ/GLB meshes."),
        no_figures: bool = typer.Option(False, "--no-figures", help="Skip the PNG figures."),
        no_html: bool = typer.Option(False, "--no-html", help="Skip report.html."),
        no_slicer: bool = typer.Option(
            False, "--no-slicer", help="Skip segmentation.seg.nrrd (3D Slicer)."
        ),
        no_dicom_seg: bool = typer.Option(
            False, "--no-dicom-seg", help="Skip the DICOM-SEG (only written for DICOM input)."
        ),
        keep_identifiers: bool = typer.Option(
            False,
            "--keep-identifiers",
            help="Put patient and study identifiers and input paths in report.html and run.json.",
        ),
    ) -> None:
        """Write a 3D Slicer segmentation, meshes, DICOM-SEG, figures and report.html for a mask."""
        from rich.console import Console

        from lungspread.export import ExportOptions, export_mask

        options = ExportOptions(
            slicer=not no_slicer,
            meshes=not no_meshes,
            dicom_seg=not no_dicom_seg,
            figures=not no_figures,
            html=not no_html,
            keep_identifiers=keep_identifiers,
            algorithm=None,
        )
        written = export_mask(mask, ct, out, lungs=lungs, overwrite=overwrite, options=options)
        console = Console(soft_wrap=True, highlight=False)
        console.print(f"[bold]lungspread export[/bold]: {len(written)} files in {out}")
        for path in written:
            console.print(f"  {path}")

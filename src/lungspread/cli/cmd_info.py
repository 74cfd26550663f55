"""``lungspread info CT``: geometry, intensities and CT check of one image."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        ct: Path = typer.Argument(
            ..., help="CT image: .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd or a DICOM folder."
        ),
        force_ct: bool = typer.Option(
            False, "--force-ct", help="Accept an image that does not look like CT in HU."
        ),
        allow_uneven: bool = typer.Option(
            False,
            "--allow-uneven",
            help="DICOM: interpolate missing slices / uneven spacing onto an even grid.",
        ),
        allow_tilt: bool = typer.Option(
            False, "--allow-tilt", help="DICOM: resample a gantry-tilted series onto a square grid."
        ),
        series: str | None = typer.Option(
            None, "--series", help="DICOM: SeriesInstanceUID to read when a folder has several."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Print shape, spacing, orientation, value range and the CT check of an image."""
        from lungspread.io.info import volume_info

        result = volume_info(
            ct,
            force_ct=force_ct,
            series_uid=series,
            allow_uneven=allow_uneven,
            allow_tilt=allow_tilt,
        )
        if as_json:
            import json
            import math

            def clean(o: object) -> object:
                if isinstance(o, float) and not math.isfinite(o):
                    return None
                if isinstance(o, dict):
                    return {k: clean(v) for k, v in o.items()}
                if isinstance(o, list):
                    return [clean(v) for v in o]
                return o

            typer.echo(json.dumps(clean(result.to_dict()), indent=2))
            return

        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        sp = ", ".join(f"{s:.4g}" for s in result.spacing_mm)
        ext = ", ".join(f"{s:.1f}" for s in result.extent_mm)
        org = ", ".join(f"{s:.2f}" for s in result.origin_mm)
        table.add_row("file", result.source)
        table.add_row("format", result.format)
        table.add_row("shape", " x ".join(str(s) for s in result.shape) + f"  ({result.dtype})")
        table.add_row("spacing", f"{sp} mm")
        table.add_row("extent", f"{ext} mm")
        i, j, k = tuple(result.axis_codes)
        table.add_row(
            "orientation",
            f"{result.axis_codes}: axes i, j, k point to {i}, {j}, {k} (world frame RAS+)"
            + ("; oblique" if result.oblique else ""),
        )
        table.add_row("origin", f"{org} mm (RAS, centre of voxel 0,0,0)")
        table.add_row("values", f"{result.value_min:g} .. {result.value_max:g}")
        table.add_row("CT check", result.ct.summary())
        if result.dicom is not None:
            table.add_row("DICOM series", str(result.dicom.get("series_used", "")))
            others = result.dicom.get("series_found", [])[1:]
            if others:
                table.add_row("skipped", "; ".join(str(o) for o in others))
        for note in result.notes:
            table.add_row("note", note)
        Console(soft_wrap=True).print(table)

"""``lungspread lungs CT --out DIR``: right and left lung masks, zones and volumes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from lungspread.volume import Volume


def register(app: typer.Typer) -> None:
    @app.command("lungs")
    def lungs(
        ct: Path = typer.Argument(
            ..., help="CT image: .nii/.nii.gz, .nrrd/.nhdr, .mha/.mhd or a DICOM folder."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace lungs.* and run.json in a non-empty --out."
        ),
        force_ct: bool = typer.Option(
            False, "--force-ct", help="Accept an image that does not look like CT in HU."
        ),
    ) -> None:
        """Segment the lungs without learned weights (1 = right, 2 = left; lungmask labels).

        Writes DIR/lungs.nii.gz on the CT's exact grid, DIR/lungs.json (volumes of each lung
        and of its upper, middle and lower thirds, in mL) and DIR/run.json.
        """
        from dataclasses import asdict

        from rich.console import Console

        from lungspread.io import read_volume, write_volume
        from lungspread.lungs import LungOptions, analyze_lungs
        from lungspread.outputs import RunRecord, output_dir, write_json

        options = LungOptions()
        record = RunRecord(
            "lungs",
            inputs={"ct": ct.name},  # the name only: folder names often carry patient names
            options={"overwrite": overwrite, "force_ct": force_ct, **asdict(options)},
        )
        with output_dir(out, overwrite=overwrite) as stage:
            volume = read_volume(ct)
            record.stage("read")
            check = _check_ct(volume, ct, force_ct)
            result = analyze_lungs(volume, options)
            record.stage("segment")
            write_volume(result.labels, stage / "lungs.nii.gz")
            write_json(stage / "lungs.json", {"ct": ct.name, **result.to_dict()})
            record.stage("write")
            record.write(stage, ct_check=check, outputs=["lungs.nii.gz", "lungs.json"])

        v, z = result.volumes_ml, result.zone_volumes_ml
        console = Console()
        console.print(
            f"right lung [bold]{v['right_ml']:.0f} mL[/] "
            f"(upper {z['right_upper_ml']:.0f}, middle {z['right_middle_ml']:.0f}, "
            f"lower {z['right_lower_ml']:.0f}); "
            f"left lung [bold]{v['left_ml']:.0f} mL[/] "
            f"(upper {z['left_upper_ml']:.0f}, middle {z['left_middle_ml']:.0f}, "
            f"lower {z['left_lower_ml']:.0f}); "
            f"{result.timings_s.get('total', float('nan')):.1f} s"
        )
        console.print(f"wrote {out / 'lungs.nii.gz'}, lungs.json, run.json")


def _check_ct(volume: Volume, path: Path, force: bool) -> str | None:
    """Run the CT sanity check when lungspread.ct_check is available; its summary line."""
    try:
        from lungspread.ct_check import check_ct
    except ImportError:  # pragma: no cover - optional while the package grows
        return None
    return str(check_ct(volume, path, force=force).summary())

"""``lungspread phantom OUT``: synthetic chest CTs with exact tumor and lung masks (MSD layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lungspread.phantom.mimics import MAX_PER_CASE


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    def phantom_cmd(
        out: Path = typer.Argument(..., help="Output folder (must be empty or new)."),
        cases: int = typer.Option(1, "--cases", "-n", min=1, help="Number of phantoms."),
        seed: int = typer.Option(
            0, "--seed", min=0, help="Seed of the first case (case n: seed + n)."
        ),
        size: str = typer.Option(
            "small",
            "--size",
            help="small (96x96x64, 3.6 mm), medium (192x192x128, 1.8 mm) or full (512x512x256).",
        ),
        tumors: int = typer.Option(
            -1, "--tumors", help="Tumors per case (default: 0 to 5 drawn from the seed)."
        ),
        mimics: int = typer.Option(
            0,
            "--mimics",
            min=0,
            max=MAX_PER_CASE,
            help="Non-tumor opacities per case (dependent and plate-like atelectasis, not in "
            "the tumor mask): negatives that look like faint tumors.",
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in OUT."),
    ) -> None:
        """Write synthetic chest CT phantoms as a Medical Segmentation Decathlon dataset.

        OUT gets dataset.json, imagesTr/ (int16 HU), labelsTr/ (tumor 0/1), lungsTr/ (1 right,
        2 left lung), metaTr/ (lesions of each case) and run.json. The same seed always gives
        the same phantoms.
        """
        from rich.console import Console

        from lungspread.errors import InputError
        from lungspread.phantom import SIZES, write_phantom_dataset

        if size not in SIZES:
            raise InputError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
        console = Console(highlight=False)

        def on_case(n: int, summary: dict[str, Any]) -> None:
            vols = summary["lung_volumes_ml"]
            console.print(
                f"  {summary['case']}: {len(summary['lesions'])} tumor(s), "
                f"{summary['tumor_volume_ml']:.2f} mL; lungs R {vols['right_ml'] / 1000:.2f} L, "
                f"L {vols['left_ml'] / 1000:.2f} L"
            )

        folder = write_phantom_dataset(
            out,
            cases=cases,
            seed=seed,
            size=size,
            overwrite=overwrite,
            tumors=None if tumors < 0 else tumors,
            mimics=mimics,
            on_case=on_case,
        )
        console.print(
            f"[bold]{cases} phantom(s)[/bold] written to {folder}/ (dataset.json, "
            "imagesTr/, labelsTr/, lungsTr/, metaTr/)"
        )

"""``lungspread demo``: analyze a synthetic chest CT with known tumors; nothing to download."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Path = typer.Option(
            Path("lungspread-demo"),
            "--out",
            "-o",
            help="Output folder (an earlier demo's is replaced).",
        ),
        seed: int = typer.Option(0, "--seed", help="Phantom seed (another seed, another patient)."),
        size: str = typer.Option(
            "medium",
            "--size",
            help="Phantom size: medium (1.8 mm), small (3.6 mm, coarse) or full (512x512).",
        ),
        device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    ) -> None:
        """Run the whole job on a phantom chest CT with known tumors and score it.

        Makes the phantom, runs analyze with the bundled model, prints Dice against the
        phantom's true tumors and where the files are. Needs no data and no network.
        """
        import math

        from rich.console import Console

        from lungspread.analyze import STAGES
        from lungspread.cli.cmd_analyze import print_summary
        from lungspread.demo import run_demo

        console = Console(highlight=False)
        words = {"phantom": "making a phantom chest CT", **STAGES}
        console.print("[bold]lungspread demo[/bold]: a synthetic chest CT with known tumors")
        with console.status("starting") as status:

            def on_stage(name: str, seconds: float | None) -> None:
                text = words.get(name, name)
                if seconds is None:
                    status.update(f"{text} ...")
                else:
                    console.print(f"  [green]done[/green] {text:<34} {seconds:6.2f} s")

            demo = run_demo(out, seed=seed, size=size, device=device, on_stage=on_stage)
        print_summary(console, demo.result, None)
        c = demo.comparison
        les = c["lesions"]
        d = c["dice"]
        dice_text = "undefined (no tumor in truth or result)" if math.isnan(d) else f"{d:.3f}"
        console.print(
            f"\n[bold]Against the known truth[/bold]: Dice {dice_text}; "
            f"{les['found']} of {les['true_lesions']} true lesion(s) found, "
            f"{les['false_positive_lesions']} false-positive lesion(s); "
            f"true tumor {c['true_tumor_ml']:.2f} mL, found {c['found_tumor_ml']:.2f} mL"
        )
        console.print(
            f"[bold]Files[/bold] in {demo.out}/: ct.nii.gz (the phantom), truth_tumor.nii.gz, "
            "tumor.nii.gz, lungs.nii.gz, report.json, demo.json, run.json"
        )
        console.print(
            f"Next: lungspread analyze YOUR_CT.nii.gz --out results/  "
            f"(or open {demo.out}/ct.nii.gz with the masks in 3D Slicer)"
        )

"""``lungspread evaluate`` and ``lungspread compare``: metrics of trained models, side by side."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        run: Path = typer.Argument(..., help="Training run (or model) folder.", show_default=False),
        data: Path = typer.Argument(..., help="MSD-format dataset folder.", show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder.", show_default=False),
        subset: str = typer.Option(
            "all",
            "--subset",
            help="all: RUN/model.* on every case; val: each fold's model on its validation "
            "cases (cross-validation on the training data).",
        ),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        tta: bool = typer.Option(False, "--tta", help="Mirror test-time augmentation."),
        figures: bool = typer.Option(True, "--figures/--no-figures", help="PNG per case."),
        save_predictions: bool = typer.Option(
            False, "--save-predictions", help="Also write predictions/<case>.nii.gz."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace earlier results."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Dice, IoU, sensitivity, precision, FPR, HD95, ASSD, NSD and lesion counts per case.

        Writes metrics.json (cases + aggregate with 95% bootstrap intervals), metrics.csv,
        summary.csv, figures/<case>.png and run.json into OUT.
        """
        from rich.console import Console
        from rich.table import Table

        from lungspread.evaluate import evaluate

        console = Console(highlight=False, quiet=quiet)
        err = Console(stderr=True, highlight=False, quiet=quiet)

        def progress(case: str, done: int, total: int) -> None:
            err.print(f"[dim]{done}/{total} {case}[/dim]")

        result = evaluate(
            run,
            data,
            out,
            subset=subset,
            device=device,
            tta=tta,
            overwrite=overwrite,
            figures=figures,
            save_predictions=save_predictions,
            progress=progress,
        )
        table = Table(title=f"{len(result['cases'])} cases")
        for col in ("metric", "mean", "95% interval", "n"):
            table.add_column(col)
        for key, v in result["aggregate"].items():
            if isinstance(v, dict) and "mean" in v:
                lo, hi = v["ci95"]
                fmt = lambda x: "n/a" if x is None or x != x else f"{x:.4g}"  # noqa: E731
                table.add_row(key, fmt(v["mean"]), f"[{fmt(lo)}, {fmt(hi)}]", str(v["n"]))
        console.print(table)
        console.print(f"results in {out}")

    @app.command("compare")
    def compare_cmd(
        evaluations: list[Path] = typer.Argument(
            ..., help="Output folders of lungspread evaluate.", show_default=False
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder.", show_default=False),
        labels: str | None = typer.Option(
            None, "--labels", help="Comma-separated names for the runs (default: folder names)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace earlier results."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """One table across evaluations (mean and 95% interval per metric) and box plots.

        Writes comparison.md, comparison.csv, comparison.json, boxplot_<metric>.png and
        run.json into OUT.
        """
        from lungspread.compare import compare

        names = [v.strip() for v in labels.split(",")] if labels else None
        compare(evaluations, out, labels=names, overwrite=overwrite)
        if not quiet:
            typer.echo((Path(out) / "comparison.md").read_text(encoding="utf-8"))

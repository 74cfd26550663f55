"""``lungspread analyze``: tumor, lungs and spread report for one CT or a folder of CTs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from lungspread.analyze import AnalysisResult
    from lungspread.batch import BatchSummary


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_cmd(
        ct: Path = typer.Argument(
            ...,
            help="A CT (NIfTI, NRRD, MHA or a DICOM series folder), or a folder of CTs "
            "(batch mode: one output sub-folder per case).",
            show_default=False,
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder.", show_default=False),
        model: Path | None = typer.Option(
            None, "--model", help="Training run or model folder (default: the bundled model)."
        ),
        tta: bool = typer.Option(False, "--tta", help="Mirror test-time augmentation (slower)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace results in a non-empty output folder."
        ),
        force_ct: bool = typer.Option(
            False, "--force-ct", help="Analyze even if the image does not look like a chest CT."
        ),
        shard: str | None = typer.Option(
            None,
            "--shard",
            help="Batch mode: process shard i of n (0-based, e.g. 0/4) of the sorted cases.",
        ),
        threshold: float | None = typer.Option(
            None, "--threshold", help="Tumor probability threshold (default: the model's)."
        ),
        min_lesion_mm3: float | None = typer.Option(
            None, "--min-lesion-mm3", help="Drop lesions smaller than this (default: the model's)."
        ),
        no_export: bool = typer.Option(
            False, "--no-export", help="Write only masks, report.json and run.json."
        ),
    ) -> None:
        """Find the tumors and lungs in a chest CT and measure the spread.

        Writes tumor.nii.gz (0/1), lungs.nii.gz (1 right, 2 left), report.json and run.json
        into --out, in the input's exact geometry. Given a folder of CTs, analyzes each into
        OUT/<case>/, skips cases finished earlier, goes on after failures and exits with
        code 1 if any case failed.
        """
        from rich.console import Console

        from lungspread.batch import is_dicom_folder, parse_shard

        console = Console(highlight=False)
        options: dict[str, Any] = dict(
            model=model,
            tta=tta,
            device=device,
            force_ct=force_ct,
            threshold=threshold,
            min_lesion_mm3=min_lesion_mm3,
        )
        if ct.is_dir() and not is_dicom_folder(ct):
            shard_t = parse_shard(shard) if shard is not None else None
            summary = _run_batch(console, ct, out, options, shard_t, overwrite, not no_export)
            if summary.failed:
                raise typer.Exit(code=1)
            return
        if shard is not None:
            from lungspread.errors import InputError

            raise InputError("--shard needs a folder of CTs (batch mode), got one CT", ct)
        _run_single(console, ct, out, options, overwrite, not no_export)


def _check_out(out: Path, overwrite: bool) -> None:
    """Fail before the computation when the output folder cannot be used."""
    from lungspread.errors import OutputError

    if out.exists() and not out.is_dir():
        raise OutputError("exists and is a file, expected an output folder", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            "output folder exists and is not empty (pass --overwrite to replace)", out
        )


def _run_single(
    console: Console,
    ct: Path,
    out: Path,
    options: dict[str, Any],
    overwrite: bool,
    export: bool,
) -> None:
    from lungspread.analyze import STAGES, Analyzer

    _check_out(out, overwrite)
    analyzer = Analyzer(**options)
    console.print(f"[bold]lungspread analyze[/bold] {ct}")
    with console.status("starting") as status:

        def on_stage(name: str, seconds: float | None) -> None:
            words = STAGES.get(name, name)
            if seconds is None:
                status.update(f"{words} ...")
            else:
                console.print(f"  [green]done[/green] {words:<34} {seconds:6.2f} s")

        result = analyzer.run(ct, on_stage=on_stage)
        status.update("writing the results ...")
        result.write(out, overwrite=overwrite, export=export)
    print_summary(console, result, out)


def print_summary(console: Console, result: AnalysisResult, out: Path | None) -> None:
    """One screen: lungs, lesions, totals, T-descriptor estimate, time, where the files are."""
    from rich.table import Table

    s = result.summary()
    report = result.report if isinstance(result.report, dict) else {}
    lesions = report.get("lesions", []) or []
    console.print()
    console.print(
        f"[bold]Lungs[/bold]  right {s['right_lung_ml']:.0f} mL, left {s['left_lung_ml']:.0f} mL"
    )
    console.print(
        f"[bold]Tumor[/bold]  {s['lesion_count']} lesion(s), {s['tumor_volume_ml']:.2f} mL in total"
    )
    if lesions:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("id", "volume mL", "RECIST mm", "side", "zone", "pleura"):
            table.add_column(col, justify="right" if col not in ("side", "zone") else "left")
        for les in lesions[:10]:
            table.add_row(
                str(les.get("id", "")),
                _fmt(les.get("volume_ml"), 2),
                _fmt(les.get("recist_diameter_mm"), 1),
                str(les.get("side", "")),
                str(les.get("zone", "")),
                "contact" if les.get("pleural_contact") else "",
            )
        console.print(table)
        if len(lesions) > 10:
            console.print(f"  ... and {len(lesions) - 10} more (see report.json)")
    t = report.get("t_descriptor")
    if isinstance(t, dict) and t.get("estimate"):
        console.print(
            f"[bold]T-descriptor estimate[/bold] {t['estimate']} ({t.get('rule', '')}); "
            "imaging geometry only, not a diagnosis"
        )
    for note in report.get("notes", []) or []:
        console.print(f"note: {note}", style="yellow", markup=False)
    console.print(f"[bold]Time[/bold]   {s['seconds']:.1f} s ({result.run.get('device_used')})")
    if out is not None:
        console.print(f"[bold]Output[/bold] {out}/")


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return "-"


def _run_batch(
    console: Console,
    folder: Path,
    out: Path,
    options: dict[str, Any],
    shard: tuple[int, int] | None,
    overwrite: bool,
    export: bool,
) -> BatchSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lungspread.analyze import Analyzer
    from lungspread.batch import find_cases, run_batch, shard_cases

    cases = shard_cases(find_cases(folder, exclude=out), shard)
    where = "" if shard is None else f" (shard {shard[0]}/{shard[1]})"
    console.print(f"[bold]lungspread analyze[/bold] {len(cases)} case(s) from {folder}{where}")
    analyzer = Analyzer(**options).load()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("cases", total=len(cases))

        def on_case(name: str, status: str, detail: str) -> None:
            if status == "start":
                progress.update(task, description=f"{name}")
                return
            colour = {"done": "green", "skipped": "cyan", "failed": "red"}[status]
            progress.console.print(f"  [{colour}]{status:<7}[/{colour}] {name}  {detail}")
            progress.advance(task)

        summary = run_batch(
            folder,
            out,
            analyzer=analyzer,
            shard=shard,
            overwrite=overwrite,
            on_case=on_case,
            export=export,
        )
    console.print(
        f"\n[bold]{len(summary.done)} done, {len(summary.skipped)} skipped (finished earlier), "
        f"{len(summary.failed)} failed[/bold]; results in {out}/"
    )
    if summary.failed:
        console.print("[red bold]Failed cases:[/red bold]")
        for name, reason in summary.failed.items():
            console.print(f"  {name}: {reason}", soft_wrap=True)
    return summary

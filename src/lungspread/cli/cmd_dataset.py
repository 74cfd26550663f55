"""``lungspread dataset``: download, inspect, convert, merge and cut MSD-format datasets."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    ds = typer.Typer(
        name="dataset",
        help="Download, inspect, convert and merge Medical Segmentation Decathlon (MSD) datasets.",
        no_args_is_help=True,
    )
    conv = typer.Typer(
        name="convert",
        help="Convert the real 2D Task06 derivatives into MSD folders of one-slice NIfTIs.",
        no_args_is_help=True,
    )

    @ds.command("download")
    def download(
        name: str = typer.Argument(..., help="Dataset to fetch: msd-lung (Task06_Lung, ~8.5 GB)."),
        dest: Path = typer.Argument(..., help="Folder to download and extract into."),
        url: str | None = typer.Option(None, "--url", help="Mirror URL of the same archive."),
        md5: str | None = typer.Option(
            None, "--md5", help="Expected MD5 (replaces the official one)."
        ),
        sha256: str | None = typer.Option(
            None, "--sha256", help="Expected SHA-256 (replaces the official checksum)."
        ),
        extract: bool = typer.Option(
            True, "--extract/--no-extract", help="Extract after verifying."
        ),
        keep_archive: bool = typer.Option(
            True, "--keep-archive/--remove-archive", help="Keep the .tar after extraction."
        ),
        timeout: float = typer.Option(60.0, "--timeout", help="Network timeout in seconds."),
    ) -> None:
        """Download a dataset archive (resumable, checksum-verified) and extract it safely.

        This is lungspread's only network access. A truncated download is kept as .part and
        resumed by running the command again; a corrupt one is deleted.
        """
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from lungspread.data.download import SOURCES, download_dataset
        from lungspread.outputs import RunRecord

        console = Console(stderr=True, soft_wrap=True)
        record = RunRecord(
            "dataset download",
            inputs={"name": name, "url": url or (SOURCES[name].url if name in SOURCES else None)},
            options={
                "extract": extract,
                "keep_archive": keep_archive,
                "md5": md5,
                "sha256": sha256,
            },
        )
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"downloading {name}", total=None)

            def on_progress(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            result = download_dataset(
                name,
                dest,
                url=url,
                md5=md5,
                sha256=sha256,
                extract=extract,
                keep_archive=keep_archive,
                timeout_s=timeout,
                progress=on_progress,
            )
        record.stage("download")
        record.write(dest, result=result)
        if result.get("already_present"):
            console.print(f"already there: {result['dataset_dir']} ({result['n_cases']} cases)")
        elif extract:
            console.print(
                f"verified and extracted: {result['dataset_dir']} ({result['n_cases']} cases)"
            )
        else:
            console.print(f"verified: {result['archive']}")

    @ds.command("inspect")
    def inspect(
        dataset_dir: Path = typer.Argument(
            ..., help="MSD folder (dataset.json, imagesTr/, labelsTr/)."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder for the report."),
        max_cases: int | None = typer.Option(None, "--max-cases", help="Inspect at most N cases."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in --out."),
    ) -> None:
        """Exploratory analysis of an MSD folder: inspect.json, PNG plots, summary.md.

        Geometry, intensity distributions, tumor sizes, slices with tumor, class imbalance.
        """
        from rich.console import Console

        from lungspread.data.inspect import run_inspect

        report = run_inspect(dataset_dir, out, max_cases=max_cases, overwrite=overwrite)
        console = Console(soft_wrap=True)
        d, cb, t = report["dataset"], report["class_balance"], report["tumors"]
        console.print(
            f"{d['name']}: {d['n_cases_inspected']} cases, {t['n_lesions']} lesions, tumor = "
            f"{cb['foreground_fraction_pooled'] * 100:.3g}% of voxels, "
            f"{report['slices']['with_tumor']}/{report['slices']['total']} slices with tumor"
        )
        for f in report["failures"]:
            console.print(f"[red]failed[/red] {f['case']}: {f['error']}")
        console.print(f"report: {out / 'summary.md'}")

    def _convert(kind: str, src: Path, out: Path, overwrite: bool) -> None:
        from rich.console import Console

        from lungspread.data.convert import convert_to_folder

        s = convert_to_folder(kind, src, out, overwrite=overwrite)
        Console(soft_wrap=True).print(
            f"{out}: {s['n_cases']} cases from {s['n_patients']} patient groups, "
            f"{s['n_with_tumor']} with tumor"
        )

    @ds.command("merge")
    def merge(
        out: Path = typer.Argument(..., help="New MSD folder (must not exist)."),
        sources: list[Path] = typer.Argument(..., help="Two or more MSD folders."),
        name: str | None = typer.Option(None, "--name", help="Name of the merged dataset."),
        copy: bool = typer.Option(
            False, "--copy", help="Copy the files (default: hard links where possible)."
        ),
    ) -> None:
        """Combine MSD folders into one; case ids get their source folder's name in front."""
        from rich.console import Console

        from lungspread.data.merge import merge_datasets

        merged = merge_datasets(out, list(sources), name=name, link=not copy)
        Console(soft_wrap=True).print(
            f"{out}: {len(merged.cases)} cases from {len(sources)} datasets"
        )

    @ds.command("slabs")
    def slabs(
        src: Path = typer.Argument(..., help="MSD folder with labels."),
        out: Path = typer.Argument(..., help="New MSD folder (must not exist)."),
        slab_mm: float = typer.Option(80.0, "--slab-mm", help="Slab thickness in mm."),
        seed: int = typer.Option(0, "--seed", help="Random seed (which tumor, where)."),
    ) -> None:
        """Cut every case to a slab around a tumor: a test set of partial-coverage scans."""
        from rich.console import Console

        from lungspread.data.slabs import cut_slabs

        cut = cut_slabs(src, out, slab_mm, seed=seed)
        Console(soft_wrap=True).print(f"{out}: {len(cut.cases)} cases cut to {slab_mm:g} mm slabs")

    @conv.command("msd-slices")
    def convert_slices(
        src: Path = typer.Argument(..., help="msd-lung-slices-2d folder (train/, val/)."),
        out: Path = typer.Argument(..., help="New MSD folder."),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """8-bit PNG slices -> one-slice NIfTIs (modality CT-8bit, 1.5 mm assumed)."""
        _convert("msd-slices", src, out, overwrite)

    @conv.command("msd-patches")
    def convert_patches(
        src: Path = typer.Argument(..., help="val_patches.h5."),
        out: Path = typer.Argument(..., help="New MSD folder."),
        overwrite: bool = typer.Option(False, "--overwrite"),
    ) -> None:
        """[0,1] tumor patches -> one-slice NIfTIs in approximate HU (2 mm, modality CT)."""
        _convert("msd-patches", src, out, overwrite)

    ds.add_typer(conv, name="convert")
    app.add_typer(ds, name="dataset")

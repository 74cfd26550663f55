"""``lungspread spread`` and ``lungspread follow-up``: the spread report and the response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _print_spread(report: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    lesions = report["lesions"]
    table = Table(title=f"{len(lesions)} lesion(s)", show_lines=False)
    for col in ("id", "mL", "RECIST mm", "short mm", "3D max mm", "side", "zone", "pleura mm"):
        table.add_column(col, justify="right" if col not in ("id", "side", "zone") else "left")
    for les in lesions[:20]:
        table.add_row(
            les["id"],
            _fmt(les["volume_ml"], 2),
            _fmt(les["recist_diameter_mm"]),
            _fmt(les["short_axis_mm"]),
            _fmt(les["max_diameter_mm"]),
            _fmt(les["side"]),
            _fmt(les["zone"]),
            _fmt(les["distance_to_pleura_mm"]),
        )
    if lesions:
        console.print(table)
    if len(lesions) > 20:
        console.print(f"... and {len(lesions) - 20} more in report.json")
    totals, td = report["totals"], report["t_descriptor"]
    console.print(
        f"tumor volume {_fmt(totals['tumor_volume_ml'], 2)} mL; lung involvement "
        f"{_fmt((totals.get('lung_involvement_pct') or {}).get('total'), 2)} %; RECIST sum "
        f"{_fmt(totals['sum_of_diameters_mm'])} mm over {len(totals['recist_targets'])} target(s)"
    )
    m = f", {td['m_estimate']}" if td.get("m_estimate") else ""
    console.print(f"T-descriptor estimate (geometry only): {_fmt(td['estimate'])}{m}")
    for note in report["notes"]:
        console.print(f"note: {note}", style="yellow")
    console.print(f"wrote {out / 'report.json'}")


def spread_command(
    mask: Path = typer.Argument(..., help="Tumor mask (NIfTI, NRRD, MHA); nonzero = tumor."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for report.json."),
    ct: Path | None = typer.Option(None, "--ct", help="CT in HU on the mask's grid."),
    lungs: Path | None = typer.Option(
        None, "--lungs", help="Lung labels on the mask's grid: 1 right, 2 left."
    ),
    lobes: Path | None = typer.Option(
        None, "--lobes", help="Lobe labels: 1 LUL, 2 LLL, 3 RUL, 4 RML, 5 RLL (lungmask)."
    ),
    solid_threshold_hu: float = typer.Option(
        -300.0, "--solid-threshold-hu", help="Voxels above this HU count as solid."
    ),
    pleural_contact_mm: float = typer.Option(
        1.5, "--pleural-contact-mm", help="Lesions this close to the lung surface touch the pleura."
    ),
    min_separate_nodule_mm: float = typer.Option(
        6.0,
        "--min-separate-nodule-mm",
        min=0.0,
        help="Separate nodules shorter than this do not change the T estimate (0: count all).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in --out."),
) -> None:
    """Measure each lesion of a tumor mask and how far the tumor has spread (report.json).

    With --ct and no --lungs the lungs are segmented from the CT (and written to
    lungs.nii.gz). Without lungs, the lung-dependent values are null with a reason. The mask
    as measured (0/1) is kept as tumor.nii.gz, for follow-up.
    """
    import numpy as np

    from lungspread.io import read_volume, write_volume
    from lungspread.outputs import RunRecord, output_dir, write_json
    from lungspread.spread import compute_spread

    paths = {"mask": mask, "ct": ct, "lungs": lungs, "lobes": lobes}
    # file names only, as analyze records them: folder names often carry patient names
    inputs = {k: (p.name if p is not None else None) for k, p in paths.items()}
    record = RunRecord(
        "spread",
        inputs,
        {
            "solid_threshold_hu": solid_threshold_hu,
            "pleural_contact_mm": pleural_contact_mm,
            "min_separate_nodule_mm": min_separate_nodule_mm,
            "connectivity": 26,
        },
    )
    with output_dir(out, overwrite) as stage:
        tumor_vol = read_volume(mask)
        ct_vol = read_volume(ct) if ct is not None else None
        lungs_vol = read_volume(lungs) if lungs is not None else None
        lobes_vol = read_volume(lobes) if lobes is not None else None
        record.stage("read")
        report, lung_map = compute_spread(
            tumor_vol,
            ct_vol,
            lungs_vol,
            lobes_vol,
            solid_threshold_hu=solid_threshold_hu,
            pleural_contact_mm=pleural_contact_mm,
            min_separate_nodule_mm=min_separate_nodule_mm,
        )
        record.stage("measure")
        write_json(stage / "report.json", report)
        # follow-up matches lesions on the masks; keeping the mask here makes the folder
        # self-contained (no input path to record, and it can be moved or shared)
        write_volume(
            tumor_vol.with_array((np.asarray(tumor_vol.array) != 0).astype(np.uint8)),
            stage / "tumor.nii.gz",
        )
        written = ["report.json", "tumor.nii.gz"]
        if lung_map is not None and lungs is None and lobes is None:
            write_volume(
                lung_map.with_array(lung_map.array.astype("uint8")), stage / "lungs.nii.gz"
            )
            written.append("lungs.nii.gz")
        record.write(stage, outputs=written)
    _print_spread(report, Path(out))


def _volume_if(path: Path | None) -> Any:
    from lungspread.io import read_volume

    return read_volume(path) if path is not None and path.exists() else None


def _analysis_files(folder: Path) -> tuple[Path | None, Path | None]:
    """Tumor mask and lung map of a spread/analyze output folder (None when absent).

    Both are looked for in the folder (``tumor.nii.gz``, ``lungs.nii.gz``). Older spread
    folders (from before spread kept its mask) recorded absolute input paths in ``run.json``;
    those are used then. A bare file name there (what is recorded now) is never looked up, so
    nothing is read from the current folder by accident.
    """
    import json

    tumor = folder / "tumor.nii.gz"
    lungs = folder / "lungs.nii.gz"
    run: dict[str, Any] = {}
    if (folder / "run.json").is_file():
        try:
            run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except ValueError:
            run = {}
    inputs = run.get("inputs") if isinstance(run.get("inputs"), dict) else {}
    assert isinstance(inputs, dict)

    def recorded(key: str) -> Path:
        named = inputs.get(key)
        if isinstance(named, str) and Path(named).is_absolute():
            return Path(named)
        return Path("/nonexistent")

    if not tumor.is_file():
        tumor = recorded("mask")
    if not lungs.is_file():
        lungs = recorded("lungs")
    return (tumor if tumor.is_file() else None, lungs if lungs.is_file() else None)


def follow_up_command(
    baseline_dir: Path = typer.Argument(..., help="Baseline spread/analyze output folder."),
    followup_dir: Path = typer.Argument(..., help="Follow-up spread/analyze output folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for followup.json."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in --out."),
) -> None:
    """Match the lesions of two analyses of one patient and grade the RECIST 1.1 response."""
    from rich.console import Console

    from lungspread.errors import InputError
    from lungspread.outputs import RunRecord, output_dir, write_json
    from lungspread.spread import follow_up, load_report
    from lungspread.spread.followup import LungGeometry

    for folder in (baseline_dir, followup_dir):
        if not folder.is_dir():
            raise InputError("expected a spread or analyze output folder", folder)
    base = load_report(baseline_dir)
    fu = load_report(followup_dir)
    bt, bl = _analysis_files(baseline_dir)
    ft, fl = _analysis_files(followup_dir)

    def name(path: Path | None) -> str | None:
        # file and folder names only, as analyze records them: paths carry patient names
        return None if path is None else path.name

    inputs = {
        "baseline": name(baseline_dir.resolve()),
        "followup": name(followup_dir.resolve()),
        "baseline_tumor": name(bt),
        "followup_tumor": name(ft),
        "baseline_lungs": name(bl),
        "followup_lungs": name(fl),
    }
    record = RunRecord("follow-up", inputs, {})
    with output_dir(out, overwrite) as stage:
        result = follow_up(
            base,
            fu,
            baseline_tumor=_volume_if(bt),
            followup_tumor=_volume_if(ft),
            # Reports carry the lung geometry; read lung maps only where one does not.
            baseline_lungs=None if LungGeometry.from_report(base) else _volume_if(bl),
            followup_lungs=None if LungGeometry.from_report(fu) else _volume_if(fl),
        )
        record.stage("compare")
        write_json(stage / "followup.json", result)
        record.write(stage, outputs=["followup.json"])
    console = Console()
    rec = result["recist"]
    console.print(
        f"matched {len(result['matches'])}, new {len(result['new_lesions'])}, "
        f"disappeared {len(result['disappeared_lesions'])}; RECIST sum "
        f"{rec['baseline_sum_mm']:.1f} -> {rec['followup_sum_mm']:.1f} mm"
    )
    console.print(f"RECIST 1.1 response: {result['response']} ({rec['rule']})")
    for note in result["notes"]:
        console.print(f"note: {note}", style="yellow")
    console.print(f"wrote {Path(out) / 'followup.json'}")


def register(app: typer.Typer) -> None:
    app.command("spread")(spread_command)
    app.command("follow-up")(follow_up_command)

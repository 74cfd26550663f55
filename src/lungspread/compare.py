"""``lungspread compare``: one table across evaluations, with box plots per metric.

Each input is an output folder of ``lungspread evaluate`` (its ``metrics.json``). The table
gives, per run, the mean and 95% bootstrap interval of every metric (and the pooled
``dice_global``); when runs were evaluated on the same cases, it also gives each run's paired
Dice difference to the first run with a 95% bootstrap interval over the shared cases.

Output folder: ``comparison.md``, ``comparison.csv`` (long format: run, metric, mean, ci95_lo,
ci95_hi, n), ``boxplot_<metric>.png`` per metric, ``run.json``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.metrics import METRIC_KEYS

#: per-case metrics shown in the table and box plots
COMPARE_METRICS = METRIC_KEYS


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if abs(v) != 0 and abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def _values(cases: list[dict[str, Any]], key: str) -> np.ndarray:
    out = []
    for c in cases:
        v = c.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out.append(float(v))
    return np.asarray(out, dtype=np.float64)


def paired_difference(
    a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "dice", n_boot: int = 2000
) -> dict[str, Any]:
    """Mean of ``b - a`` over cases where both define ``key``, with a 95% bootstrap interval."""
    from lungspread.metrics import bootstrap_ci

    va = {c["case"]: c.get(key) for c in a}
    diffs = []
    for c in b:
        x, y = va.get(c["case"]), c.get(key)
        if (
            isinstance(x, (int, float))
            and isinstance(y, (int, float))
            and math.isfinite(float(x))
            and math.isfinite(float(y))
        ):
            diffs.append(float(y) - float(x))
    arr = np.asarray(diffs)
    lo, hi = bootstrap_ci(arr, n_boot=n_boot, seed=1)
    return {
        "mean": float(arr.mean()) if arr.size else float("nan"),
        "ci95": [lo, hi],
        "n": int(arr.size),
    }


def compare(
    evaluations: Sequence[str | Path],
    out: str | Path,
    *,
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
    metrics: Sequence[str] = COMPARE_METRICS,
) -> dict[str, Any]:
    """Compare evaluate output folders; write the table and plots into ``out``."""
    from lungspread.evaluate import load_metrics
    from lungspread.outputs import RunRecord, atomic_write_bytes, output_dir, write_json

    if not evaluations:
        raise InputError("compare needs at least one evaluate output folder")
    names = list(labels) if labels else [Path(e).name or str(e) for e in evaluations]
    if len(names) != len(evaluations):
        raise InputError(f"got {len(names)} labels for {len(evaluations)} evaluations")
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    loaded = [load_metrics(e) for e in evaluations]
    record = RunRecord(
        "compare", {"evaluations": [str(Path(e).resolve()) for e in evaluations]}, {"labels": names}
    )
    table: list[dict[str, Any]] = []
    for name, data in zip(names, loaded, strict=True):
        agg = data.get("aggregate", {})
        row: dict[str, Any] = {"run": name, "n_cases": len(data["cases"])}
        for key in [*metrics, "dice_global"]:
            v = agg.get(key) or {}
            row[key] = {
                "mean": v.get("mean"),
                "ci95": v.get("ci95", [None, None]),
                "n": v.get("n"),
            }
        table.append(row)
    deltas = [paired_difference(loaded[0]["cases"], d["cases"]) for d in loaded[1:]]
    with output_dir(out, overwrite) as stage:
        # Markdown
        cols = ["dice", "dice_global", "iou", "sensitivity", "precision", "hd95_mm", "nsd_2mm"]
        cols += [m for m in metrics if m not in cols]
        lines = [
            "| run | cases | " + " | ".join(cols) + " |",
            "| --- | ---: | " + " | ".join("---" for _ in cols) + " |",
        ]
        for row in table:
            cells = []
            for key in cols:
                v = row[key]
                lo, hi = (v["ci95"] or [None, None])[:2]
                digits = 1 if key.endswith("_mm") or key.startswith("lesions") else 3
                if key == "fpr":
                    digits = 5
                cells.append(f"{_fmt(v['mean'], digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]")
            lines.append(f"| {row['run']} | {row['n_cases']} | " + " | ".join(cells) + " |")
        text = "Mean [95% bootstrap interval] over cases.\n\n" + "\n".join(lines) + "\n"
        if deltas:
            text += f"\nPaired Dice difference to {names[0]} (same cases):\n\n"
            text += (
                "| run | mean difference | 95% interval | cases |\n| --- | ---: | --- | ---: |\n"
            )
            for name, d in zip(names[1:], deltas, strict=True):
                lo, hi = d["ci95"]
                text += f"| {name} | {_fmt(d['mean'])} | [{_fmt(lo)}, {_fmt(hi)}] | {d['n']} |\n"
        atomic_write_bytes(stage / "comparison.md", text.encode("utf-8"))
        # CSV (long format)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["run", "metric", "mean", "ci95_lo", "ci95_hi", "n"])
        for row in table:
            for key in [*metrics, "dice_global"]:
                v = row[key]
                lo, hi = (v["ci95"] or [None, None])[:2]
                w.writerow(
                    [
                        row["run"],
                        key,
                        *(("" if x is None else x) for x in (v["mean"], lo, hi, v["n"])),
                    ]
                )
        atomic_write_bytes(stage / "comparison.csv", buf.getvalue().encode("utf-8"))
        for key in metrics:
            _boxplot(
                stage / f"boxplot_{key}.png", key, names, [_values(d["cases"], key) for d in loaded]
            )
        result = {"runs": table, "paired_dice_vs_first": dict(zip(names[1:], deltas, strict=True))}
        write_json(stage / "comparison.json", result)
        record.write(stage)
    return result


def _boxplot(path: Path, metric: str, names: list[str], values: list[np.ndarray]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from lungspread.outputs import atomic_write_bytes

    fig = Figure(figsize=(max(4.0, 1.3 * len(names) + 1.5), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    data = [v if v.size else np.asarray([np.nan]) for v in values]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right", fontsize=8)
    for i, v in enumerate(values, start=1):
        if v.size:
            jitter = np.linspace(-0.12, 0.12, v.size) if v.size > 1 else np.zeros(1)
            ax.plot(i + jitter, v, ".", color="#1f77b4", alpha=0.5, markersize=4)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per case", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())

"""``lungspread tune``: the proposal's grid search over learning rate, batch size and loss.

Every combination trains one run (``OUT/trials/<name>``) on the same fold with the same
seed, sharing one preprocessed-case cache (``OUT/preprocessed``); the trials are ranked by
their best validation Dice (pooled over the fold's validation cases). Results:
``OUT/results.csv`` and ``OUT/results.md`` (best first), ``OUT/run.json``. A tune that was
interrupted continues with ``resume=True`` (finished trials are kept, the interrupted one
resumes from its last epoch).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lungspread.errors import InputError, OutputError
from lungspread.training.trainer import TrainCallbacks

#: grid axes: CLI/config name -> TrainConfig field
GRID_FIELDS = {"lr": "lr", "batch": "batch_size", "loss": "loss"}


def trial_name(values: dict[str, Any]) -> str:
    return "_".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def tune(
    data: str | Path,
    out: str | Path,
    grid: dict[str, Sequence[Any]],
    *,
    preset: str = "default",
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    resume: bool = False,
    callbacks: TrainCallbacks | None = None,
    tensorboard: bool = False,
) -> list[dict[str, Any]]:
    """Train every combination of ``grid`` (keys: lr, batch, loss) and rank them.

    ``overrides`` are further TrainConfig settings shared by all trials (model, epochs, ...).
    Returns the result rows, best first.
    """
    from lungspread.outputs import RunRecord, atomic_write_bytes
    from lungspread.training.config import make_config
    from lungspread.training.trainer import train

    out = Path(out)
    unknown = sorted(set(grid) - set(GRID_FIELDS))
    if unknown:
        raise InputError(f"unknown grid axes {unknown}; valid: {', '.join(GRID_FIELDS)}")
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise InputError("the grid needs at least one value per axis")
    if out.exists() and any(out.iterdir()) and not resume:
        raise OutputError(
            "output folder exists and is not empty; pass --resume to continue the search", out
        )
    out.mkdir(parents=True, exist_ok=True)
    base = dict(overrides or {})
    record = RunRecord(
        "tune",
        {"data": str(Path(data).resolve())},
        {"grid": {k: list(v) for k, v in grid.items()}, "preset": preset, **base},
    )
    keys = list(grid)
    rows: list[dict[str, Any]] = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        name = trial_name(values)
        settings = {**base, **{GRID_FIELDS[k]: v for k, v in values.items()}}
        cfg = make_config(preset, **settings)
        folder = out / "trials" / name
        t0 = time.perf_counter()
        if callbacks is not None:
            callbacks.on_message(f"trial {name}")
        result = train(
            data,
            folder,
            cfg,
            resume=resume and (folder / "config.json").is_file(),
            device=device,
            cache_dir=out / "preprocessed",
            callbacks=callbacks,
            tensorboard=tensorboard,
        )
        fold = result.folds[0]
        rows.append(
            {
                "trial": name,
                **values,
                "val_dice": fold.best_metric,
                "best_epoch": fold.best_epoch,
                "epochs": fold.epochs,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    rows.sort(key=lambda r: -r["val_dice"] if math.isfinite(r["val_dice"]) else math.inf)
    cols = ["trial", *keys, "val_dice", "best_epoch", "epochs", "seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(
            {k: ("" if isinstance(r[k], float) and not math.isfinite(r[k]) else r[k]) for k in cols}
        )
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode("utf-8"))
    md = [
        "| rank | " + " | ".join(cols) + " |",
        "| ---: | " + " | ".join("---" for _ in cols) + " |",
    ]
    for i, r in enumerate(rows, start=1):
        cells = []
        for k in cols:
            v = r[k]
            if k == "val_dice":
                cells.append("n/a" if not math.isfinite(v) else f"{v:.3f}")
            elif isinstance(v, float):
                cells.append(f"{v:g}")
            else:
                cells.append(str(v))
        md.append(f"| {i} | " + " | ".join(cells) + " |")
    head = "Grid search: best validation Dice (pooled over the fold's validation cases).\n\n"
    atomic_write_bytes(out / "results.md", (head + "\n".join(md) + "\n").encode("utf-8"))
    record.write(out, outputs={"best": rows[0]["trial"] if rows else None})
    return rows

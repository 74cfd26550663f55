"""Soak test of batch analysis: many phantom CTs in one process, resident memory per case.

::

    .venv/bin/python benchmarks/soak_batch.py                     # 50 small phantoms
    .venv/bin/python benchmarks/soak_batch.py --cases 12 --no-export --json soak.json

Writes ``--cases`` phantom chest CTs (``lungspread.phantom.make_phantom(seed, size)``, seeds
0, 1, ...) into a folder, then runs :func:`lungspread.batch.run_batch` over it in this process
(one :class:`~lungspread.analyze.Analyzer`, the model loaded once, as ``lungspread analyze
FOLDER`` does) and reads the resident memory (``VmRSS`` from ``/proc/self/status``) after
every case. Prints one line per case and, after the warm-up cases, the least-squares slope of
RSS against the case number (MB per case) and the growth from the first measured case to the
last. A leak shows as a slope that stays positive however many cases run; allocator noise as
a slope near zero. Exit code 1 when a case failed or the slope exceeds ``--max-slope-mb``.

``--model`` takes a model folder; without it the bundled model is used when the package has
one, else a tiny random ``fast3d`` network (the pipeline's memory behaviour, not accuracy, is
what is measured; the tiny model marks no tumor, so lesion-dependent exports stay small).
Nothing here needs the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc/self/status (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def slope_mb_per_case(rss: list[float]) -> float:
    """Least-squares slope of ``rss`` against 0, 1, 2, ... (MB per case); 0 for < 2 points."""
    if len(rss) < 2:
        return 0.0
    x = np.arange(len(rss), dtype=np.float64)
    return float(np.polyfit(x, np.asarray(rss, dtype=np.float64), 1)[0])


def tiny_model(folder: Path) -> Path:
    """A loadable random fast3d model (4 mm, features 4-8-16) that marks no tumor."""
    import torch

    from lungspread.models import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    kwargs = {"features": [4, 8, 16], "bf16_training": False}
    net = build_model("fast3d", **kwargs)
    with torch.no_grad():
        net.head.bias[1] -= 1.0
    spec = ModelSpec(
        name="fast3d",
        kwargs=kwargs,
        dims=3,
        spacing_mm=[4.0, 4.0, 4.0],
        patch_size=[32, 32, 32],
        normalization={"scheme": "ct", "clip_hu": [-1000.0, 400.0], "mean": -500.0, "std": 400.0},
        output="softmax",
        threshold=0.5,
        extra={"postprocess": {"min_lesion_mm3": 0.0}},
    )
    save_checkpoint(folder, spec, net.state_dict())
    return folder


def write_phantoms(folder: Path, cases: int, size: str) -> list[Path]:
    """Phantom CTs ``phantom_000.nii.gz`` ... (seed = case number)."""
    from lungspread.io import write_volume
    from lungspread.phantom import make_phantom

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(cases):
        path = folder / f"phantom_{n:03d}.nii.gz"
        if not path.is_file():
            write_volume(make_phantom(n, size=size).ct, path)
        paths.append(path)
    return paths


def soak(
    folder: Path,
    out: Path,
    model: Path | None,
    export: bool,
    device: str = "cpu",
    on_case: Any = None,
) -> dict[str, Any]:
    """Run the batch over ``folder`` into ``out``; RSS (MB) after each finished case."""
    from lungspread.analyze import Analyzer
    from lungspread.batch import run_batch

    analyzer = Analyzer(model=model, device=device).load()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def tell(name: str, status: str, detail: str) -> None:
        if status == "start":
            return
        row = {"case": name, "status": status, "rss_mb": round(rss_mb(), 1), "detail": detail}
        rows.append(row)
        if on_case is not None:
            on_case(row)

    summary = run_batch(folder, out, analyzer=analyzer, on_case=tell, export=export)
    return {
        "rows": rows,
        "done": summary.done,
        "failed": summary.failed,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(rows: list[dict[str, Any]], warmup: int) -> dict[str, float]:
    """Slope (MB/case) and growth (MB) of RSS over the cases after ``warmup``."""
    rss = [r["rss_mb"] for r in rows][warmup:]
    return {
        "measured_cases": len(rss),
        "slope_mb_per_case": round(slope_mb_per_case(rss), 3),
        "growth_mb": round(rss[-1] - rss[0], 1) if rss else 0.0,
        "rss_first_mb": rss[0] if rss else float("nan"),
        "rss_last_mb": rss[-1] if rss else float("nan"),
        "rss_max_mb": max(rss) if rss else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--size", default="small", help="phantom size: small, medium or full")
    ap.add_argument("--warmup", type=int, default=3, help="cases left out of the slope")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--export", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", type=Path, default=None, help="keep phantoms and outputs here")
    ap.add_argument("--max-slope-mb", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (polite default: 1)")
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from lungspread.analyze import bundled_model_dir

    work = args.workdir or Path(tempfile.mkdtemp(prefix="lungspread-soak-"))
    model = args.model
    if model is None and not (bundled_model_dir() / "model.json").is_file():
        model = tiny_model(work / "tiny-model")
        print(f"no bundled model: using a tiny random fast3d model ({model})")
    t0 = time.perf_counter()
    write_phantoms(work / "cts", args.cases, args.size)
    print(f"{args.cases} {args.size} phantoms in {work / 'cts'} ({time.perf_counter() - t0:.0f} s)")
    print(f"RSS before the batch: {rss_mb():.1f} MB")

    def show(row: dict[str, Any]) -> None:
        print(f"{row['case']:>14} {row['status']:<7} RSS {row['rss_mb']:8.1f} MB  {row['detail']}")
        sys.stdout.flush()

    out = work / "out"
    result = soak(work / "cts", out, model, args.export, args.device, on_case=show)
    stats = summarize(result["rows"], args.warmup)
    print(
        f"\n{len(result['done'])} done, {len(result['failed'])} failed in {result['seconds']} s; "
        f"after {args.warmup} warm-up cases: RSS {stats['rss_first_mb']:.1f} -> "
        f"{stats['rss_last_mb']:.1f} MB (max {stats['rss_max_mb']:.1f}), slope "
        f"{stats['slope_mb_per_case']:+.3f} MB/case over {stats['measured_cases']} cases"
    )
    if args.json is not None:
        args.json.write_text(json.dumps({**result, **stats, "args": vars(args)}, default=str))
    ok = not result["failed"] and stats["slope_mb_per_case"] <= args.max_slope_mb
    print("OK: memory flat, every case done" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

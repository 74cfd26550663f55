"""Soak test of batch analysis: many phantom CTs in one process, resident memory per case.

::

    .venv/bin/python benchmarks/soak_batch.py                 # 50 small phantoms, two passes
    .venv/bin/python benchmarks/soak_batch.py --cases 12 --passes 1 --no-export --json s.json

Writes ``--cases`` phantom chest CTs (``lungspread.phantom.make_phantom(seed, size)``, seeds
0, 1, ...), puts ``--passes`` copies of them in one batch folder (``p1_phantom_000.nii.gz``,
..., ``p2_phantom_000.nii.gz``, ...), then runs :func:`lungspread.batch.run_batch` over it in
this process (one :class:`~lungspread.analyze.Analyzer`, the model loaded once, every export
written, as ``lungspread analyze FOLDER`` does) and reads the resident memory (``VmRSS`` from
``/proc/self/status``) after every case, after a full garbage collection and ``malloc_trim(0)``
so that it counts live memory rather than garbage not yet collected (matplotlib figures are
reference cycles: up to ~12 MB of them were seen waiting for Python's next full collection)
or what glibc keeps for later (``--no-trim`` to see the raw figure). It also counts the
objects the garbage collector tracks (``py_objects``: figures, dicts, lists, log records...),
which no allocator behaviour blurs. With ``--trace-pass P``, :mod:`tracemalloc` runs from the
first case of pass P on and the Python objects and numpy arrays alive after each case are
measured in bytes too (``traced_mb``), at two to three times the run time per case; its own
tables then add to RSS, so read RSS from a pass without it.

Prints one line per case and, for each pass, the least-squares slope of RSS against the case
number (MB per case) and its growth. Why passes: memory grows during the first cases for
reasons that are bounded, not leaks. PyTorch's oneDNN backend caches compiled convolution
primitives per input shape (up to ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, 1024), and every
phantom's lung region has its own shape, so the first pass grows by about 0.5-1 MB per new
shape. And Python's small-object allocator (pymalloc) gets its memory in 1 MiB arenas and
returns an arena only when every object in it is freed: the few long-lived objects that each
case's figures leave in bounded caches (matplotlib's font and text caches, ``re``'s pattern
cache) pin one more arena now and then, about 1 MB of RSS for a few KB of live objects, until
those caches are full (measured with ``sys._debugmallocstats``: 134 -> 146 arenas over the
first two passes of 8 phantoms, none more in the third, while the live small-object bytes
grew by 35 KB). A later pass sees only shapes seen before, after those caches have filled, so
growth there is a leak. The verdict compares the last pass with the one before it, case by
case (:func:`repeat_change`): a slope within one pass of 8 cases swings by up to about
0.3 MB/case from the allocator alone (measured in a clean-clone CI run with no leak), while the
mean paired difference stayed within +-0.16 MB/case in five runs. Exit code 1 when a case
failed or that difference (with fewer than three passes: the last pass's slope) exceeds
``--max-growth-mb``.

``--model`` takes a model folder; without it the bundled model is used when the package has
one, else a tiny random ``fast3d`` network (the pipeline's memory behaviour, not accuracy, is
what is measured; the tiny model marks no tumor, so lesion-dependent exports stay small).
Nothing here needs the network.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np


def rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc/self/status (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def malloc_trim() -> bool:
    """Give freed heap memory back to the system (glibc ``malloc_trim(0)``); False if there
    is no glibc. With it, RSS counts live memory rather than what the allocator keeps."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):
        return False


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
    """Phantom CTs ``phantom_000.nii.gz`` ... (seed = case number); existing files are kept."""
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


def batch_folder(phantoms: list[Path], folder: Path, passes: int) -> Path:
    """``folder`` with ``passes`` copies of the phantoms, named ``pP_<name>`` (sorted by pass)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(1, passes + 1):
        for src in phantoms:
            dst = folder / f"p{p}_{src.name}"
            if not dst.is_file():
                shutil.copyfile(src, dst)
    return folder


def pass_of(case: str) -> int:
    """The pass number of a batch case name ``pP_...``."""
    return int(str(case).split("_", 1)[0][1:])


def soak(
    folder: Path,
    out: Path,
    model: Path | None,
    export: bool,
    device: str = "cpu",
    on_case: Any = None,
    trim: bool = False,
    trace_pass: int | None = None,
) -> dict[str, Any]:
    """Run the batch over ``folder`` into ``out``; RSS (MB) after each finished case (after a
    full :func:`gc.collect` and :func:`malloc_trim` when ``trim``, which also counts the
    objects the garbage collector tracks: ``py_objects``). With ``trace_pass``,
    :mod:`tracemalloc` runs from the first case of that pass on and rows also get
    ``traced_mb`` (Python objects and numpy arrays alive, after the collection)."""
    from lungspread.analyze import Analyzer
    from lungspread.batch import run_batch

    analyzer = Analyzer(model=model, device=device).load()
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    started_tracing = False

    def tell(name: str, status: str, detail: str) -> None:
        nonlocal started_tracing
        if status == "start":
            if trace_pass is not None and not started_tracing and pass_of(name) >= trace_pass:
                tracemalloc.start(1)
                started_tracing = True
            return
        row: dict[str, Any] = {"case": name, "status": status}
        if trim:
            gc.collect()
            malloc_trim()
            row["py_objects"] = len(gc.get_objects())
        row.update(rss_mb=round(rss_mb(), 1), detail=detail)
        if started_tracing:
            row["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 4)
        rows.append(row)
        if on_case is not None:
            on_case(row)

    try:
        summary = run_batch(folder, out, analyzer=analyzer, on_case=tell, export=export)
    finally:
        if started_tracing:
            tracemalloc.stop()
    return {
        "rows": rows,
        "done": summary.done,
        "failed": summary.failed,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def summarize(rows: list[dict[str, Any]], warmup: int = 0) -> dict[str, float]:
    """Slope (MB/case) and growth (MB) of RSS over ``rows`` after the first ``warmup``; the
    same of ``traced_mb`` (``traced_slope_mb_per_case``, ``traced_growth_mb``) and of
    ``py_objects`` (``objects_per_case``, ``objects_growth``) where every measured row has
    them."""
    kept = rows[warmup:]
    rss = [r["rss_mb"] for r in kept]
    stats = {
        "measured_cases": len(rss),
        "slope_mb_per_case": round(slope_mb_per_case(rss), 3),
        "growth_mb": round(rss[-1] - rss[0], 1) if rss else 0.0,
        "rss_first_mb": rss[0] if rss else float("nan"),
        "rss_last_mb": rss[-1] if rss else float("nan"),
        "rss_max_mb": max(rss) if rss else float("nan"),
    }
    if kept and all("traced_mb" in r for r in kept):
        traced = [r["traced_mb"] for r in kept]
        stats["traced_slope_mb_per_case"] = round(slope_mb_per_case(traced), 4)
        stats["traced_growth_mb"] = round(traced[-1] - traced[0], 4)
    if kept and all("py_objects" in r for r in kept):
        objects = [float(r["py_objects"]) for r in kept]
        stats["objects_per_case"] = round(slope_mb_per_case(objects), 2)
        stats["objects_growth"] = int(objects[-1] - objects[0])
    return stats


def summarize_passes(rows: list[dict[str, Any]], warmup: int) -> list[dict[str, float]]:
    """:func:`summarize` of each pass (rows named ``pP_...``); ``warmup`` applies to pass 1."""
    passes: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        passes.setdefault(pass_of(row["case"]), []).append(row)
    return [{"pass": p, **summarize(passes[p], warmup if p == 1 else 0)} for p in sorted(passes)]


def repeat_change(rows: list[dict[str, Any]]) -> dict[str, float]:
    """How much more memory the last pass held than the pass before it, which analyzed the
    same CTs in the same order: the mean over cases of the paired RSS difference, divided by
    the number of cases in a pass (``repeat_mb_per_case``: a leak of L MB per case makes every
    case of the last pass about ``cases * L`` MB higher than its twin, so this is about L), and
    the change of the pass's highest RSS (``peak_change_mb``). Averaging 8 or more pairs, it
    is far less noisy than a slope within one pass, where the allocator's ups and downs of
    1-3 MB dominate. ``{}`` with fewer than three passes: the first pass grows for the bounded
    reasons above, so it is no reference."""
    passes: dict[int, list[float]] = {}
    for row in rows:
        passes.setdefault(pass_of(row["case"]), []).append(row["rss_mb"])
    if len(passes) < 3:
        return {}
    order = sorted(passes)
    before, last = passes[order[-2]], passes[order[-1]]
    pairs = list(zip(before, last, strict=False))
    mean_diff = sum(b - a for a, b in pairs) / len(pairs)
    return {
        "repeat_mb_per_case": round(mean_diff / len(last), 3),
        "peak_change_mb": round(max(last) - max(before), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=50, help="phantoms (distinct CTs)")
    ap.add_argument("--passes", type=int, default=2, help="times each phantom is analyzed")
    ap.add_argument("--size", default="small", help="phantom size: small, medium or full")
    ap.add_argument("--warmup", type=int, default=3, help="first cases left out of the slope")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--export", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--trim", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workdir", type=Path, default=None, help="keep phantoms and outputs here")
    ap.add_argument(
        "--max-growth-mb",
        type=float,
        default=0.3,
        help="MB per case: last pass against the one before (under 3 passes: its slope)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (polite default: 1)")
    ap.add_argument(
        "--trace-pass", type=int, default=None, help="count Python allocations from this pass on"
    )
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
    phantoms = write_phantoms(work / "phantoms", args.cases, args.size)
    folder = batch_folder(phantoms, work / f"batch-{args.cases}x{args.passes}", args.passes)
    print(f"{args.cases} {args.size} phantoms x {args.passes} pass(es) in {folder} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    print(f"RSS before the batch: {rss_mb():.1f} MB (trim: {args.trim})")

    def show(row: dict[str, Any]) -> None:
        traced = f"  traced {row['traced_mb']:.3f} MB" if "traced_mb" in row else ""
        if "py_objects" in row:
            traced += f"  objects {row['py_objects']}"
        print(
            f"{row['case']:>16} {row['status']:<7} RSS {row['rss_mb']:8.1f} MB{traced}  "
            f"{row['detail']}"
        )
        sys.stdout.flush()

    out = work / f"out-{args.cases}x{args.passes}"
    shutil.rmtree(out, ignore_errors=True)
    result = soak(
        folder,
        out,
        model,
        args.export,
        args.device,
        on_case=show,
        trim=args.trim,
        trace_pass=args.trace_pass,
    )
    stats = summarize_passes(result["rows"], args.warmup)
    print(f"\n{len(result['done'])} done, {len(result['failed'])} failed in {result['seconds']} s")
    for st in stats:
        print(
            f"pass {st['pass']}: RSS {st['rss_first_mb']:.1f} -> {st['rss_last_mb']:.1f} MB "
            f"(max {st['rss_max_mb']:.1f}), slope {st['slope_mb_per_case']:+.3f} MB/case over "
            f"{st['measured_cases']} cases"
            + (
                f"; traced {st['traced_growth_mb']:+.3f} MB "
                f"({st['traced_slope_mb_per_case']:+.4f} MB/case)"
                if "traced_growth_mb" in st
                else ""
            )
            + (
                f"; objects {st['objects_growth']:+d} ({st['objects_per_case']:+.1f}/case)"
                if "objects_growth" in st
                else ""
            )
        )
    change = repeat_change(result["rows"])
    if change:
        print(
            f"last pass against the one before (same CTs): {change['repeat_mb_per_case']:+.3f} "
            f"MB/case, peak {change['peak_change_mb']:+.1f} MB"
        )
    if args.json is not None:
        payload = {**result, "passes": stats, "repeat": change, "args": vars(args)}
        args.json.write_text(json.dumps(payload, default=str, indent=1))
    growth = change["repeat_mb_per_case"] if change else stats[-1]["slope_mb_per_case"]
    ok = not result["failed"] and growth <= args.max_growth_mb
    print("OK: every case done, memory flat" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Speed, memory and accuracy of the lung masks (``lungspread.lungs``) on real CT.

    .venv/bin/python benchmarks/bench_lungs.py            # lidc-idri-0002 (512x512x261)
    .venv/bin/python benchmarks/bench_lungs.py --all      # both LIDC scans, with accuracy

Times ``segment_lungs`` (the CT already in memory, as the library call is timed) over
``--repeat`` runs after one warm-up, and separately ``analyze_lungs`` (+ zones, volumes).
Peak memory: tracemalloc's peak of Python/numpy allocations during one ``segment_lungs``
call beyond the CT itself, and the process's peak resident size (getrusage, includes the
CT, the Python runtime and the libraries). Accuracy: each lung's volume and the share of the
nodule mask (``nodules.nii.gz``, LIDC-IDRI readers' outlines) inside the left lung.
Data: LIDC-IDRI (TCIA, CC BY 3.0), see ../shared/data/README.md. The machine running this
has 2 CPU cores shared with other work: compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def bench_case(folder: Path, repeat: int) -> dict[str, float]:
    """Time, memory and accuracy of the lung masks on one LIDC case folder; prints a summary."""
    from lungspread.io import read_volume
    from lungspread.lungs import LEFT, UPPER, analyze_lungs, segment_lungs, segment_lungs_timed

    t = time.perf_counter()
    ct = read_volume(folder / "ct.nii.gz")
    read_s = time.perf_counter() - t
    segment_lungs(ct)  # warm-up: imports, page faults
    times = []
    cpu_times = []
    stages: dict[str, float] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        c = time.process_time()
        _, stages = segment_lungs_timed(ct)
        cpu_times.append(time.process_time() - c)
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    segment_lungs(ct)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t = time.perf_counter()
    res = analyze_lungs(ct)
    analyze_s = time.perf_counter() - t
    out = {
        "read_s": read_s,
        "segment_s_median": statistics.median(times),
        "segment_s_min": min(times),
        "segment_cpu_s_median": statistics.median(cpu_times),
        "analyze_s": analyze_s,
        "peak_alloc_mb": peak / 2**20,
        "ct_mb": ct.array.nbytes / 2**20,
        "right_ml": res.volumes_ml["right_ml"],
        "left_ml": res.volumes_ml["left_ml"],
    }
    nod_path = folder / "nodules.nii.gz"
    if nod_path.is_file():
        nod = np.asarray(read_volume(nod_path).array) > 0
        out["nodule_in_left_pct"] = 100.0 * float(np.mean(res.labels.array[nod] == LEFT))
        out["nodule_upper_zone_pct"] = 100.0 * float(np.mean(res.zones.array[nod] == UPPER))
    print(f"{folder.name}  shape {ct.shape}  spacing {tuple(round(s, 3) for s in ct.spacing)}")
    print(f"  read {read_s:.2f} s (not included below)")
    print(
        f"  segment_lungs: median {out['segment_s_median']:.2f} s, min "
        f"{out['segment_s_min']:.2f} s over {repeat} runs (target < 5 s)"
    )
    print(
        f"  CPU time of this process per call: median {out['segment_cpu_s_median']:.2f} s "
        "(close to the wall time on an idle machine; the wall time grows when other "
        "processes share the cores)"
    )
    print("  stages (last run): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"  analyze_lungs (+ zones, volumes): {analyze_s:.2f} s")
    print(
        f"  peak numpy/python allocations during segment_lungs: {out['peak_alloc_mb']:.0f} MB "
        f"(the CT itself: {out['ct_mb']:.0f} MB)"
    )
    print(f"  right lung {out['right_ml']:.0f} mL, left lung {out['left_ml']:.0f} mL")
    if "nodule_in_left_pct" in out:
        print(
            f"  nodule voxels in the left lung: {out['nodule_in_left_pct']:.1f}%, "
            f"in an upper zone: {out['nodule_upper_zone_pct']:.1f}%"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="both LIDC scans, not only 0002")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads (default 1)")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    names = ["lidc-idri-0001", "lidc-idri-0002"] if args.all else ["lidc-idri-0002"]
    for name in names:
        folder = DATA / name
        if not (folder / "ct.nii.gz").is_file():
            print(f"missing {folder / 'ct.nii.gz'}", file=sys.stderr)
            return 1
        bench_case(folder, args.repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {rss:.0f} MB")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

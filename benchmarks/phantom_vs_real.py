"""Phantoms against real chest CT: HU statistics, lung volumes, timings and pictures.

    python benchmarks/phantom_vs_real.py OUT_DIR [--seeds 0 1 2] [--size full] [--tumors 1]
        [--docs-image docs/images/phantom_vs_real.png]

Reads the two LIDC-IDRI scans in ../shared/data, makes phantoms, and prints one table with
the same measurements on each: lung HU (median, 5th and 95th percentiles), the fraction of
lung above -500 HU (vessels, bronchial walls, nodules), each lung's volume, the soft-tissue
and fat peaks of the body histogram. Real and phantom are measured the same way: lungs from
``lungspread.lungs.segment_lungs`` (a simple threshold mask if that is missing), the body
from HU thresholds. Writes into OUT_DIR:

* ``side_by_side.png``: lidc-idri-0002 above, a phantom below, three axial levels at the
  same heights through the lungs and a coronal slice, same window (W 1500, L -600);
* ``histograms.png``: HU histograms inside the lungs and the body;
* ``stats.json``: the numbers of the table.

LIDC-IDRI data: The Cancer Imaging Archive, CC BY 3.0 (see ../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WINDOW = (-1350.0, 150.0)


def lung_labels(ct: Any) -> tuple[np.ndarray, str]:
    """Lung labels (1 right, 2 left) by lungspread.lungs if present, else thresholds."""
    try:
        from lungspread.lungs import segment_lungs

        return np.asarray(segment_lungs(ct).array), "lungspread.lungs.segment_lungs"
    except ImportError:  # pragma: no cover - the lungs module is optional here
        pass
    from lungspread.phantom.compare import threshold_masks

    _, lungs, _ = threshold_masks(ct, step=1)
    return lungs, "threshold_masks"


def body_mask(ct: Any) -> np.ndarray:
    from lungspread.phantom.compare import threshold_masks

    body, _, _ = threshold_masks(ct, step=1)
    return body


def levels(lungs: np.ndarray) -> list[int]:
    """Slices at 30 %, 55 % and 85 % of the lungs' height (array k increasing upwards)."""
    ks = np.nonzero(lungs.any(axis=(0, 1)))[0]
    lo, hi = int(ks.min()), int(ks.max())
    return [round(lo + f * (hi - lo)) for f in (0.3, 0.55, 0.85)]


def to_display(arr: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorient to LPS-like display order (i: patient right -> left, j: anterior ->
    posterior, k: inferior -> superior), as radiologists look at axial slices."""
    out = arr
    signs = np.sign(np.diag(affine)[:3])
    if signs[0] > 0:
        out = out[::-1]
    if signs[1] > 0:
        out = out[:, ::-1]
    if signs[2] < 0:
        out = out[:, :, ::-1]
    return out


def picture(
    cases: list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]], path: Path, dpi: int = 60
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(cases), 4, figsize=(16, 4.1 * len(cases)))
    axes = np.atleast_2d(axes)
    for row, (name, ct, lungs, spacing) in enumerate(cases):
        for col, k in enumerate(levels(lungs)):
            ax = axes[row, col]
            ax.imshow(ct[:, :, k].T, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
            ax.set_title(f"{name}  axial k={k}", fontsize=9)
            ax.axis("off")
        ax = axes[row, 3]
        j = int(np.nonzero(lungs.any(axis=(0, 2)))[0].mean())
        ax.imshow(
            ct[:, j, :].T,
            cmap="gray",
            vmin=WINDOW[0],
            vmax=WINDOW[1],
            origin="lower",
            aspect=spacing[2] / spacing[0],
        )
        ax.set_title(f"{name}  coronal j={j}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def histograms(stats: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lungspread.phantom.compare import BODY_BINS, LUNG_BINS

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    for name, st in stats.items():
        style = "-" if name.startswith("lidc") else "--"
        a.plot(0.5 * (LUNG_BINS[1:] + LUNG_BINS[:-1]), st["lung_hist"], style, label=name)
        b.plot(0.5 * (BODY_BINS[1:] + BODY_BINS[:-1]), st["body_hist"], style, label=name)
    a.set_title("HU inside the lungs")
    b.set_title("HU inside the body, outside the lungs")
    for ax in (a, b):
        ax.set_xlabel("HU")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", default="full")
    p.add_argument("--tumors", type=int, default=1, help="tumors per phantom (the scans have one)")
    p.add_argument("--docs-image", type=Path, default=None)
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 2
    from lungspread.io import read_volume
    from lungspread.phantom import make_phantom
    from lungspread.phantom.compare import ct_stats

    args.out.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {}
    timings: dict[str, float] = {}
    shown: list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]] = []
    method = ""
    for case in ("lidc-idri-0001", "lidc-idri-0002"):
        ct = read_volume(DATA / case / "ct.nii.gz")
        lungs, method = lung_labels(ct)
        st = ct_stats(ct, lungs, body_mask(ct))
        stats[case] = st.as_dict()
        if case == "lidc-idri-0002":
            shown.append(
                (case, to_display(ct.array, ct.affine), to_display(lungs, ct.affine), ct.spacing)
            )
    for seed in args.seeds:
        t0, c0 = time.perf_counter(), time.process_time()
        ph = make_phantom(seed, size=args.size, tumors=args.tumors)
        timings[f"phantom {seed} ({args.size}) wall"] = time.perf_counter() - t0
        timings[f"phantom {seed} ({args.size}) cpu"] = time.process_time() - c0
        name = f"phantom seed {seed}"
        lungs, _ = lung_labels(ph.ct)
        st = ct_stats(ph.ct, lungs, body_mask(ph.ct))
        stats[name] = st.as_dict()
        truth = ct_stats(ph.ct, ph.lungs.array, ph.body.array if ph.body is not None else None)
        stats[name]["truth_right_lung_l"] = truth.right_lung_l
        stats[name]["truth_left_lung_l"] = truth.left_lung_l
        stats[name]["lesions"] = len(ph.lesions)
        if seed == args.seeds[0]:
            shown.append(
                (
                    name,
                    to_display(ph.ct.array, ph.ct.affine),
                    to_display(ph.lungs.array, ph.ct.affine),
                    ph.ct.spacing,
                )
            )
    for size in ("small", "medium"):
        t0, c0 = time.perf_counter(), time.process_time()
        make_phantom(args.seeds[0], size=size)
        timings[f"phantom {args.seeds[0]} ({size}) wall"] = time.perf_counter() - t0
        timings[f"phantom {args.seeds[0]} ({size}) cpu"] = time.process_time() - c0

    rows = [
        ("lung median HU", "lung_median_hu", "{:.0f}"),
        ("lung p5 HU", "lung_p05_hu", "{:.0f}"),
        ("lung p95 HU", "lung_p95_hu", "{:.0f}"),
        ("lung > -500 HU", "dense_lung_fraction", "{:.1%}"),
        ("right lung L", "right_lung_l", "{:.2f}"),
        ("left lung L", "left_lung_l", "{:.2f}"),
        ("soft-tissue peak HU", "soft_tissue_peak_hu", "{:.0f}"),
        ("fat peak HU", "fat_peak_hu", "{:.0f}"),
        ("body L", "body_l", "{:.1f}"),
    ]
    names = list(stats)
    width = max(14, *(len(n) for n in names))
    print(f"lungs by {method}; body by HU thresholds")
    print(f"{'':22}" + "".join(f"{n:>{width + 2}}" for n in names))
    for label, key, fmt in rows:
        print(f"{label:22}" + "".join(f"{fmt.format(stats[n][key]):>{width + 2}}" for n in names))
    print()
    for name, seconds in timings.items():
        print(f"{name:32} {seconds:6.2f} s")
    picture(shown, args.out / "side_by_side.png")
    histograms(stats, args.out / "histograms.png")
    (args.out / "stats.json").write_text(
        json.dumps({"stats": stats, "timings_s": timings, "lungs_by": method}, indent=2)
    )
    if args.docs_image is not None:
        args.docs_image.parent.mkdir(parents=True, exist_ok=True)
        picture(shown, args.docs_image, dpi=44)
    print(f"\npictures and numbers in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

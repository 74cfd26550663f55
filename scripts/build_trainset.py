"""Build the training (or held-out validation) set of lungspread's bundled model.

    .venv/bin/python scripts/build_trainset.py OUT --cases N [--seed S] [--split train|val]
        [--lidc ../shared/data/lidc-nodule-vois] [--spacing 1.5] [--size full]
        [--subsolid-share 0.35] [--subsolid-scale 0.85,1.25] [--subsolid-contrast 1,1]
        [--mimics 0,0]

Writes an MSD-format folder (``dataset.json``, ``imagesTr/``, ``labelsTr/``) of phantom
chests with real LIDC-IDRI nodules pasted into their lungs, which ``lungspread train`` reads.
See :mod:`lungspread.data.trainset` for what goes in and why, and
``src/lungspread/weights/MODEL_CARD.md`` for the exact commands behind the bundled model.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}") from None
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    from lungspread.data.trainset import CONTRAST_RANGE, SCALE_RANGE, SUBSOLID_SHARE, build_trainset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip() if __doc__ else "")
    ap.add_argument("out", type=Path)
    ap.add_argument("--cases", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("train", "val"), default="train")
    ap.add_argument(
        "--lidc",
        type=Path,
        default=REPO.parent / "shared" / "data" / "lidc-nodule-vois",
        help="LIDC nodule crops folder; 'none' for phantoms only",
    )
    ap.add_argument("--spacing", type=float, default=1.5, help="isotropic voxel size (mm)")
    ap.add_argument("--size", default="full", help="phantom size (small or full)")
    ap.add_argument("--min-nodules", type=int, default=1)
    ap.add_argument("--max-nodules", type=int, default=4)
    ap.add_argument(
        "--subsolid-share",
        type=float,
        default=SUBSOLID_SHARE,
        help="chance that a pasted nodule is ground-glass or part-solid (1 = only those)",
    )
    ap.add_argument(
        "--subsolid-scale",
        type=_range,
        default=SCALE_RANGE,
        help="size factors of pasted sub-solid nodules, LO,HI",
    )
    ap.add_argument(
        "--subsolid-contrast",
        type=_range,
        default=CONTRAST_RANGE,
        help="contrast of pasted sub-solid nodules against the lung, LO,HI (1 = as scanned)",
    )
    ap.add_argument(
        "--mimics",
        type=_range,
        default=(0, 0),
        help="non-tumor opacities (atelectasis) per chest, LO,HI whole numbers",
    )
    args = ap.parse_args(argv)
    lo_m, hi_m = args.mimics
    if lo_m != int(lo_m) or hi_m != int(hi_m):
        ap.error(f"--mimics takes whole numbers LO,HI, got {lo_m:g},{hi_m:g}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from lungspread.errors import LungspreadError

    t0 = time.perf_counter()

    def progress(i: int, cid: str) -> None:
        print(f"{i + 1}/{args.cases} {cid}  {time.perf_counter() - t0:.0f} s", flush=True)

    lidc = None if str(args.lidc).lower() == "none" else args.lidc
    try:
        build_trainset(
            args.out,
            args.cases,
            seed=args.seed,
            split=args.split,
            lidc_root=lidc,
            spacing_mm=(args.spacing, args.spacing, args.spacing),
            nodules_per_case=(args.min_nodules, args.max_nodules),
            size=args.size,
            on_case=progress,
            subsolid_share=args.subsolid_share,
            subsolid_scale=args.subsolid_scale,
            subsolid_contrast=args.subsolid_contrast,
            mimics=(int(lo_m), int(hi_m)),
        )
    except LungspreadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

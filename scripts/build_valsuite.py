"""Build the fixed held-out validation suite that chooses between bundled-model candidates.

    .venv/bin/python scripts/build_valsuite.py OUT [--cases 10] [--lidc DIR] [--size full]
        [--seeds 21,22,23,2] [--mimics 0]

Six MSD-format folders under ``OUT``, every nodule pasted from LIDC-IDRI patients held out of
training (``--split val``) into phantom chests of seeds that no training set uses:

    OUT/regular   nodules of every kind as scanned                      (seed 21)
    OUT/subsolid  ground-glass and part-solid nodules only, as scanned   (seed 22)
    OUT/faded     sub-solid nodules only, enlarged 1.5-2.5 times and faded to 35-70% of
                  their contrast against the lung, like LIDC-IDRI-0002's faint lesion (seed 23)
    OUT/slabs_regular, OUT/slabs_subsolid, OUT/slabs_faded
                  the same chests cut to 80 mm slabs around a tumor (``lungspread dataset
                  slabs``, seed 2): scans that cover only part of the chest

``--seeds R,S,F,C`` builds a fresh suite (other chests, other nodules drawn) with the same
recipe, for a choice that must not reuse a suite already looked at; ``--mimics N`` gives each
chest 0 to N non-tumor opacities (dependent and plate-like atelectasis) that a model should
leave alone.

It prints the ``benchmarks/bench_analyze.py --accuracy --phantoms ...`` arguments that score
a model on it. Each folder is what ``scripts/build_trainset.py`` and ``lungspread dataset
slabs`` write with the same settings (same seeds, same cases); the script only fixes them in
one place so that every comparison uses the same suite. An existing folder is kept, so an
interrupted build continues.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: name -> build_trainset keyword arguments (besides out, n_cases, split, lidc_root)
SETS: dict[str, dict[str, Any]] = {
    "regular": {"seed": 21},
    "subsolid": {"seed": 22, "subsolid_share": 1.0},
    "faded": {
        "seed": 23,
        "subsolid_share": 1.0,
        "subsolid_scale": (1.5, 2.5),
        "subsolid_contrast": (0.35, 0.7),
    },
}
SLAB_MM = 80.0
SLAB_SEED = 2


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(v) for v in text.split(","))
    except ValueError:
        seeds = ()
    if len(seeds) != len(SETS) + 1 or min(seeds) < 0:
        raise argparse.ArgumentTypeError(
            f"expected {len(SETS) + 1} non-negative whole numbers R,S,F,C, got {text!r}"
        )
    return seeds


def main(argv: list[str] | None = None) -> int:
    from lungspread.data.slabs import cut_slabs
    from lungspread.data.trainset import build_trainset
    from lungspread.errors import LungspreadError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1].strip() if __doc__ else "")
    ap.add_argument("out", type=Path)
    ap.add_argument("--cases", type=int, default=10, help="phantom chests per set")
    ap.add_argument(
        "--lidc", type=Path, default=REPO.parent / "shared" / "data" / "lidc-nodule-vois"
    )
    ap.add_argument("--size", default="full", help="phantom size (full; small for tests)")
    ap.add_argument(
        "--seeds",
        type=_seeds,
        default=(*(kw["seed"] for kw in SETS.values()), SLAB_SEED),
        help="seeds of the regular, sub-solid and faded sets and of the slab cuts",
    )
    ap.add_argument("--mimics", type=int, default=0, help="up to N atelectases per chest")
    args = ap.parse_args(argv)
    *set_seeds, slab_seed = args.seeds
    t0 = time.perf_counter()
    folders: list[Path] = []
    try:
        for (name, kwargs), seed in zip(SETS.items(), set_seeds, strict=True):
            whole = args.out / name
            print(f"{name}: {args.cases} chests -> {whole}", flush=True)
            build_trainset(
                whole,
                args.cases,
                split="val",
                lidc_root=args.lidc,
                size=args.size,
                **{**kwargs, "seed": seed},
                mimics=(0, args.mimics),
            )
            folders.append(whole)
        for name in SETS:
            slabs = args.out / f"slabs_{name}"
            if not slabs.exists():
                cut_slabs(args.out / name, slabs, SLAB_MM, seed=slab_seed)
            folders.append(slabs)
    except LungspreadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s; score a model with")
    print("  benchmarks/bench_analyze.py --accuracy --phantoms " + " ".join(map(str, folders)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

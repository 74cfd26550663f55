"""The default 2D recipe against the proposal's ``seed`` preset on real MSD Task06 tumor patches.

Data: ``../shared/data/msd-lung-patches/val_patches.h5`` (130 axial 48x48 patches at 2 mm from
13 Task06 patients, 111 with tumor; MSD, CC-BY-SA 4.0), converted to an MSD folder by
:func:`lungspread.data.convert.patches_h5_to_msd` (approximate HU = 1100 v - 1000).

Split: the file does not record which patch came from which patient. The converter groups
runs of 10 consecutive patches as one patient (13 groups for the 13 patients; within a run
the tumor areas are alike, between runs they jump), and ``kfold_splits`` keeps each group in
one fold: ``--folds`` (default 5) group-wise folds, so no tumor is in both the training and
the validation side.

Recipes (same folds, seed and number of optimizer steps):

* ``seed``: ``seed-unet2d`` 64-128-256 + the ``seed`` preset (BCE, Adam 1e-4 constant,
  batch 16, no augmentation, no oversampling);
* ``seed-net+default``: the same network with the ``default`` recipe (Dice + CE, foreground
  oversampling, augmentation, AdamW 1e-3 poly);
* ``default``: the recommended 2D model (``resnet-unet2d``) with the ``default`` recipe.

Each recipe trains every fold, then ``evaluate --subset val`` predicts each patch with the
fold model that never saw its group, and ``compare`` makes the table (mean and 95% bootstrap
interval per metric, paired Dice difference to the seed recipe). Also reported: how many
patches with tumor got an empty prediction (the "collapse to empty masks" of BCE on
imbalanced data).

Denoising: ``--denoise SPEC`` (e.g. ``gaussian:1``, see :mod:`lungspread.data.denoise`) also
trains each selected recipe with that noise reduction (label ``RECIPE+SPEC``, same folds, seed
and steps) and reports the paired Dice difference of the denoised recipe to the plain one with
its 95% bootstrap interval. ``--recipes`` selects which recipes run, so the question can be
answered without retraining the seed recipe; ``--fold K`` trains and evaluates one fold only.

Usage::

    .venv/bin/python benchmarks/real_patches.py --work /tmp/patches-bench [--epochs 40]
    .venv/bin/python benchmarks/real_patches.py --work /tmp/dn --recipes default \
        --denoise gaussian:1

Results go to WORK/compare/ (comparison.md, .csv, box plots) and WORK/summary.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "msd-lung-patches" / "val_patches.h5"

RECIPES: dict[str, dict[str, Any]] = {
    "seed": {"preset": "seed", "model": "seed-unet2d"},
    "seed-net+default": {"preset": "default", "model": "seed-unet2d"},
    "default": {"preset": "default", "model": None},
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lungspread.compare import compare, paired_difference
    from lungspread.data.convert import patches_h5_to_msd
    from lungspread.data.denoise import parse_method
    from lungspread.evaluate import evaluate
    from lungspread.training.config import make_config
    from lungspread.training.trainer import train

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = work / "msd-patches"
    if not (data / "dataset.json").is_file():
        patches_h5_to_msd(DATA, data)
    variants = [(name, None) for name in args.recipes]
    if args.denoise:
        parse_method(args.denoise)  # fail before any training on a bad spec
        variants += [(name, args.denoise) for name in args.recipes]
    labels = [variant_label(name, dn) for name, dn in variants]
    evals, timings, collapse = [], {}, {}
    for (name, dn), label in zip(variants, labels, strict=True):
        recipe = RECIPES[name]
        folder = variant_folder(name, dn)
        runs = work / "runs" / folder
        t0 = time.perf_counter()
        if not (runs / "run.json").is_file():
            cfg = make_config(
                recipe["preset"],
                model=recipe["model"],
                epochs=args.epochs,
                iters_per_epoch=args.iters,
                batch_size=16,
                patch_size=[48, 48],
                fold=args.fold,
                folds=args.folds,
                seed=args.seed,
                denoise=dn,
            )
            train(
                data, runs, cfg, resume=(runs / "config.json").is_file(), device=args.device,
                tensorboard=False, cache_dir=work / "preprocessed",
            )  # fmt: skip
        timings[label] = round(time.perf_counter() - t0, 1)
        ev = work / "eval" / folder
        if not (ev / "metrics.json").is_file():
            evaluate(runs, data, ev, subset="val", device=args.device, figures=False)
        evals.append(ev)
        cases = json.loads((ev / "metrics.json").read_text())["cases"]
        with_tumor = [c for c in cases if (c.get("truth_volume_ml") or 0) > 0]
        empty = sum(1 for c in with_tumor if (c.get("pred_volume_ml") or 0) == 0)
        collapse[label] = {"tumor_patches": len(with_tumor), "empty_predictions": empty}
        print(f"{label}: {empty}/{len(with_tumor)} tumor patches predicted empty", flush=True)
    result = compare(evals, work / "compare", labels=labels, overwrite=True)
    lines = [(work / "compare" / "comparison.md").read_text(encoding="utf-8"), ""]
    lines.append("| recipe | tumor patches predicted empty | training time (s) |")
    lines.append("| --- | ---: | ---: |")
    for label in labels:
        c = collapse[label]
        lines.append(
            f"| {label} | {c['empty_predictions']} / {c['tumor_patches']} | {timings[label]} |"
        )
    denoise_effect: dict[str, dict[str, Any]] = {}
    if args.denoise:
        lines += ["", f"Paired Dice difference, with {args.denoise} minus without (same patches):"]
        lines += [
            "",
            "| recipe | mean difference | 95% interval | patches |",
            "| --- | ---: | --- | ---: |",
        ]
        for name in args.recipes:
            plain = work / "eval" / variant_folder(name, None) / "metrics.json"
            noisy = work / "eval" / variant_folder(name, args.denoise) / "metrics.json"
            d = paired_difference(
                json.loads(plain.read_text())["cases"], json.loads(noisy.read_text())["cases"]
            )
            denoise_effect[name] = d
            lo, hi = d["ci95"]
            lines.append(f"| {name} | {d['mean']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | {d['n']} |")
    (work / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return {
        "compare": result,
        "collapse": collapse,
        "timings_s": timings,
        "denoise_effect": denoise_effect,
    }


def variant_label(recipe: str, denoise: str | None) -> str:
    """``"default"`` or ``"default+gaussian:1"``: the label in the tables."""
    return recipe if not denoise else f"{recipe}+{denoise}"


def variant_folder(recipe: str, denoise: str | None) -> str:
    """The label as a portable folder name (``:`` is not allowed on every file system)."""
    return variant_label(recipe, denoise).replace(":", "_")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="working folder (data, runs, results)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--iters", type=int, default=7, help="optimizer steps per epoch")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--fold",
        default="all",
        help="train only this fold (0 .. folds-1) and evaluate its validation patches; each "
        "fold is seeded on its own, so it equals that fold of a full run (use its own --work)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument(
        "--denoise",
        default=None,
        help="also train each selected recipe with this noise reduction (e.g. gaussian:1) "
        "and report the paired Dice difference to the plain recipe",
    )
    run(p.parse_args())


if __name__ == "__main__":
    main()

"""Every registered model trains on synthetic phantoms and is scored on held-out phantoms.

Data: ``lungspread.phantom.write_phantom_dataset`` (size ``small``: 96x96x64 voxels at
3.6x3.6x5 mm), ``--train-cases`` phantoms (seeds 0, 1, ...) to train on (fold 0 of 4 for
validation and best-model selection) and ``--test-cases`` other phantoms (seeds 1000, ...,
drawn like the training phantoms: 0 to 5 tumors of every kind and size) that no model
sees in training.

Each model trains with the ``default`` recipe at a small width (``SETTINGS``: a few
thousand to a few hundred thousand parameters, so that the whole benchmark fits a CPU),
then ``lungspread evaluate`` scores it on the held-out phantoms. Reported: pooled Dice over
all held-out voxels (``dice_global``, with a 95% bootstrap interval over cases; the pass
mark is 0.8), the per-case mean Dice, and lesion-wise TP/FP/FN. Small phantoms hold tumors
of a few voxels (a 5 mm nodule is 1-10 voxels at 3.6 mm), whose Dice is mostly boundary, so
the per-case mean is lower than the pooled value.

Usage::

    .venv/bin/python benchmarks/train_phantoms.py --work /tmp/phantom-bench [--models unet3d ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

#: per model: widths, patch and batch that keep the CPU time small
SETTINGS: dict[str, dict[str, Any]] = {
    "seed-unet2d": {"model_kwargs": {"features": [16, 32, 64]}, "patch": [96, 96], "batch": 8},
    "attention-unet2d": {
        "model_kwargs": {"features": [8, 16, 32, 64]},
        "patch": [96, 96],
        "batch": 8,
    },
    "resnet-unet2d": {
        "model_kwargs": {"features": [8, 16, 32, 64], "blocks": 1},
        "patch": [96, 96],
        "batch": 8,
    },
    "vgg-unet2d": {"model_kwargs": {"features": [8, 16, 32, 64]}, "patch": [96, 96], "batch": 8},
    "unet3d": {"model_kwargs": {"features": [8, 16, 32, 64]}, "patch": [48, 48, 32], "batch": 2},
    "nnunet-task06-3d": {
        "model_kwargs": {"features": [4, 8, 16, 32, 32, 32]},
        "patch": [64, 64, 32],
        "batch": 2,
    },
    "fast3d": {"model_kwargs": {"features": [8, 16, 32, 64]}, "patch": [48, 48, 32], "batch": 2},
}
DEFAULT_SETTINGS: dict[str, Any] = {"model_kwargs": {}, "patch": None, "batch": None}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from lungspread.evaluate import evaluate
    from lungspread.models import available_models
    from lungspread.phantom import write_phantom_dataset
    from lungspread.training.config import make_config
    from lungspread.training.trainer import train

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    train_data, test_data = work / "train", work / "test"
    if not (train_data / "dataset.json").is_file():
        write_phantom_dataset(train_data, cases=args.train_cases, seed=0)
    if not (test_data / "dataset.json").is_file():
        write_phantom_dataset(test_data, cases=args.test_cases, seed=1000, tumors=args.test_tumors)
    rows = []
    for name in args.models or available_models():
        s = SETTINGS.get(name, DEFAULT_SETTINGS)
        run_dir = work / "runs" / name
        t0 = time.perf_counter()
        if not (run_dir / "run.json").is_file():
            cfg = make_config(
                "default",
                model=name,
                model_kwargs=s["model_kwargs"],
                patch_size=s["patch"],
                batch_size=s["batch"],
                epochs=args.epochs,
                iters_per_epoch=args.iters,
                val_every=args.val_every,
                folds=4,
                fit_samples=10**6,
                hard_negatives=args.hard_negatives,
                mine_every=args.mine_every,
            )
            resume = (run_dir / "config.json").is_file()
            train(
                train_data, run_dir, cfg, resume=resume, device=args.device, tensorboard=False,
                cache_dir=work / "preprocessed",
            )  # fmt: skip
        seconds = round(time.perf_counter() - t0, 1)
        ev = work / "eval" / name
        if not (ev / "metrics.json").is_file():
            evaluate(run_dir, test_data, ev, device=args.device, figures=True)
        agg = json.loads((ev / "metrics.json").read_text())["aggregate"]
        spec = json.loads((run_dir / "model.json").read_text())
        row = {
            "model": name,
            "dice_global": agg["dice_global"]["mean"],
            "dice_global_ci95": agg["dice_global"]["ci95"],
            "dice_mean": agg["dice"]["mean"],
            "lesions": agg["lesions_total"],
            "train_s": seconds,
            "best_epoch": spec["extra"].get("epoch"),
            "val_dice": spec["extra"].get("val_dice"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [
        "| model | held-out Dice (pooled) [95% CI] | mean Dice per case | lesions TP/FP/FN "
        "| > 0.8 | train s |",
        "| --- | --- | ---: | --- | --- | ---: |",
    ]
    for r in rows:
        lo, hi = r["dice_global_ci95"]
        les = r["lesions"]
        ok = "yes" if r["dice_global"] > 0.8 else "no"
        lines.append(
            f"| {r['model']} | {r['dice_global']:.3f} [{lo:.3f}, {hi:.3f}] | {r['dice_mean']:.3f} "
            f"| {les['tp']}/{les['fp']}/{les['fn']} | {ok} | {r['train_s']} |"
        )
    (work / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    p.add_argument("--train-cases", type=int, default=16)
    p.add_argument("--test-cases", type=int, default=8)
    p.add_argument(
        "--test-tumors", type=int, default=None, help="tumors per test phantom (default: random)"
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--val-every", type=int, default=5)
    p.add_argument(
        "--hard-negatives", type=float, default=0.0,
        help="share of random patches centred on mined false positives (train --hard-negatives)",
    )  # fmt: skip
    p.add_argument("--mine-every", type=int, default=5, help="epochs between mining rounds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    run(p.parse_args())


if __name__ == "__main__":
    main()

"""Training throughput of ``unet3d`` against nnU-Net's Task06 3d_fullres network, on one GPU.

Both networks train in the same process, the same way: patch 160x192x80 voxels (nnU-Net's
80x192x160 in its z, y, x order), batch 2, Dice + cross-entropy with deep supervision, SGD
(Nesterov 0.99), mixed precision (bf16 autocast where supported, else fp16 with a gradient
scaler), gradient clipping at 12, as lungspread's trainer does. ``unet3d`` is planned by
lungspread for Task06's spacing (0.79x0.79x1.24 mm); ``nnunet-task06-3d`` copies nnU-Net's
published plan (6 stages, 32-64-128-256-320-320 features).

Two modes per network:

* ``step``: network + loss + optimizer on a fixed random batch already on the GPU (the
  network's own speed);
* ``pipeline``: lungspread's data path too: patches cut on the CPU from a synthetic
  preprocessed volume (with foreground oversampling), copied to the GPU and augmented there
  (:func:`lungspread.training.augment.augment_batch`), then the step.

It prints the GPU's name, iterations per second, seconds per 250-iteration epoch (nnU-Net's
epoch) and peak GPU memory, and writes the same as JSON (``--json``).

Usage (GPU)::

    .venv/bin/python benchmarks/bench_training_gpu.py --json gpu_training.json

``--tiny --device cpu`` runs the whole script at a toy size on a CPU (tests use it).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

PATCH = (160, 192, 80)
SPACING = (0.79, 0.79, 1.24)
TINY_PATCH = (32, 32, 16)


def build(name: str, tiny: bool, patch: tuple[int, int, int]) -> Any:
    from lungspread.models import build_model
    from lungspread.models.unet3d import NNUNET_TASK06_FEATURES, plan_unet3d

    if name == "nnunet-task06-3d":
        feats = [max(2, f // 16) for f in NNUNET_TASK06_FEATURES] if tiny else None
        return build_model(name, **({"features": feats[:4]} if feats else {}))
    kernels, strides = plan_unet3d(patch, SPACING, max_stages=4 if tiny else 6)
    feats = [4, 8, 16, 16][: len(strides)] if tiny else list(NNUNET_TASK06_FEATURES)[: len(strides)]
    return build_model("unet3d", features=feats, kernels=kernels, strides=strides)


def measure(name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lungspread.training.augment import augment_batch, source_size
    from lungspread.training.losses import SegLoss
    from lungspread.training.sampling import PatchSampler, PreparedCase

    dev = torch.device(args.device)
    patch = TINY_PATCH if args.tiny else PATCH
    torch.manual_seed(0)
    net = build(name, args.tiny, patch).to(dev).train()
    if args.channels_last and dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    loss_fn = SegLoss("dice_ce", "softmax")
    amp = dev.type == "cuda" and not args.no_amp
    bf16 = amp and torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=amp and not bf16)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    sampler = None
    if mode == "pipeline":
        shape = tuple(int(p * 1.6) for p in patch)
        image = rng.normal(size=shape).astype(np.float32)
        label = (rng.random(shape) > 0.995).astype(np.uint8)
        src = source_size(patch, True)
        case = PreparedCase.from_arrays("synthetic", image, label)
        sampler = PatchSampler([case], src, args.batch, 0.33)
    x0 = torch.randn(args.batch, 1, *patch, device=dev)
    y0 = (torch.rand(args.batch, 1, *patch, device=dev) > 0.99).float()

    def step() -> None:
        if sampler is not None:
            imgs, labs, pads = sampler.sample(rng)
            x = torch.from_numpy(imgs).to(dev, non_blocking=True)
            y = torch.from_numpy(labs).to(dev, non_blocking=True)
            x, y = augment_batch(x, y, patch, gen, torch.from_numpy(pads))
        else:
            x, y = x0, y0
        opt.zero_grad(set_to_none=True)
        if amp:
            dtype = torch.bfloat16 if bf16 else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                out = net(x)
        else:
            out = net(x)
        loss = loss_fn(out, y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        scaler.step(opt)
        scaler.update()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync()
    dt = time.perf_counter() - t0
    its = args.iters / dt
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    return {
        "model": name,
        "mode": mode,
        "iterations_per_s": round(its, 3),
        "s_per_250_iterations": round(250 / its, 1),
        "peak_gpu_memory_gib": round(peak, 2),
        "parameters_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "divisor": list(getattr(net, "divisor", [])),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    p = argparse.ArgumentParser(description="unet3d vs nnU-Net Task06 training throughput")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--modes", nargs="+", default=["step", "pipeline"])
    p.add_argument("--models", nargs="+", default=["unet3d", "nnunet-task06-3d"])
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--tiny", action="store_true", help="toy sizes (CPU smoke test)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here; use --device cpu --tiny for a smoke test")
        torch.backends.cudnn.benchmark = True
        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"CPU ({platform.processor() or platform.machine()})"
    rows = [measure(m, mode, args) for m in args.models for mode in args.modes]
    print(f"device: {device_name}; torch {torch.__version__}; batch {args.batch}; "
          f"patch {TINY_PATCH if args.tiny else PATCH}; "
          f"AMP {args.device.startswith('cuda') and not args.no_amp}")  # fmt: skip
    print("| model | mode | it/s | s per 250 it | peak GiB | params (M) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} | {r['mode']} | {r['iterations_per_s']} | "
            f"{r['s_per_250_iterations']} | {r['peak_gpu_memory_gib']} | {r['parameters_m']} |"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"device": device_name, "torch": torch.__version__, "rows": rows}, indent=2)
        )
    return rows


if __name__ == "__main__":
    main()

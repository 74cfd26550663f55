"""``lungspread train``: train a tumor segmentation network on an MSD-format dataset.

The run folder (``RUN``) holds everything needed to use, resume and audit the run::

    RUN/config.json          the TrainConfig (preset + options)
    RUN/plans.json           dataset fingerprint + plan, and the training plan
    RUN/splits.json          the k-fold patient-level splits
    RUN/preprocessed/        the preprocessed-case cache (unless --cache elsewhere)
    RUN/fold_K/              one folder per trained fold:
        model.json, model.safetensors      best-on-validation model (a loadable model folder)
        checkpoint.json + checkpoint_eNNNN.safetensors   resumable state after the last epoch
        log.csv, tensorboard/              per-epoch loss, validation Dice, learning rate
    RUN/model.json, RUN/model.safetensors  the chosen fold's model (what inference loads)
    RUN/run.json                            version, inputs, options, timings

Training writes into ``RUN`` as it goes (a checkpoint per epoch, each file atomically), so an
interrupted run keeps every finished epoch; ``resume=True`` continues exactly where it
stopped. Determinism: the random streams of epoch ``e`` are derived from
``(seed, fold, e, rank)``, so an epoch replays identically after a resume.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lungspread.errors import InputError, ModelError, OutputError
from lungspread.models.checkpoint import ModelSpec
from lungspread.training.config import TrainConfig
from lungspread.training.ddp import DistContext
from lungspread.training.sampling import PreparedCase

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
PLANS_JSON = "plans.json"
SPLITS_JSON = "splits.json"
LOG_CSV = "log.csv"
LOG_COLUMNS = (
    "epoch",
    "train_loss",
    "val_dice",
    "val_dice_mean",
    "lr",
    "seconds",
    "best",
    "skipped_steps",
)


class TrainCallbacks:
    """Hooks for progress display; every method is optional (no-ops here)."""

    def on_message(self, text: str) -> None:
        """A one-line status message (planning, preprocessing, ...)."""

    def on_fold_start(self, fold: str, start_epoch: int, epochs: int, iters: int) -> None:
        """A fold begins (``start_epoch`` > 0 when resuming)."""

    def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
        """One optimizer step finished (``epoch`` and ``iteration`` 0-based)."""

    def on_epoch_end(self, fold: str, row: dict[str, Any]) -> None:
        """An epoch finished; ``row`` is its line of ``log.csv``."""

    def on_fold_end(self, result: FoldResult) -> None:
        """A fold finished."""


@dataclass
class FoldResult:
    """Outcome of one fold: its folder, best validation Dice (pooled) and epoch, history."""

    fold: str
    folder: Path
    best_metric: float
    best_epoch: int
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """Outcome of ``train``: the run folder, each fold, the fold whose model is RUN/model.*."""

    run: Path
    folds: list[FoldResult]
    chosen_fold: str
    spec: ModelSpec


# -- helpers ------------------------------------------------------------------------------
#: TrainConfig options added after the first release; at their defaults they are "off"
LATER_OPTIONS = (
    "init_from",
    "init_plan",
    "hard_negatives",
    "mine_every",
    "partial_scan",
    "thin_slab",
)


def config_hash(config: TrainConfig) -> str:
    """Hash of the settings that must not change on resume (everything but ``epochs``)."""
    data = config.to_json()
    data.pop("epochs", None)
    # options added after 0.1.0 count only when set, so that older runs still resume
    defaults = TrainConfig()
    for key in LATER_OPTIONS:
        if key in data and data[key] == getattr(defaults, key):
            data.pop(key)
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lr_at(config: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimizer step ``step`` of ``total`` (poly: nnU-Net's exponent 0.9)."""
    if config.lr_schedule == "poly":
        return float(config.lr * (1.0 - min(step, total) / max(total, 1)) ** 0.9)
    return float(config.lr)


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    params: list[torch.nn.Parameter],
    grad_clip: float | None,
) -> bool:
    """Apply the gradients of one backward pass; False, with the weights untouched, when a
    gradient is not finite.

    With float16 on a GPU the GradScaler skips such steps itself (and lowers its scale). Nothing
    else would: one NaN gradient turns every weight into NaN under Adam, and the run is lost.
    PyTorch's bfloat16 convolution backward on CPUs has been seen to return NaN weight
    gradients from finite inputs (3 passes in 2,000 with a 2^3 bottleneck map;
    docs/training.md), so a step whose gradients are not all finite is skipped, as the scaler
    would skip it, and counted in log.csv's ``skipped_steps``."""
    if scaler.is_enabled():
        if grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        return scaler.get_scale() >= scale
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        optimizer.zero_grad(set_to_none=True)
        return False
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return True


def _epoch_streams(
    seed: int, fold_index: int, epoch: int, rank: int
) -> tuple[np.random.Generator, torch.Generator]:
    rng = np.random.default_rng([seed, fold_index, epoch, rank])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    torch.manual_seed(int(rng.integers(2**62)))
    return rng, gen


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from lungspread.outputs import atomic_write_bytes

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _copy_model(src: Path, dst: Path) -> None:
    from lungspread.models.checkpoint import SPEC_NAME, WEIGHTS_NAME
    from lungspread.outputs import atomic_write_bytes

    for name in (WEIGHTS_NAME, SPEC_NAME):
        atomic_write_bytes(dst / name, (src / name).read_bytes())


def _is_better(metric: float, best: float | None) -> bool:
    if best is None:
        return True
    if math.isnan(metric):
        return False
    return math.isnan(best) or metric > best


def _tensorboard(folder: Path, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: pip install lungspread[train]
        log.info("tensorboard is not installed; logging to log.csv only")
        return None
    return SummaryWriter(str(folder / "tensorboard"))


@contextlib.contextmanager
def _autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            yield
    else:
        yield


# -- validation ---------------------------------------------------------------------------
def validate(
    net: Any, cases: list[PreparedCase], plan: dict[str, Any], device: torch.device
) -> dict[str, float]:
    """Dice on whole validation cases (on the network's grid): pooled and mean per case."""
    from lungspread.training.sampling import predict_case

    was_training = net.training
    net.eval()
    tp = fp = fn = 0
    per_case = []
    try:
        for case in cases:
            prob = predict_case(net, case, plan, device)
            pred = prob >= 0.5
            truth = np.asarray(case.label) > 0
            a = int(np.count_nonzero(pred & truth))
            b = int(np.count_nonzero(pred & ~truth))
            c = int(np.count_nonzero(~pred & truth))
            tp, fp, fn = tp + a, fp + b, fn + c
            if 2 * a + b + c > 0:
                per_case.append(2 * a / (2 * a + b + c))
    finally:
        net.train(was_training)
    pooled = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else float("nan")
    mean = float(np.mean(per_case)) if per_case else float("nan")
    return {"val_dice": float(pooled), "val_dice_mean": mean}


# -- one fold -----------------------------------------------------------------------------
def check_initial_model(folder: str | Path, name: str, kwargs: dict[str, Any]) -> None:
    """Raise :class:`ModelError` unless the model in ``folder`` is the network ``name`` with
    ``kwargs`` (the one this run trains), so that ``--init`` can start from its weights."""
    from lungspread.models.checkpoint import load_spec

    init_spec = load_spec(folder)
    if init_spec.name != name:
        raise ModelError(
            f"--init model is {init_spec.name}, but this run trains {name}; pass --model "
            f"{init_spec.name}",
            folder,
        )
    differ = sorted(
        k for k in set(kwargs) | set(init_spec.kwargs) if kwargs.get(k) != init_spec.kwargs.get(k)
    )
    if differ:
        shown = ", ".join(f"{k} {init_spec.kwargs.get(k)} vs {kwargs.get(k)}" for k in differ)
        raise ModelError(
            f"--init model's {name} differs from this run's ({shown}); pass --features to match",
            folder,
        )


def initial_normalization(folder: str | Path, planned: dict[str, Any]) -> dict[str, Any]:
    """``init_plan="source"``: the intensity normalization of the model in ``folder``, which
    the run keeps instead of the ``planned`` one fitted to its data (its spacing is kept as
    ``TrainConfig.spacing_mm``), so the network sees its inputs as it learned them. The two
    must be of one scheme (a CT window cannot normalize MR images)."""
    from lungspread.models.checkpoint import load_spec

    source = dict(load_spec(folder).normalization)
    if source.get("scheme") != planned.get("scheme"):
        raise InputError(
            f"the --init model normalizes intensities by scheme {source.get('scheme')!r}, but "
            f"this dataset's modality calls for {planned.get('scheme')!r}; use --init-plan refit",
            folder,
        )
    return source


def load_initial_weights(net: torch.nn.Module, folder: str | Path, spec: ModelSpec) -> None:
    """Load the weights of the model in ``folder`` into ``net`` (fine-tuning).

    The model there must be the same network as the one this run trains (registry name and
    widths); its spacing and normalization are kept only with ``init_plan="source"``
    (:func:`initial_normalization`), else the run plans its own from its data.
    """
    from lungspread.models.checkpoint import load_checkpoint

    check_initial_model(folder, spec.name, spec.kwargs)
    source, _ = load_checkpoint(folder)
    net.load_state_dict(source.state_dict(), strict=True)


def _restore_mined(folder: Path, sampler: Any, cases: list[PreparedCase]) -> int | None:
    """Give ``sampler`` the hard negatives saved in ``folder``; the epoch they were mined."""
    from lungspread.training.hard_negatives import load_mined

    saved = load_mined(folder, [c.id for c in cases])
    if saved is None:
        return None
    sampler.set_hard_negatives(saved[1])
    return saved[0]


def _mine(
    ctx: DistContext,
    net: torch.nn.Module,
    folder: Path,
    sampler: Any,
    cases: list[PreparedCase],
    plan: dict[str, Any],
    epoch: int,
    callbacks: TrainCallbacks,
) -> None:
    """Mine the network's false positives on the training cases and sample from them."""
    from lungspread.training.hard_negatives import mine_hard_negatives, save_mined

    t0 = time.perf_counter()
    mined = mine_hard_negatives(net, cases, plan, ctx.device, seed=epoch)
    sampler.set_hard_negatives(mined)
    if ctx.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        save_mined(folder, epoch, [c.id for c in cases], mined)
    hit = sum(1 for m in mined if len(m))
    callbacks.on_message(
        f"hard negatives before epoch {epoch + 1}: {sum(len(m) for m in mined)} false-positive "
        f"voxels in {hit} of {len(cases)} cases ({time.perf_counter() - t0:.0f} s)"
    )


def train_fold(
    ctx: DistContext,
    fold: str,
    fold_index: int,
    folder: Path,
    train_cases: list[PreparedCase],
    val_cases: list[PreparedCase],
    plan: dict[str, Any],
    config: TrainConfig,
    spec: ModelSpec,
    callbacks: TrainCallbacks,
    resume: bool = False,
    tensorboard: bool = True,
) -> FoldResult:
    """Train one fold in ``folder``; resumes from its checkpoint when ``resume``."""
    from lungspread.models.checkpoint import save_checkpoint
    from lungspread.models.registry import build_model
    from lungspread.training import ddp
    from lungspread.training.augment import augment_batch, center_crop, source_size
    from lungspread.training.losses import SegLoss
    from lungspread.training.sampling import PatchSampler
    from lungspread.training.state import (
        has_state,
        load_state,
        model_state_from,
        optimizer_from_flat,
        save_state,
    )

    device = ctx.device
    torch.manual_seed(config.seed)
    net = build_model(plan["model"], **plan["model_kwargs"]).to(device)
    params = list(net.parameters())
    optimizer = make_optimizer(params, config)
    start_epoch, best, best_epoch = 0, None, 0
    history: list[dict[str, Any]] = []
    scaler_state: dict[str, Any] | None = None
    chash = config_hash(config)
    if resume and has_state(folder):
        info, tensors = load_state(folder)
        if info.get("config_hash") != chash:
            raise ModelError(
                "the run's settings changed since this checkpoint (only --epochs may change "
                "on --resume)",
                folder / "checkpoint.json",
            )
        try:
            net.load_state_dict(model_state_from(tensors), strict=True)
            optimizer_from_flat(optimizer, tensors, info["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"checkpoint does not fit this run ({first})", folder) from exc
        start_epoch = int(info["epoch"])
        best = info.get("best_metric")
        best = float("nan") if best is None and info.get("best_epoch") else best
        best_epoch = int(info.get("best_epoch", 0))
        history = list(info.get("history", []))
        scaler_state = info.get("scaler")
    elif config.init_from:
        load_initial_weights(net, config.init_from, spec)
    epochs = int(config.epochs)
    world = ctx.world_size
    per_rank_batch = max(1, plan["batch_size"] // world)
    iters = int(plan["iters_per_epoch"])
    total_steps = epochs * iters
    callbacks.on_fold_start(fold, start_epoch, epochs, iters)
    if start_epoch >= epochs:
        result = FoldResult(fold, folder, _nan(best), best_epoch, start_epoch, history)
        callbacks.on_fold_end(result)
        return result

    model = ddp.wrap_model(net, ctx)
    loss_fn = SegLoss(config.loss, plan["output"])
    patch = plan["patch_size"]
    src = source_size(patch, config.augment)
    sampler = PatchSampler(
        train_cases,
        src,
        per_rank_batch,
        config.oversample_fg,
        config.hard_negatives,
        config.partial_scan,
        config.thin_slab,
    )
    mined_at = _restore_mined(folder, sampler, train_cases) if resume else None
    use_amp = bool(config.amp) and device.type == "cuda"
    fp16 = use_amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    if scaler_state and fp16:
        scaler.load_state_dict(scaler_state)
    writer = _tensorboard(folder, tensorboard and ctx.is_main)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            rng, gen = _epoch_streams(config.seed, fold_index, epoch, ctx.rank)
            if config.hard_negatives > 0 and epoch % config.mine_every == 0 and mined_at != epoch:
                _mine(ctx, net, folder, sampler, train_cases, plan, epoch, callbacks)
                mined_at = epoch
            net.train()
            losses = []
            skipped = 0
            lr = config.lr
            for it in range(iters):
                lr = lr_at(config, epoch * iters + it, total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                imgs, labs, pads = sampler.sample(rng)
                x = torch.from_numpy(imgs).to(device, non_blocking=True)
                y = torch.from_numpy(labs).to(device, non_blocking=True)
                if config.augment:
                    x, y = augment_batch(x, y, patch, gen, torch.from_numpy(pads))
                else:
                    x, y = center_crop(x, patch), center_crop(y, patch).float()
                optimizer.zero_grad(set_to_none=True)
                with _autocast(device, use_amp):
                    out = model(x)
                loss = loss_fn(out, y)
                if not torch.isfinite(loss):
                    raise ModelError(
                        f"training diverged (loss {loss.item()}) at epoch {epoch + 1}; "
                        "try a lower --lr",
                        folder,
                    )
                scaler.scale(loss).backward()
                if not optimizer_step(optimizer, scaler, params, config.grad_clip):
                    skipped += 1
                value = float(loss.detach())
                losses.append(value)
                callbacks.on_iteration(epoch, it, value)
            if skipped == iters and not fp16:
                raise ModelError(
                    f"training stopped at epoch {epoch + 1}: the gradients of all {iters} "
                    "steps were not finite (NaN or infinity), so the weights could not be "
                    "updated; try a lower --lr",
                    folder,
                )
            if skipped:  # the CLI's epoch line says it too
                log.info(
                    "epoch %d: %d of %d steps skipped (gradients not finite)",
                    epoch + 1,
                    skipped,
                    iters,
                )
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": round(float(np.mean(losses)), 6),
                "val_dice": None,
                "val_dice_mean": None,
                "lr": lr,
                "skipped_steps": skipped,
            }
            if ctx.is_main:
                due = (epoch + 1) % max(1, config.val_every) == 0 or epoch + 1 == epochs
                if val_cases and due:
                    row.update(
                        {k: round(v, 6) for k, v in validate(net, val_cases, plan, device).items()}
                    )
                metric = row["val_dice"]
                improved = False
                if not val_cases:  # no validation ('full' fold): keep the latest
                    improved, best, best_epoch = True, float("nan"), epoch + 1
                elif metric is not None and _is_better(float(metric), best):
                    improved, best, best_epoch = True, float(metric), epoch + 1
                if improved:
                    spec.extra.update(
                        {"epoch": epoch + 1, "val_dice": None if metric is None else metric}
                    )
                    save_checkpoint(folder, spec, net.state_dict())
                row["seconds"] = round(time.perf_counter() - t0, 3)
                row["best"] = int(improved)
                history.append(row)
                _write_csv(folder / LOG_CSV, history)
                if writer is not None:
                    writer.add_scalar("loss/train", row["train_loss"], epoch + 1)
                    writer.add_scalar("lr", lr, epoch + 1)
                    if metric is not None:
                        writer.add_scalar("dice/val", metric, epoch + 1)
                    writer.flush()
                save_state(
                    folder,
                    epoch + 1,
                    net.state_dict(),
                    optimizer,
                    {
                        "config_hash": chash,
                        "best_metric": best,
                        "best_epoch": best_epoch,
                        "history": history,
                        "rng": {
                            "scheme": "per epoch: numpy default_rng([seed, fold, epoch, rank])",
                            "seed": config.seed,
                            "fold_index": fold_index,
                            "next_epoch": epoch + 1,
                        },
                        "scaler": scaler.state_dict() if fp16 else None,
                    },
                )
                callbacks.on_epoch_end(fold, row)
            ddp.barrier(ctx)
    finally:
        if writer is not None:
            writer.close()
    result = FoldResult(fold, folder, _nan(best), best_epoch, epochs, history)
    callbacks.on_fold_end(result)
    return result


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


# -- the whole run ----------------------------------------------------------------------------
def _fold_names(config: TrainConfig) -> list[str]:
    if config.fold == "all":
        return [str(k) for k in range(config.folds)]
    return [config.fold]


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read {path.name} ({exc})", path) from exc


def _load_cases(paths: list[Path], ids: set[str]) -> dict[str, PreparedCase]:
    from lungspread.data.preprocess import load_preprocessed

    out = {}
    for p in paths:
        cid = p.stem
        if cid not in ids:
            continue
        image, label, meta = load_preprocessed(p)
        fg = np.asarray(meta.get("fg_coords", np.zeros((0, 3))), dtype=np.int32).reshape(-1, 3)
        out[cid] = PreparedCase(cid, image, label, fg, float(image.min()) if image.size else 0.0)
    return out


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
    device: str = "auto",
    speed: str = "accurate",
    cache_dir: str | Path | None = None,
    callbacks: TrainCallbacks | None = None,
    tensorboard: bool = True,
) -> TrainResult:
    """Train a model on the MSD-format dataset ``data`` into the run folder ``out``.

    ``config`` defaults to the ``default`` preset. With ``resume`` the run's own
    ``config.json`` is used (``epochs`` may extend it) and each fold continues from its last
    checkpoint; finished folds are skipped. ``speed`` ("accurate" or "fast") picks the
    recommended model when the config names none. ``device``: auto, cpu or cuda.
    """
    from lungspread import __version__
    from lungspread.data.msd import MSDDataset
    from lungspread.data.preprocess import plan_dataset, preprocess_dataset
    from lungspread.data.splits import kfold_splits, load_splits, save_splits
    from lungspread.inference.predictor import resolve_device
    from lungspread.outputs import RunRecord, write_json
    from lungspread.training import ddp
    from lungspread.training.planning import plan_training

    callbacks = callbacks or TrainCallbacks()
    run = Path(out)
    ctx = ddp.init_distributed(resolve_device(device))
    if not ctx.is_main:  # one progress display: rank 0's
        callbacks = TrainCallbacks()
    try:
        if resume:
            if not (run / CONFIG_JSON).is_file():
                raise InputError(f"nothing to resume: no {CONFIG_JSON} in the run folder", run)
            config = TrainConfig.from_json(_load_json(run / CONFIG_JSON))
            if epochs is not None:
                config.epochs = int(epochs)
        else:
            config = config or TrainConfig()
            if epochs is not None:
                config.epochs = int(epochs)
            if run.exists() and (not run.is_dir() or any(run.iterdir())):
                raise OutputError(
                    "run folder exists and is not empty; pass --resume to continue it or "
                    "choose a new folder",
                    run,
                )
        config.validate()
        if config.init_from and not resume:
            from lungspread.models.checkpoint import load_spec

            config.init_from = str(Path(config.init_from).resolve())
            source = load_spec(config.init_from)  # a missing model fails now, not after planning
            if config.init_plan == "source" and not config.spacing_mm:
                config.spacing_mm = [float(v) for v in source.spacing_mm]
        record = RunRecord(
            "train",
            {"data": str(Path(data).resolve())},
            {
                **config.to_json(),
                "device": str(ctx.device),
                "world_size": ctx.world_size,
                "resume": resume,
            },
        )
        dataset = MSDDataset.open(data)
        cache = Path(cache_dir) if cache_dir is not None else run / "preprocessed"
        # -- plans and splits (rank 0 writes, the others read) --
        if ctx.is_main:
            if resume and (run / PLANS_JSON).is_file():
                plans = _load_json(run / PLANS_JSON)
            else:
                callbacks.on_message("planning: reading headers and intensity statistics")
                dplan = plan_dataset(dataset, intensity_samples=config.fit_samples)
                # linear image resampling: the same interpolation the Predictor applies
                dplan["resampling"] = {"image_order": 1, "label_order": 1}
                if config.init_from and config.init_plan == "source":
                    dplan["normalization"] = initial_normalization(
                        config.init_from, dplan["normalization"]
                    )
                if config.spacing_mm:  # the cases are resampled to the spacing the model gets
                    dplan["target_spacing_mm"] = [float(v) for v in config.spacing_mm]
                tplan = plan_training(dplan, config, ctx.device.type, speed)
                if config.init_from:  # before anything is written into the run folder
                    check_initial_model(config.init_from, tplan["model"], tplan["model_kwargs"])
                plans = {"dataset": dplan, "training": tplan}
                run.mkdir(parents=True, exist_ok=True)
                write_json(run / CONFIG_JSON, config.to_json())
                write_json(run / PLANS_JSON, plans)
            if not (run / SPLITS_JSON).is_file():
                ids = [c.id for c in dataset.cases]
                if config.fold == "full":
                    splits = [{"train": sorted(ids), "val": []}]
                else:
                    splits = kfold_splits(ids, config.folds, config.seed, dataset.groups)
                if config.fold == "full":
                    write_json(run / SPLITS_JSON, splits)
                else:
                    save_splits(run / SPLITS_JSON, splits)
        ddp.barrier(ctx)
        plans = _load_json(run / PLANS_JSON)
        splits = (
            _load_json(run / SPLITS_JSON)
            if config.fold == "full"
            else load_splits(run / SPLITS_JSON)
        )
        dplan, tplan = plans["dataset"], plans["training"]
        record.stage("plan")
        # -- preprocessing --
        if ctx.is_main:
            callbacks.on_message(f"preprocessing {len(dataset.cases)} cases into {cache}")
            preprocess_dataset(dataset, dplan, cache, crop=tplan["crop"], denoise=config.denoise)
        ddp.barrier(ctx)
        paths = preprocess_dataset(
            dataset, dplan, cache, crop=tplan["crop"], denoise=config.denoise
        )
        names = ["full"] if config.fold == "full" else _fold_names(config)
        needed: set[str] = set()
        for name in names:
            s = splits[0] if name == "full" else splits[int(name)]
            needed |= set(s["train"]) | set(s["val"])
        cases = _load_cases(paths, needed)
        record.stage("preprocess")
        # -- iterations per epoch --
        if config.iters_per_epoch is not None:
            tplan["iters_per_epoch"] = int(config.iters_per_epoch)
        else:
            first = splits[0] if names[0] == "full" else splits[int(names[0])]
            n = sum(cases[c].image.shape[2] if tplan["dims"] == 2 else 1 for c in first["train"])
            tplan["iters_per_epoch"] = max(1, math.ceil(n / tplan["batch_size"]))
        results = []
        for name in names:
            fold_index = 0 if name == "full" else int(name)
            s = splits[0] if name == "full" else splits[fold_index]
            spec = ModelSpec(
                name=tplan["model"],
                kwargs=tplan["model_kwargs"],
                dims=int(tplan["dims"]),
                spacing_mm=[float(v) for v in tplan["spacing_mm"]],
                patch_size=[int(v) for v in tplan["patch_size"]],
                normalization=dict(dplan["normalization"]),
                output=tplan["output"],
                threshold=0.5,
                extra={
                    "preset": config.preset,
                    "fold": name,
                    "dataset": dplan.get("dataset"),
                    "denoise": config.denoise,
                    "lungspread_version": __version__,
                },
            )
            results.append(
                train_fold(
                    ctx,
                    name,
                    fold_index,
                    run / f"fold_{name}",
                    [cases[c] for c in s["train"]],
                    [cases[c] for c in s["val"]],
                    tplan,
                    config,
                    spec,
                    callbacks,
                    resume=resume,
                    tensorboard=tensorboard,
                )
            )
        record.stage("train")
        chosen = results[0]
        for r in results[1:]:
            if _is_better(r.best_metric, chosen.best_metric):
                chosen = r
        from lungspread.models.checkpoint import load_spec

        if ctx.is_main:
            _copy_model(chosen.folder, run)
            record.write(
                run,
                outputs={
                    "chosen_fold": chosen.fold,
                    "folds": {
                        r.fold: {"best_val_dice": r.best_metric, "best_epoch": r.best_epoch}
                        for r in results
                    },
                },
            )
        ddp.barrier(ctx)
        return TrainResult(run, results, chosen.fold, load_spec(chosen.folder))
    finally:
        ddp.shutdown(ctx)

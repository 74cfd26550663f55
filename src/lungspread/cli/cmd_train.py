"""``lungspread train`` and ``lungspread tune``: train models, and grid-search their recipe."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from lungspread.training.trainer import TrainCallbacks


def _ints(text: str | None, what: str) -> list[int] | None:
    from lungspread.errors import InputError

    if text is None:
        return None
    try:
        return [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be comma-separated integers, got {text!r}") from None


def _floats(text: str, what: str) -> list[float]:
    from lungspread.errors import InputError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _progress_callbacks(quiet: bool) -> tuple[Any, TrainCallbacks]:
    """A rich Progress (context manager) and the trainer callbacks that drive it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from lungspread.training.trainer import FoldResult, TrainCallbacks

    console = Console(stderr=True, highlight=False, quiet=quiet)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )

    class Callbacks(TrainCallbacks):
        def __init__(self) -> None:
            self.task: Any = None
            self.fold = ""
            self.iters = 0

        def on_message(self, text: str) -> None:
            console.print(f"[dim]{text}[/dim]")

        def on_fold_start(self, fold: str, start_epoch: int, epochs: int, iters: int) -> None:
            self.fold, self.iters = fold, iters
            note = f" (resuming after epoch {start_epoch})" if start_epoch else ""
            console.print(f"fold {fold}: {epochs} epochs x {iters} iterations{note}")

        def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
            if iteration == 0:
                if self.task is not None:
                    progress.remove_task(self.task)
                self.task = progress.add_task(
                    f"fold {self.fold} epoch {epoch + 1}", total=self.iters, loss="-"
                )
            progress.update(self.task, advance=1, loss=f"{loss:.4f}")

        def on_epoch_end(self, fold: str, row: dict[str, Any]) -> None:
            val = row.get("val_dice")
            vtxt = "" if val is None else f"  val Dice {val:.4f}"
            star = " *" if row.get("best") else ""
            skipped = row.get("skipped_steps") or 0
            stxt = f"  {skipped} steps skipped (gradients not finite)" if skipped else ""
            console.print(
                f"fold {fold} epoch {row['epoch']:>4}: loss {row['train_loss']:.4f}{vtxt}"
                f"  lr {row['lr']:.2e}  {row.get('seconds', 0):.1f} s{star}{stxt}"
            )

        def on_fold_end(self, result: FoldResult) -> None:
            if self.task is not None:
                progress.remove_task(self.task)
                self.task = None
            console.print(
                f"fold {result.fold}: best val Dice {result.best_metric:.4f} "
                f"at epoch {result.best_epoch}"
            )

    return progress, Callbacks()


def _init_folder(init: str | None) -> str | None:
    """``--init``: a model folder, or ``bundled`` for lungspread's own default model."""
    if init is None:
        return None
    if init == "bundled":
        from lungspread.analyze import bundled_model_dir

        return str(bundled_model_dir())
    return init


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: Path = typer.Argument(..., help="MSD-format dataset folder.", show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help="Run folder.", show_default=False),
        model: str | None = typer.Option(
            None, "--model", "-m", help="Registry name (default: recommended for the data)."
        ),
        preset: str = typer.Option("default", "--preset", help="seed, default or nnunet."),
        epochs: int | None = typer.Option(None, "--epochs", help="Epochs (preset's default)."),
        iters_per_epoch: int | None = typer.Option(
            None, "--iters-per-epoch", help="Optimizer steps per epoch."
        ),
        fold: str = typer.Option(
            "0", "--fold", help="Fold to train: K, 'all' or 'full' (no validation)."
        ),
        folds: int = typer.Option(5, "--folds", help="Number of cross-validation folds."),
        seed: int = typer.Option(0, "--seed", help="Random seed (splits, sampling, init)."),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        patch: str | None = typer.Option(None, "--patch", help="Patch size, e.g. 96,96,64."),
        batch: int | None = typer.Option(None, "--batch", help="Batch size (all processes)."),
        lr: float | None = typer.Option(None, "--lr", help="Initial learning rate."),
        loss: str | None = typer.Option(None, "--loss", help="bce, dice or dice_ce."),
        features: str | None = typer.Option(
            None, "--features", help="Network widths per level, e.g. 16,32,64."
        ),
        denoise: str | None = typer.Option(
            None, "--denoise", help="Noise reduction before normalization, e.g. gaussian:1."
        ),
        speed: str = typer.Option(
            "accurate", "--speed", help="Recommended model without --model: accurate or fast."
        ),
        val_every: int | None = typer.Option(None, "--val-every", help="Validate every N epochs."),
        init: str | None = typer.Option(
            None,
            "--init",
            help="Start from this model's weights (a run or model folder, or 'bundled').",
        ),
        init_plan: str | None = typer.Option(
            None,
            "--init-plan",
            help="With --init: 'refit' spacing and intensity normalization to this data "
            "(default) or keep the 'source' model's.",
        ),
        hard_negatives: float | None = typer.Option(
            None,
            "--hard-negatives",
            help="Share of random patches centred on the network's false positives (0-1).",
        ),
        mine_every: int | None = typer.Option(
            None, "--mine-every", help="Re-mine the false positives every N epochs."
        ),
        partial_scan: float | None = typer.Option(
            None,
            "--partial-scan",
            help="Share of 3D patches cut as if the scan ended inside them (0-1).",
        ),
        thin_slab: float | None = typer.Option(
            None,
            "--thin-slab",
            help="Share of the --partial-scan cuts made on both sides: thin slabs (0-1).",
        ),
        cache: Path | None = typer.Option(
            None, "--cache", help="Preprocessed-case cache (default RUN/preprocessed)."
        ),
        tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    ) -> None:
        """Train a tumor segmentation model; RUN/model.* is the model inference loads.

        Writes config.json, plans.json, splits.json, fold_K/ (best model, checkpoint, log.csv,
        TensorBoard) and run.json into RUN. Multi-GPU: torchrun --nproc_per_node N -m
        lungspread train ...
        """
        from rich.console import Console

        from lungspread.training.config import make_config
        from lungspread.training.trainer import train

        config = None
        if not resume:
            kwargs: dict[str, Any] = {}
            if features:
                kwargs["features"] = _ints(features, "--features")
            config = make_config(
                preset,
                model=model,
                model_kwargs=kwargs or None,
                epochs=epochs,
                iters_per_epoch=iters_per_epoch,
                fold=fold,
                folds=folds,
                seed=seed,
                patch_size=_ints(patch, "--patch"),
                batch_size=batch,
                lr=lr,
                loss=loss,
                denoise=denoise,
                val_every=val_every,
                init_from=_init_folder(init),
                init_plan=init_plan,
                hard_negatives=hard_negatives,
                mine_every=mine_every,
                partial_scan=partial_scan,
                thin_slab=thin_slab,
            )
        progress, callbacks = _progress_callbacks(quiet)
        with progress:
            result = train(
                data,
                out,
                config,
                resume=resume,
                epochs=epochs,
                device=device,
                speed=speed,
                cache_dir=cache,
                callbacks=callbacks,
                tensorboard=tensorboard,
            )
        console = Console(highlight=False, quiet=quiet)
        chosen = next(f for f in result.folds if f.fold == result.chosen_fold)
        console.print(
            f"model {result.spec.name} -> {result.run}/model.json (fold {chosen.fold}, "
            f"best val Dice {chosen.best_metric:.4f} at epoch {chosen.best_epoch})"
        )

    @app.command("tune")
    def tune_cmd(
        data: Path = typer.Argument(..., help="MSD-format dataset folder.", show_default=False),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder.", show_default=False),
        model: str | None = typer.Option(None, "--model", "-m", help="Registry name."),
        lr: str = typer.Option("1e-4,1e-3", "--lr", help="Learning rates to try."),
        batch: str = typer.Option("8,16", "--batch", help="Batch sizes to try."),
        loss: str = typer.Option("bce,dice_ce", "--loss", help="Losses to try."),
        preset: str = typer.Option("default", "--preset", help="Recipe the grid varies."),
        epochs: int | None = typer.Option(None, "--epochs", help="Epochs per trial."),
        iters_per_epoch: int | None = typer.Option(None, "--iters-per-epoch"),
        fold: str = typer.Option("0", "--fold", help="Validation fold used for ranking."),
        folds: int = typer.Option(5, "--folds"),
        seed: int = typer.Option(0, "--seed"),
        patch: str | None = typer.Option(None, "--patch", help="Patch size, e.g. 96,96,64."),
        features: str | None = typer.Option(None, "--features", help="Network widths."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted search."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Grid search (learning rate x batch size x loss); ranks trials by validation Dice.

        Writes results.md and results.csv (best first), trials/<name>/ (one training run
        each) and run.json into OUT.
        """
        from rich.console import Console

        from lungspread.training.tune import tune

        overrides: dict[str, Any] = {
            "model": model,
            "epochs": epochs,
            "iters_per_epoch": iters_per_epoch,
            "fold": fold,
            "folds": folds,
            "seed": seed,
            "patch_size": _ints(patch, "--patch"),
        }
        if features:
            overrides["model_kwargs"] = {"features": _ints(features, "--features")}
        grid: dict[str, Sequence[Any]] = {
            "lr": _floats(lr, "--lr"),
            "batch": [int(b) for b in _floats(batch, "--batch")],
            "loss": [v.strip() for v in loss.split(",") if v.strip()],
        }
        progress, callbacks = _progress_callbacks(quiet)
        with progress:
            rows = tune(
                data,
                out,
                grid,
                preset=preset,
                overrides=overrides,
                device=device,
                resume=resume,
                callbacks=callbacks,
            )
        console = Console(highlight=False, quiet=quiet)
        if not quiet:
            typer.echo((Path(out) / "results.md").read_text(encoding="utf-8"))
        if rows:
            console.print(f"best: {rows[0]['trial']}")

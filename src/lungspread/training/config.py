"""Training configuration (:class:`TrainConfig`) and the named presets.

Presets:

* ``seed``: the original proposal's recipe, faithfully: ``seed-unet2d``, binary
  cross-entropy, Adam at a constant 1e-4, batch 16, 256x256 inputs (whole slices; smaller
  images are padded up to a multiple of the network's divisor), no augmentation, no
  foreground oversampling, an epoch is one pass over all training slices.
* ``default``: lungspread's recipe: Dice + cross-entropy, nnU-Net's foreground oversampling
  (a third of each batch centred on tumor), augmentation (mirroring, rotation, scaling,
  shifts, elastic deformation, brightness, contrast, gamma, blur, noise), AdamW 1e-3 with
  poly decay, gradient clipping at 12, AMP on GPU. Tuned for short runs.
* ``nnunet``: nnU-Net's own optimization (SGD 0.01, Nesterov momentum 0.99, poly decay,
  1000 epochs of 250 iterations) with the default augmentation; for long GPU runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lungspread.errors import InputError

LOSSES = ("bce", "dice", "dice_ce")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "poly")


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved as ``RUN/config.json``).

    ``None`` means "planned from the data" (model, patch size, spacing, batch size,
    iterations per epoch); the resolved values are saved in ``RUN/plans.json``.
    """

    preset: str = "default"
    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    iters_per_epoch: int | None = 250
    batch_size: int | None = None
    patch_size: list[int] | None = None
    spacing_mm: list[float] | None = None
    lr: float = 1e-3
    optimizer: str = "adamw"
    momentum: float = 0.99
    weight_decay: float = 1e-4
    lr_schedule: str = "poly"
    loss: str = "dice_ce"
    augment: bool = True
    oversample_fg: float = 0.33
    amp: bool = True
    grad_clip: float | None = 12.0
    val_every: int = 1
    seed: int = 0
    folds: int = 5
    fold: str = "0"
    denoise: str | None = None
    fit_samples: int = 10**6
    #: model folder (model.json + model.safetensors) whose weights start the training
    #: (fine-tuning, as nnU-Net's ``-pretrained_weights``); None: random initialization
    init_from: str | None = None
    #: with ``init_from``: "refit" plans the spacing and intensity normalization from this
    #: run's data; "source" keeps the initial model's (its voxel spacing, CT clip window, mean
    #: and std), as nnU-Net does when a pretrained model's plans are moved to a new dataset
    init_plan: str = "refit"
    #: share of the random patches centred on the network's false positives (hard-negative
    #: mining, see lungspread.training.hard_negatives), re-mined every ``mine_every`` epochs
    hard_negatives: float = 0.0
    mine_every: int = 5
    #: share of 3D patches cut across the body axis as if the scan ended inside them
    #: (teaches scans that cover part of the chest, see lungspread.training.sampling)
    partial_scan: float = 0.0
    #: share of those cuts made on both sides, leaving a slab thinner than the patch
    thin_slab: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"config.json has unknown keys {unknown}")
        return cls(**data)

    def validate(self) -> None:
        """Raise :class:`InputError` for impossible settings."""
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}"
            )
        if self.lr_schedule not in SCHEDULES:
            raise InputError(
                f"unknown lr schedule {self.lr_schedule!r}; valid: {', '.join(SCHEDULES)}"
            )
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.iters_per_epoch is not None and self.iters_per_epoch < 1:
            raise InputError(f"iters per epoch must be >= 1, got {self.iters_per_epoch}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.oversample_fg <= 1.0:
            raise InputError(f"oversample_fg must be in [0, 1], got {self.oversample_fg}")
        if not 0.0 <= self.hard_negatives <= 1.0:
            raise InputError(f"hard_negatives must be in [0, 1], got {self.hard_negatives}")
        if not 0.0 <= self.partial_scan <= 1.0:
            raise InputError(f"partial_scan must be in [0, 1], got {self.partial_scan}")
        if not 0.0 <= self.thin_slab <= 1.0:
            raise InputError(f"thin_slab must be in [0, 1], got {self.thin_slab}")
        if self.thin_slab > 0 and self.partial_scan == 0:
            raise InputError(
                "thin_slab (--thin-slab) is a share of the partial-scan cuts; set partial_scan "
                "(--partial-scan) too"
            )
        if self.init_plan not in INIT_PLANS:
            raise InputError(
                f"init plan must be one of {', '.join(INIT_PLANS)}, got {self.init_plan!r}"
            )
        if self.init_plan == "source" and not self.init_from:
            raise InputError("init plan 'source' needs a model to start from (--init)")
        if self.mine_every < 1:
            raise InputError(f"mine_every must be at least 1, got {self.mine_every}")
        if not self.lr > 0:
            raise InputError(f"learning rate must be > 0, got {self.lr}")
        if self.fold not in ("all", "full") and not self.fold.isdigit():
            raise InputError(f"fold must be a number, 'all' or 'full', got {self.fold!r}")
        if self.fold.isdigit() and int(self.fold) >= self.folds:
            raise InputError(f"fold {self.fold} does not exist with {self.folds} folds")
        if self.folds < 2 and self.fold != "full":
            raise InputError(f"folds must be >= 2 for cross-validation, got {self.folds}")
        if self.patch_size is not None and (
            len(self.patch_size) not in (2, 3) or any(p < 1 for p in self.patch_size)
        ):
            raise InputError(f"patch size must be 2 or 3 positive numbers, got {self.patch_size}")


#: where a fine-tuning run's spacing and normalization come from (TrainConfig.init_plan)
INIT_PLANS = ("refit", "source")

#: preset name -> settings that differ from :class:`TrainConfig`'s defaults
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "model": "seed-unet2d",
        "epochs": 50,
        "iters_per_epoch": None,
        "batch_size": 16,
        "patch_size": [256, 256],
        "lr": 1e-4,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "lr_schedule": "constant",
        "loss": "bce",
        "augment": False,
        "oversample_fg": 0.0,
        "amp": False,
        "grad_clip": None,
    },
    "default": {},
    "nnunet": {
        "epochs": 1000,
        "iters_per_epoch": 250,
        "lr": 1e-2,
        "optimizer": "sgd",
        "momentum": 0.99,
        "weight_decay": 3e-5,
        "lr_schedule": "poly",
    },
}


def make_config(preset: str = "default", **overrides: Any) -> TrainConfig:
    """The preset's configuration with ``overrides`` applied (``None`` values are skipped)."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    values: dict[str, Any] = {"preset": preset, **PRESETS[preset]}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in names:
            raise InputError(f"unknown training option {key!r}")
        if value is not None:
            values[key] = value
    cfg = TrainConfig(**values)
    cfg.fold = str(cfg.fold)
    cfg.validate()
    return cfg

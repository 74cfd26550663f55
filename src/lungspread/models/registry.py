"""The model registry: a plain dict from name to factory. Unknown names list the valid ones.

Model modules register their factories with :func:`register`; the modules listed in
``BUILTIN_MODULES`` are imported the first time the registry is used (not at package import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from lungspread.errors import ModelError

#: name -> factory(**kwargs) -> torch.nn.Module.
MODELS: dict[str, Callable[..., Any]] = {}

#: Modules that define the built-in networks (each calls ``register`` at import).
BUILTIN_MODULES: tuple[str, ...] = (
    "lungspread.models.fast3d",
    "lungspread.models.unet2d",
    "lungspread.models.attention",
    "lungspread.models.resnet_unet",
    "lungspread.models.vgg_unet",
    "lungspread.models.unet3d",
)


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add ``factory`` to :data:`MODELS` under ``name``."""

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        MODELS[name] = factory
        return factory

    return deco


def available_models() -> list[str]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(MODELS)


def build_model(name: str, **kwargs: Any) -> Any:
    """Build the registered network ``name`` with ``kwargs``."""
    valid = available_models()
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; valid models: {', '.join(valid) or 'none'}")
    return MODELS[name](**kwargs)

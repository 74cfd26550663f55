"""Segmentation networks: one registry (name -> factory) and safetensors checkpoints."""

from __future__ import annotations

from lungspread.models.checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from lungspread.models.registry import MODELS, available_models, build_model

__all__ = [
    "MODELS",
    "ModelSpec",
    "available_models",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]

"""Model checkpoints: ``model.json`` (what to build and how to feed it) + ``model.safetensors``.

This is the contract between training (which writes it) and inference (which reads it); both
a training run folder and the bundled default model use it. Weights are loaded with
safetensors only: no pickle, no code execution from files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lungspread.errors import ModelError

SPEC_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ModelSpec:
    """Everything inference needs besides the weights.

    * ``name``: registry key (see :mod:`lungspread.models.registry`), ``kwargs`` its arguments.
    * ``dims``: 2 (slice-wise) or 3.
    * ``spacing_mm``: voxel spacing (i, j, k) the network was trained at; input is resampled to it.
    * ``patch_size``: sliding-window size in voxels (2 numbers for 2D models, 3 for 3D).
    * ``normalization``: ``{"scheme": "ct", "clip_hu": [lo, hi], "mean": m, "std": s}`` or
      ``{"scheme": "zscore"}`` (per image).
    * ``output``: ``"sigmoid"`` (1 channel, tumor probability) or ``"softmax"`` (2 channels).
    * ``threshold``: probability above which a voxel is tumor.
    """

    name: str
    kwargs: dict[str, Any]
    dims: int
    spacing_mm: list[float]
    patch_size: list[int]
    normalization: dict[str, Any]
    output: str = "softmax"
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path | None = None) -> ModelSpec:
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(
                f"model.json does not describe a lungspread model ({exc})", source
            ) from exc


def save_checkpoint(folder: str | Path, spec: ModelSpec, state_dict: dict[str, Any]) -> None:
    """Write ``model.json`` and ``model.safetensors`` into ``folder`` atomically."""
    import torch
    from safetensors.torch import save as st_save

    from lungspread.outputs import atomic_write_bytes, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu").contiguous()
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor)
    }
    atomic_write_bytes(folder / WEIGHTS_NAME, st_save(tensors))
    write_json(folder / SPEC_NAME, spec.to_json())


def load_spec(folder: str | Path) -> ModelSpec:
    folder = Path(folder)
    path = folder / SPEC_NAME
    if not path.is_file():
        raise ModelError(f"no {SPEC_NAME} here; expected a lungspread run or model folder", folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{SPEC_NAME} is not valid JSON ({exc})", path) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{SPEC_NAME} must hold a JSON object", path)
    return ModelSpec.from_json(data, path)


def load_checkpoint(folder: str | Path, device: str = "cpu") -> tuple[Any, ModelSpec]:
    """Build the network named in ``model.json`` and load its safetensors weights (eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lungspread.models.registry import build_model

    folder = Path(folder)
    spec = load_spec(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(f"no {WEIGHTS_NAME} beside {SPEC_NAME}", folder)
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"weights file is corrupt or unreadable ({exc})", weights) from exc
    net = build_model(spec.name, **spec.kwargs)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"weights do not fit model {spec.name!r} ({first})", weights) from exc
    net.to(device).eval()
    return net, spec

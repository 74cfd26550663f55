"""Resumable training state: weights + optimizer as safetensors, the rest as JSON. No pickle.

A fold folder holds ``checkpoint.json`` (the commit point) and the ``checkpoint_eNNNN.
safetensors`` it names. Saving writes the new tensors file under a new name first, then
replaces ``checkpoint.json`` atomically (it records the tensors file's SHA-256), then deletes
the older tensors files: a kill at any moment leaves the previous or the new checkpoint whole.
Loading checks the hash, so a truncated or altered file is reported as
:class:`~lungspread.errors.ModelError` instead of being half-loaded.

Tensors are keyed ``model.<name>`` (the network's state dict) and ``optim.<param>.<key>``
(the optimizer's per-parameter state); the optimizer's ``param_groups`` and non-tensor state
go to the JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from lungspread.errors import ModelError

STATE_JSON = "checkpoint.json"
FORMAT = "lungspread-train-state/1"


def _tensors_name(epoch: int) -> str:
    return f"checkpoint_e{epoch:04d}.safetensors"


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and a JSON-able structure."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], structure: dict[str, Any]
) -> None:
    """Load what :func:`optimizer_to_flat` produced into ``opt``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, items in structure.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(items)
    groups = []
    for g in structure["param_groups"]:
        g = dict(g)
        for key, default in opt.defaults.items():
            if isinstance(default, tuple) and isinstance(g.get(key), list):
                g[key] = tuple(g[key])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_state(
    folder: str | Path,
    epoch: int,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    info: dict[str, Any],
) -> Path:
    """Write the state after ``epoch`` (1-based count of finished epochs) atomically."""
    from safetensors.torch import save as st_save

    from lungspread.outputs import atomic_write_bytes, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model_state.items()}
    opt_tensors, opt_struct = optimizer_to_flat(optimizer)
    tensors.update(opt_tensors)
    blob = st_save(tensors)
    name = _tensors_name(epoch)
    atomic_write_bytes(folder / name, blob)
    record = {
        "format": FORMAT,
        "epoch": int(epoch),
        "tensors": name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "optimizer": opt_struct,
        **info,
    }
    write_json(folder / STATE_JSON, record)
    for old in folder.glob("checkpoint_e*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / STATE_JSON


def has_state(folder: str | Path) -> bool:
    return (Path(folder) / STATE_JSON).is_file()


def load_state(folder: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(info, tensors)`` of the last checkpoint; :class:`ModelError` when it is damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    folder = Path(folder)
    jpath = folder / STATE_JSON
    if not jpath.is_file():
        raise ModelError(f"no {STATE_JSON} here; nothing to resume", folder)
    try:
        info = json.loads(jpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"training checkpoint is corrupt ({exc}); delete the fold folder to restart it", jpath
        ) from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelError(f"not a lungspread training checkpoint (expected format {FORMAT})", jpath)
    tpath = folder / str(info.get("tensors", ""))
    if not tpath.is_file():
        raise ModelError(f"training checkpoint names {tpath.name}, which is missing", jpath)
    blob = tpath.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != info.get("sha256"):
        raise ModelError(
            "training checkpoint is corrupt (its SHA-256 does not match checkpoint.json); "
            "delete the fold folder to restart it",
            tpath,
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError) as exc:  # pragma: no cover - the hash catches this
        raise ModelError(f"training checkpoint is unreadable ({exc})", tpath) from exc
    return info, tensors


def model_state_from(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}

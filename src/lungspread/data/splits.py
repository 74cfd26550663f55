"""Deterministic patient-level k-fold splits, saved as JSON (nnU-Net's ``splits_final.json`` form).

``kfold_splits(case_ids, k, seed, groups)`` shuffles the *patients* (``groups`` maps case id ->
patient id; a case without a group is its own patient) with ``numpy.random.default_rng(seed)``
and deals them, largest first, to the fold that holds the fewest cases so far (ties: the lower
fold). Every patient's cases land in one validation fold; every case is validated exactly once;
fold sizes differ by at most the size of the largest patient. The result depends only on the
*set* of case ids, the groups, ``k`` and ``seed`` (the input order does not matter).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lungspread.errors import InputError

Split = dict[str, list[str]]


def kfold_splits(
    case_ids: list[str],
    k: int = 5,
    seed: int = 0,
    groups: dict[str, str] | None = None,
) -> list[Split]:
    """``k`` folds ``[{"train": [...], "val": [...]}, ...]`` with sorted case lists."""
    ids = [str(c) for c in case_ids]
    if len(set(ids)) != len(ids):
        dup = sorted({c for c in ids if ids.count(c) > 1})
        raise InputError(f"case ids must be unique; repeated: {dup[:5]}")
    if k < 2:
        raise InputError(f"k-fold needs k >= 2, got {k}")
    groups = groups or {}
    patient_of = {c: str(groups.get(c, c)) for c in ids}
    members: dict[str, list[str]] = {}
    for c in sorted(ids):
        members.setdefault(patient_of[c], []).append(c)
    patients = sorted(members)
    if len(patients) < k:
        raise InputError(
            f"cannot make {k} folds from {len(patients)} patients ({len(ids)} cases); "
            f"use k <= {len(patients)}"
        )
    order = np.random.default_rng(seed).permutation(len(patients))
    shuffled = [patients[i] for i in order]
    # Stable sort by size (largest first) keeps the shuffled order among equal sizes.
    shuffled.sort(key=lambda p: -len(members[p]))
    folds: list[list[str]] = [[] for _ in range(k)]
    for p in shuffled:
        f = min(range(k), key=lambda i: (len(folds[i]), i))
        folds[f].extend(members[p])
    all_sorted = sorted(ids)
    out: list[Split] = []
    for f in range(k):
        val = sorted(folds[f])
        val_set = set(val)
        out.append({"train": [c for c in all_sorted if c not in val_set], "val": val})
    return out


def save_splits(path: str | Path, splits: list[Split]) -> Path:
    """Write the splits as a JSON list (atomically); returns the path."""
    from lungspread.outputs import write_json

    _check_splits(splits, Path(path))
    write_json(path, [{"train": list(s["train"]), "val": list(s["val"])} for s in splits])
    return Path(path)


def load_splits(path: str | Path) -> list[Split]:
    """Read splits written by :func:`save_splits` (or nnU-Net's ``splits_final.json``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("splits file not found", p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"splits file is not valid JSON ({exc})", p) from exc
    if not isinstance(data, list):
        raise InputError(f"splits must be a JSON list of folds, found {type(data).__name__}", p)
    _check_splits(data, p)
    return [
        {"train": [str(c) for c in s["train"]], "val": [str(c) for c in s["val"]]} for s in data
    ]


def _check_splits(splits: object, path: Path) -> None:
    if not isinstance(splits, list) or not splits:
        raise InputError("splits must be a non-empty list of folds", path)
    for i, s in enumerate(splits):
        if (
            not isinstance(s, dict)
            or not isinstance(s.get("train"), list)
            or not isinstance(s.get("val"), list)
        ):
            raise InputError(f"fold {i} must be an object with 'train' and 'val' lists", path)
        overlap = set(map(str, s["train"])) & set(map(str, s["val"]))
        if overlap:
            raise InputError(f"fold {i}: cases in both train and val: {sorted(overlap)[:5]}", path)

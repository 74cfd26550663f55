"""Patient-level k-fold splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungspread.data.splits import kfold_splits, load_splits, save_splits
from lungspread.errors import InputError

IDS = [f"lung_{i:03d}" for i in range(23)]


def test_every_case_validated_once_and_folds_balanced() -> None:
    splits = kfold_splits(IDS, k=5, seed=0)
    assert len(splits) == 5
    vals = [c for s in splits for c in s["val"]]
    assert sorted(vals) == sorted(IDS) and len(vals) == len(set(vals))
    assert sorted(len(s["val"]) for s in splits) == [4, 4, 5, 5, 5]
    for s in splits:
        assert sorted(s["train"] + s["val"]) == sorted(IDS)
        assert not set(s["train"]) & set(s["val"])
        assert s["val"] == sorted(s["val"]) and s["train"] == sorted(s["train"])


def test_deterministic_and_order_independent() -> None:
    a = kfold_splits(IDS, k=5, seed=3)
    b = kfold_splits(list(reversed(IDS)), k=5, seed=3)
    assert a == b
    assert kfold_splits(IDS, k=5, seed=4) != a


def test_patients_stay_together() -> None:
    groups = {c: f"patient_{i // 3}" for i, c in enumerate(IDS)}  # 8 patients, 3,3,...,2 cases
    splits = kfold_splits(IDS, k=4, seed=1, groups=groups)
    for s in splits:
        val_patients = {groups[c] for c in s["val"]}
        train_patients = {groups[c] for c in s["train"]}
        assert not val_patients & train_patients
    sizes = sorted(len(s["val"]) for s in splits)
    assert sizes[-1] - sizes[0] <= 3  # at most one patient's worth of imbalance
    assert sum(sizes) == len(IDS)


def test_unequal_patients_are_balanced_greedily() -> None:
    ids = [f"c{i}" for i in range(12)]
    groups = {c: ("big" if i < 6 else f"p{i}") for i, c in enumerate(ids)}  # one 6-case patient
    splits = kfold_splits(ids, k=2, seed=0, groups=groups)
    assert sorted(len(s["val"]) for s in splits) == [6, 6]
    assert any(set(s["val"]) == {f"c{i}" for i in range(6)} for s in splits)


def test_errors() -> None:
    with pytest.raises(InputError, match="cannot make 5 folds from 3 patients"):
        kfold_splits(["a", "b", "c"], k=5)
    with pytest.raises(InputError, match=r"unique; repeated: \['a'\]"):
        kfold_splits(["a", "a", "b"], k=2)
    with pytest.raises(InputError, match="k >= 2"):
        kfold_splits(IDS, k=1)


def test_save_and_load(tmp_path: Path) -> None:
    splits = kfold_splits(IDS, k=3)
    path = save_splits(tmp_path / "splits.json", splits)
    assert load_splits(path) == splits
    assert json.loads(path.read_text())[0].keys() == {"train", "val"}
    (tmp_path / "bad.json").write_text('[{"train": ["a"], "val": ["a"]}]')
    with pytest.raises(InputError, match="cases in both train and val"):
        load_splits(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text('{"folds": 5}')
    with pytest.raises(InputError, match="JSON list of folds"):
        load_splits(tmp_path / "bad2.json")
    with pytest.raises(InputError, match="not found"):
        load_splits(tmp_path / "nope.json")

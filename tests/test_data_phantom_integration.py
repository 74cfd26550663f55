"""The data pipeline on phantom MSD folders (lungspread.phantom.write_phantom_dataset)."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest

from lungspread.data.inspect import inspect_dataset
from lungspread.data.msd import MSDDataset
from lungspread.data.preprocess import load_preprocessed, plan_dataset, preprocess_dataset
from lungspread.data.splits import kfold_splits
from lungspread.metrics import case_metrics


def _writer():  # type: ignore[no-untyped-def]
    try:
        mod = importlib.import_module("lungspread.phantom")
        return mod.write_phantom_dataset
    except (ImportError, AttributeError):
        pytest.skip("lungspread.phantom.write_phantom_dataset is not available yet")


@pytest.mark.slow
def test_pipeline_on_phantoms(tmp_path: Path) -> None:
    write = _writer()
    write(tmp_path / "ph", cases=3, seed=0, size="small")
    ds = MSDDataset.open(tmp_path / "ph")
    assert ds.is_ct and not ds.is_2d and len(ds.cases) == 3
    assert ds.validate() == []
    rep = inspect_dataset(ds)
    assert rep["failures"] == [] and rep["tumors"]["n_lesions"] >= 1
    # phantom tumors are soft tissue in air-filled lungs
    assert -200 < rep["intensity"]["foreground"]["median"] < 150
    plan = plan_dataset(ds, intensity_samples=30_000)
    assert plan["normalization"]["scheme"] == "ct"
    paths = preprocess_dataset(ds, plan, tmp_path / "cache", crop="lungs")
    for case, p in zip(ds.cases, paths, strict=True):
        image, label, meta = load_preprocessed(p)
        _, truth = ds.load_case(case)
        assert truth is not None
        # cropping to the lungs keeps every tumor voxel (up to resampling)
        kept = label.sum() * np.prod(meta["spacing_mm"])
        assert kept == pytest.approx(
            truth.array.astype(bool).sum() * truth.voxel_volume_mm3, rel=0.25
        )
        assert image.shape == label.shape and math.isfinite(float(image.mean()))
    splits = kfold_splits([c.id for c in ds.cases], k=3, groups=ds.groups)
    assert sorted(c for s in splits for c in s["val"]) == sorted(c.id for c in ds.cases)
    _, truth = ds.load_case(ds.cases[0])
    assert truth is not None
    m = case_metrics(truth.array > 0, truth.array > 0, truth.spacing, ds.cases[0].id)
    assert m["dice"] == 1.0 and m["hd95_mm"] == 0.0 and m["lesions_fp"] == 0

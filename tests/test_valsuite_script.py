"""scripts/build_valsuite.py: the fixed held-out suite is what build_trainset and dataset slabs
write with the suite's settings, and its printed command names all six folders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from lungspread.data.trainset import build_trainset
from lungspread.io import read_volume

REPO = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    path = REPO / "scripts" / "build_valsuite.py"
    spec = importlib.util.spec_from_file_location("build_valsuite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_suite_folders_equal_the_documented_builds(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    lidc = shared_data / "lidc-nodule-vois"
    suite = tmp_path / "suite"
    args = [str(suite), "--cases", "1", "--size", "small", "--lidc", str(lidc)]
    assert script.main(args) == 0
    printed = capsys.readouterr().out
    names = ["regular", "subsolid", "faded", "slabs_regular", "slabs_subsolid", "slabs_faded"]
    assert printed.rstrip().endswith(" ".join(str(suite / n) for n in names))
    for name in names:
        meta = json.loads((suite / name / "dataset.json").read_text())
        assert meta["numTraining"] == 1, name
    # the faded set is build_trainset with the settings the docstring names, case for case
    ref = build_trainset(
        tmp_path / "ref",
        1,
        seed=23,
        split="val",
        lidc_root=lidc,
        size="small",
        subsolid_share=1.0,
        subsolid_scale=(1.5, 2.5),
        subsolid_contrast=(0.35, 0.7),
    )
    for sub in ("imagesTr/ls_val_0000.nii.gz", "labelsTr/ls_val_0000.nii.gz"):
        got, want = read_volume(suite / "faded" / sub), read_volume(ref / sub)
        assert np.array_equal(got.array, want.array), sub
        assert np.allclose(got.affine, want.affine), sub
    entry = json.loads((suite / "faded" / "dataset.json").read_text())["training"][0]
    assert entry["lidc_nodules"]  # real nodules were pasted
    # a slab keeps a tumor and is at most 80 mm along the body axis
    slab = read_volume(suite / "slabs_faded" / "labelsTr" / "ls_val_0000.nii.gz")
    assert slab.array.any()
    assert slab.shape[-1] * slab.spacing[-1] <= 80.0 + slab.spacing[-1]
    # a second call keeps the finished folders (an interrupted build continues)
    stamp = (suite / "regular" / "labelsTr" / "ls_val_0000.nii.gz").stat().st_mtime_ns
    assert script.main(args) == 0
    assert (suite / "regular" / "labelsTr" / "ls_val_0000.nii.gz").stat().st_mtime_ns == stamp


def test_seeds_must_name_three_sets_and_the_slab_cut(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exc:
        _script().main([str(tmp_path / "s"), "--seeds", "31,32,33"])
    assert exc.value.code == 2
    assert "R,S,F,C" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

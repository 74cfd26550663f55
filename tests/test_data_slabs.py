"""``lungspread dataset slabs``: cases cut to slabs around a tumor, in their place in space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.data.msd import MSDDataset, write_case, write_dataset_json
from lungspread.data.slabs import cut_slabs, slab_range
from lungspread.errors import InputError
from lungspread.io import read_volume
from lungspread.volume import Volume


def test_slab_holds_the_tumor_and_stays_inside_the_image() -> None:
    label = np.zeros((4, 4, 100), np.uint8)
    label[1, 1, 60:66] = 1  # one tumor, slices 60-65
    rng = np.random.default_rng(0)
    for _ in range(50):
        lo, hi = slab_range(label, 2, 2.5, 80.0, rng)
        assert hi - lo == 32  # 80 mm / 2.5 mm
        # the slab's centre is within a quarter of its depth of the tumor's centre (62.5)
        assert abs((lo + hi - 1) / 2 - 62.5) <= 8 + 0.5
        assert lo <= 60 and hi >= 66
    edge = np.zeros((4, 4, 100), np.uint8)
    edge[1, 1, 97:] = 1
    assert slab_range(edge, 2, 2.5, 80.0, rng) == (68, 100)  # clipped to the last slice
    assert slab_range(edge, 2, 2.5, 400.0, rng) == (0, 100)  # thicker than the image
    assert slab_range(edge, 2, 2.5, 1.0, rng)[1] - slab_range(edge, 2, 2.5, 1.0, rng)[0] == 1


def test_slab_without_tumor_lies_in_the_middle_half() -> None:
    rng = np.random.default_rng(1)
    empty = np.zeros((2, 2, 200), np.uint8)
    for _ in range(50):
        lo, hi = slab_range(empty, 2, 1.0, 20.0, rng)
        assert hi - lo == 20 and lo >= 49 - 10 and hi <= 150 + 10


def _dataset(root: Path) -> Path:
    cases = []
    for i in range(2):
        arr = (np.arange(6 * 7 * 40, dtype=np.int16).reshape(6, 7, 40) + 100 * i).astype(np.int16)
        lab = np.zeros(arr.shape, np.uint8)
        lab[2:4, 2:4, 25 + i : 28 + i] = 1
        affine = np.diag([0.8, 0.9, 2.0, 1.0])
        affine[:3, 3] = [-10.0, 20.0, -300.0]
        vol = Volume(arr, affine)
        cases.append(write_case(root, f"case_{i}", vol, vol.with_array(lab), patient=f"p{i}"))
    write_dataset_json(
        root,
        name="toy",
        modality={"0": "CT"},
        labels={"0": "background", "1": "tumor"},
        cases=cases,
    )
    return root


def test_cut_slabs_keeps_voxels_and_their_place_in_space(tmp_path: Path) -> None:
    src = _dataset(tmp_path / "toy")
    out = cut_slabs(src, tmp_path / "slabs", slab_mm=20.0, seed=3)
    entries = json.loads((tmp_path / "slabs" / "dataset.json").read_text())["training"]
    assert [c.id for c in out.cases] == ["case_0", "case_1"]
    assert [c.patient for c in out.cases] == ["p0", "p1"]
    for case, entry, whole in zip(out.cases, entries, MSDDataset.open(src).cases, strict=True):
        lo, hi = entry["slab_slices"]
        assert hi - lo == 10 and entry["slab_axis"] == 2
        image, label = read_volume(case.image), read_volume(case.label)
        full_image, full_label = read_volume(whole.image), read_volume(whole.label)
        np.testing.assert_array_equal(image.array, full_image.array[:, :, lo:hi])
        np.testing.assert_array_equal(label.array, full_label.array[:, :, lo:hi])
        assert label.array.sum() == full_label.array.sum()  # the tumor is inside the slab
        # voxel (1, 2, 0) of the slab is voxel (1, 2, lo) of the whole case, in world mm
        np.testing.assert_allclose(
            image.index_to_world([1, 2, 0]), full_image.index_to_world([1, 2, lo]), atol=1e-4
        )
        np.testing.assert_allclose(image.spacing, full_image.spacing, atol=1e-6)
    assert not (tmp_path / "slabs.partial").exists()


def test_cut_slabs_refuses_without_writing(tmp_path: Path) -> None:
    src = _dataset(tmp_path / "toy")
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="exists already"):
        cut_slabs(src, tmp_path / "taken", 80.0)
    with pytest.raises(InputError, match="thicker than 0"):
        cut_slabs(src, tmp_path / "zero", 0.0)
    assert not (tmp_path / "zero").exists() and not (tmp_path / "zero.partial").exists()


def test_slabs_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _dataset(tmp_path / "toy")
    out = tmp_path / "cut"
    assert main(["dataset", "slabs", str(src), str(out), "--slab-mm", "30", "--seed", "1"]) == 0
    assert "2 cases cut to 30 mm slabs" in capsys.readouterr().out
    assert read_volume(out / "imagesTr" / "case_0.nii.gz").shape == (6, 7, 15)
    assert main(["dataset", "slabs", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no such dataset folder" in err and "Traceback" not in err
    # a damaged case file: one line naming it, nothing left behind
    (src / "imagesTr" / "case_1.nii.gz").write_bytes(b"not a nifti")
    assert main(["dataset", "slabs", str(src), str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "case_1.nii.gz" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.partial").exists()

"""Converters from the real 2D Task06 derivatives (../shared/data) to MSD folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lungspread.cli.app import main
from lungspread.data.convert import convert_to_folder, patches_h5_to_msd, slices_png_to_msd
from lungspread.data.msd import MSDDataset
from lungspread.data.normalization import fit_intensity_stats
from lungspread.data.splits import kfold_splits
from lungspread.errors import InputError


def fake_slices(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, subjects in (("train", ["Subject_0", "Subject_10"]), ("val", ["Subject_2"])):
        for subj in subjects:
            for n in (3, 12):
                img = rng.integers(0, 255, (8, 6)).astype(np.uint8)
                img[0, 5] = 250  # marker for orientation
                mask = np.zeros((8, 6), np.uint8)
                mask[2:4, 1:3] = 255 if n == 12 else 0
                for kind, a in (("images", img), ("masks", mask)):
                    d = root / split / kind / subj
                    d.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(a).save(d / f"{n}.png")


def test_slices_png_to_msd_on_a_small_tree(tmp_path: Path) -> None:
    fake_slices(tmp_path / "src")
    summary = slices_png_to_msd(tmp_path / "src", tmp_path / "out")
    assert summary == {"n_cases": 6, "n_patients": 3, "n_with_tumor": 3}
    ds = MSDDataset.open(tmp_path / "out")
    assert [c.id for c in ds.cases] == [
        "Subject_0_s0003", "Subject_0_s0012", "Subject_10_s0003", "Subject_10_s0012",
        "Subject_2_s0003", "Subject_2_s0012",
    ]  # fmt: skip
    assert ds.modality == {"0": "CT-8bit"} and not ds.is_ct and ds.is_2d
    assert ds.groups["Subject_10_s0012"] == "Subject_10"
    data = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert data["source_split"]["Subject_2_s0003"] == "val"
    image, label = ds.load_case("Subject_0_s0012")
    png = np.asarray(Image.open(tmp_path / "src/train/images/Subject_0/12.png"))
    assert image.shape == (8, 6, 1) and np.array_equal(
        image.array[:, :, 0], png
    )  # [r, c] -> [i, j]
    assert image.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert label is not None and label.array.sum() == 4 and label.array[2, 1, 0] == 1
    assert fit_intensity_stats(ds) == {"scheme": "zscore"}
    with pytest.raises(InputError, match="expected train/images"):
        slices_png_to_msd(tmp_path / "out", tmp_path / "out2")


def test_missing_mask_is_reported(tmp_path: Path) -> None:
    fake_slices(tmp_path / "src")
    (tmp_path / "src/val/masks/Subject_2/3.png").unlink()
    with pytest.raises(InputError, match="no mask for this slice"):
        convert_to_folder("msd-slices", tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # staged: nothing left behind


def test_patches_to_msd_real_data(shared_data: Path, tmp_path: Path) -> None:
    import h5py

    src = shared_data / "msd-lung-patches" / "val_patches.h5"
    summary = patches_h5_to_msd(src, tmp_path / "p")
    assert summary == {"n_cases": 130, "n_patients": 13, "n_with_tumor": 111}  # as the README says
    ds = MSDDataset.open(tmp_path / "p")
    assert ds.is_ct and ds.is_2d and len(ds.cases) == 130
    assert ds.groups["patch_000"] == ds.groups["patch_009"] == "patch_group_00"
    assert ds.groups["patch_010"] == "patch_group_01"
    with h5py.File(src) as f:
        v = f["images"][37, 0]
        lab = f["labels"][37, 0]
    image, label = ds.load_case("patch_037")
    np.testing.assert_array_equal(image.array[:, :, 0], np.round(1100 * v - 1000).astype(np.int16))
    assert label is not None and np.array_equal(label.array[:, :, 0], lab.astype(np.uint8))
    assert image.spacing == (2.0, 2.0, 2.0)
    # patient-level splits keep each run of 10 patches in one fold
    splits = kfold_splits([c.id for c in ds.cases], k=5, seed=0, groups=ds.groups)
    for s in splits:
        assert len(s["val"]) in (20, 30)
        assert not {ds.groups[c] for c in s["val"]} & {ds.groups[c] for c in s["train"]}
    # CT normalization fitted on the tumor voxels: a soft-tissue mean, lung-to-soft-tissue window
    params = fit_intensity_stats(ds, total_samples=100_000)
    assert params["scheme"] == "ct" and -300 < params["mean"] < 0
    assert params["clip_hu"][0] < -800 and params["clip_hu"][1] == pytest.approx(100, abs=1)


def test_cli_convert_patches(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_data / "msd-lung-patches" / "val_patches.h5"
    out = tmp_path / "p"
    assert main(["dataset", "convert", "msd-patches", str(src), str(out)]) == 0
    assert "130 cases from 13 patient groups, 111 with tumor" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["summary"]["n_cases"] == 130
    assert main(["dataset", "convert", "msd-patches", str(src), str(out)]) == 2
    assert (
        main(["dataset", "convert", "msd-patches", str(tmp_path / "nope.h5"), str(tmp_path / "q")])
        == 2
    )
    assert "expected msd-lung-patches/val_patches.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_slices_to_msd_real_data(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "msd-lung-slices-2d"
    summary = convert_to_folder("msd-slices", src, tmp_path / "s")
    assert summary == {
        "n_cases": 1930,
        "n_patients": 61,
        "n_with_tumor": 1625,
    }  # as the README says
    ds = MSDDataset.open(tmp_path / "s")
    image, label = ds.load_case("Subject_0_s0304")
    png = np.asarray(Image.open(src / "train/images/Subject_0/304.png"))
    mask = np.asarray(Image.open(src / "train/masks/Subject_0/304.png"))
    assert np.array_equal(image.array[:, :, 0], png)
    assert label is not None and np.array_equal(label.array[:, :, 0], (mask > 127).astype(np.uint8))

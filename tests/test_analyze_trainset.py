"""The bundled model's training set: patient-level splits, real nodules pasted, model grid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lungspread.data.trainset import (
    SUBSOLID_P90_HU,
    TEST_PATIENTS,
    NoduleCrop,
    build_trainset,
    crop_p90_hu,
    draw_crops,
    lidc_crops,
    paste_crop,
    split_patients,
    to_model_grid,
)
from lungspread.errors import InputError


@pytest.fixture(scope="module")
def crops(shared_data: Path) -> list[NoduleCrop]:
    return lidc_crops(shared_data / "lidc-nodule-vois")


def test_split_is_by_patient_and_never_uses_the_test_scans(crops: list[NoduleCrop]) -> None:
    assert len(crops) == 991
    split = split_patients(crops, val_fraction=0.15, seed=0)
    train_p = {c.patient for c in split["train"]}
    val_p = {c.patient for c in split["val"]}
    assert not train_p & val_p
    assert not (train_p | val_p) & set(TEST_PATIENTS)
    n_test = sum(c.patient in TEST_PATIENTS for c in crops)
    assert len(split["train"]) + len(split["val"]) == len(crops) - n_test
    assert len(val_p) == round(0.15 * (len(train_p) + len(val_p)))
    again = split_patients(crops, val_fraction=0.15, seed=0)
    assert [c.case for c in again["val"]] == [c.case for c in split["val"]]


def test_draw_crops_favours_subsolid_nodules(crops: list[NoduleCrop]) -> None:
    pool = crops[:100]
    soft = {c.case for c in pool[:10]}
    drawn = draw_crops(pool, 2000, np.random.default_rng(0), soft, subsolid_share=0.5)
    share = np.mean([c.case in soft for c in drawn])
    assert 0.45 < share < 0.55  # 10% of the pool, drawn half of the time


def test_missing_index_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"index\.csv"):
        lidc_crops(tmp_path)


def test_paste_and_model_grid_on_a_phantom(crops: list[NoduleCrop]) -> None:
    from lungspread.phantom import make_phantom

    ph = make_phantom(3, size="medium", tumors=0)
    assert not ph.tumor.array.any()
    big = next(c for c in crops if 10.0 < c.diameter_mm < 15.0)
    rng = np.random.default_rng(0)
    pasted = paste_crop(ph.ct, ph.tumor, ph.lungs, big, rng, juxtapleural_share=0.0)
    assert pasted is not None
    ct, tumor = pasted
    mask = tumor.array > 0
    vol_ml = mask.sum() * ct.voxel_volume_mm3 / 1000.0
    # scaled by 0.85-1.25 in each direction: volume within 0.6-2.0 of the crop's mask volume
    assert 0.5 * big.volume_ml < vol_ml < 2.2 * big.volume_ml
    assert np.all(ph.lungs.array[mask] > 0)  # kept inside the lungs
    assert ct.array[mask].mean() > ph.ct.array[mask].mean() + 200  # denser than lung
    img, lab = to_model_grid(ct, tumor, ph.lungs, (1.5, 1.5, 1.5), margin_mm=15.0)
    assert img.spacing == pytest.approx((1.5, 1.5, 1.5))
    assert img.array.dtype == np.int16 and lab.array.dtype == np.uint8
    assert img.shape == lab.shape
    lab_ml = lab.array.sum() * 1.5**3 / 1000.0
    assert lab_ml == pytest.approx(vol_ml, rel=0.25)


@pytest.mark.slow
def test_build_trainset_writes_an_msd_folder(shared_data: Path, tmp_path: Path) -> None:
    from lungspread.data.msd import MSDDataset

    settings: dict[str, Any] = {
        "seed": 7,
        "split": "val",
        "lidc_root": shared_data / "lidc-nodule-vois",
        "size": "medium",
        "nodules_per_case": (1, 1),
    }
    out = build_trainset(tmp_path / "ts", 2, **settings)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["modality"] == {"0": "CT"} and meta["numTraining"] == 2
    val_patients = {
        c.patient for c in split_patients(lidc_crops(shared_data / "lidc-nodule-vois"))["val"]
    }
    for entry in meta["training"]:
        for case in entry["lidc_nodules"]:
            assert case.rsplit("_R_", 1)[0] in val_patients
    ds = MSDDataset.open(out)
    assert not ds.validate()
    # extending the build to 3 cases keeps the 2 written ones (same bytes) and adds one, also
    # for a folder written before subsolid_share was recorded (the default is assumed)
    first = (out / "imagesTr" / "ls_val_0000.nii.gz").stat().st_mtime_ns
    recorded = json.loads((out / "trainset.json").read_text())
    assert recorded.pop("subsolid_share") == 0.35
    assert recorded.pop("subsolid_contrast") == [1.0, 1.0]
    assert recorded.pop("subsolid_scale") == [0.85, 1.25]
    (out / "trainset.json").write_text(json.dumps(recorded))
    build_trainset(out, 3, **settings)
    meta3 = json.loads((out / "dataset.json").read_text())
    assert meta3["numTraining"] == 3 and meta3["training"][:2] == meta["training"]
    assert (out / "imagesTr" / "ls_val_0000.nii.gz").stat().st_mtime_ns == first
    with pytest.raises(InputError, match="other settings"):
        build_trainset(out, 3, seed=8, split="val", lidc_root=None, size="medium")


def test_subsolid_settings_out_of_range_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="subsolid_share"):
        build_trainset(tmp_path / "ts", 1, lidc_root=None, subsolid_share=1.5)
    with pytest.raises(InputError, match="subsolid_contrast"):
        build_trainset(tmp_path / "ts", 1, lidc_root=None, subsolid_contrast=(0.0, 0.5))
    with pytest.raises(InputError, match="subsolid_scale"):
        build_trainset(tmp_path / "ts", 1, lidc_root=None, subsolid_scale=(1.5, 1.0))
    assert not (tmp_path / "ts").exists()


@pytest.mark.slow
def test_subsolid_share_1_pastes_only_subsolid_nodules(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "lidc-nodule-vois"
    out = build_trainset(
        tmp_path / "ggo",
        1,
        seed=3,
        split="val",
        lidc_root=root,
        size="medium",
        nodules_per_case=(3, 3),
        subsolid_share=1.0,
        subsolid_contrast=(0.6, 0.6),
    )
    pasted = json.loads((out / "dataset.json").read_text())["training"][0]["lidc_nodules"]
    assert pasted
    by_case = {c.case: c for c in lidc_crops(root)}
    assert all(crop_p90_hu(by_case[case]) < SUBSOLID_P90_HU for case in pasted)
    recorded = json.loads((out / "trainset.json").read_text())
    assert recorded["subsolid_share"] == 1.0 and recorded["subsolid_contrast"] == [0.6, 0.6]

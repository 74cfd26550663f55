"""Non-tumor opacities in phantoms (dependent and plate-like atelectasis): where they go, what
they change, and what they leave alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungspread.data.trainset import build_trainset
from lungspread.errors import InputError
from lungspread.phantom import make_phantom
from lungspread.phantom.mimics import MIMIC_KINDS


@pytest.fixture(scope="module")
def pair() -> tuple:
    return make_phantom(3, size="medium"), make_phantom(3, size="medium", mimics=6)


def _index(ph, center_mm: list[float]) -> tuple[int, int, int]:
    """Voxel index of an anatomical point (mm) in a phantom's CT."""
    world = np.asarray(center_mm) + np.asarray(ph.meta["carina_mm"])
    ijk = np.linalg.inv(ph.ct.affine) @ np.append(world, 1.0)
    i, j, k = np.rint(ijk[:3]).astype(int)
    return int(i), int(j), int(k)


def test_mimics_change_only_the_ct_and_never_darken_it(pair: tuple) -> None:
    plain, with_mimics = pair
    drawn = with_mimics.meta["mimics"]
    assert len(drawn) == 6 and plain.meta["mimics"] == []
    assert {m["kind"] for m in drawn} <= set(MIMIC_KINDS)
    # everything but the CT is the same phantom: tumors, their table, the lungs
    assert np.array_equal(plain.tumor.array, with_mimics.tumor.array)
    assert np.array_equal(plain.lungs.array, with_mimics.lungs.array)
    assert plain.lesions == with_mimics.lesions
    diff = with_mimics.ct.array.astype(np.int32) - plain.ct.array.astype(np.int32)
    assert diff.min() >= -1  # only rounding after the scanner blur can lower a voxel
    raised = diff > 5
    assert raised.sum() > 1000
    # the raised voxels are in or next to the lungs (the scanner blur reaches a few mm out)
    from scipy import ndimage

    near_lungs = ndimage.binary_dilation(plain.lungs.array > 0, iterations=3)
    assert raised[~near_lungs].sum() < 0.02 * raised.sum()
    # and never on a tumor: mimics keep clear of them
    assert not (raised & (plain.tumor.array > 0)).any()


def test_dependent_atelectasis_lies_under_the_posterior_pleura(pair: tuple) -> None:
    plain, with_mimics = pair
    diff = with_mimics.ct.array.astype(np.int32) - plain.ct.array.astype(np.int32)
    lung = plain.lungs.array > 0
    lung_y = np.nonzero(lung)[1]  # array j runs to posterior in LPS
    dependent = [m for m in with_mimics.meta["mimics"] if m["kind"] == "dependent"]
    assert dependent
    for m in dependent:
        i, j, k = _index(with_mimics, m["center_mm"])
        assert j > np.median(lung_y), m  # in the back half of the lungs
        # hazy: the lung in a 5 mm ball at its centre rose by at least 80 HU on average
        r = 3
        box = (slice(i - r, i + r + 1), slice(j - r, j + r + 1), slice(k - r, k + r + 1))
        inside = lung[box]
        assert inside.any(), m
        assert diff[box][inside].mean() > 80, (m, diff[box][inside].mean())


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_mimic_counts_are_input_errors(bad: object) -> None:
    with pytest.raises(InputError, match="mimics"):
        make_phantom(0, size="small", mimics=bad)  # type: ignore[arg-type]


def test_trainset_records_mimics_and_checks_their_range(tmp_path: Path) -> None:
    out = build_trainset(tmp_path / "ts", 1, lidc_root=None, size="small", mimics=(2, 2))
    recorded = json.loads((out / "trainset.json").read_text())
    assert recorded["mimics"] == [2, 2]
    entry = json.loads((out / "dataset.json").read_text())["training"][0]
    assert len(entry["mimics"]) == 2 and set(entry["mimics"]) <= set(MIMIC_KINDS)
    plain = build_trainset(tmp_path / "plain", 1, lidc_root=None, size="small")
    assert "mimics" not in json.loads((plain / "trainset.json").read_text())
    # same chest, same label; only the image differs
    from lungspread.io import read_volume

    name = "ls_train_0000.nii.gz"
    lab_a = read_volume(out / "labelsTr" / name).array
    lab_b = read_volume(plain / "labelsTr" / name).array
    assert np.array_equal(lab_a, lab_b)
    img_a = read_volume(out / "imagesTr" / name).array
    img_b = read_volume(plain / "imagesTr" / name).array
    assert (img_a.astype(np.int32) - img_b.astype(np.int32)).max() > 50
    with pytest.raises(InputError, match="mimics"):
        build_trainset(tmp_path / "bad", 1, lidc_root=None, size="small", mimics=(3, 1))
    assert not (tmp_path / "bad").exists()


def test_phantom_command_writes_mimics_into_the_case_meta(tmp_path: Path) -> None:
    from lungspread.cli.app import main

    out = tmp_path / "ph"
    assert main(["phantom", str(out), "--cases", "1", "--seed", "2", "--mimics", "3"]) == 0
    meta = json.loads((out / "metaTr" / "phantom_000.json").read_text())
    assert len(meta["meta"]["mimics"]) == 3
    assert main(["phantom", str(tmp_path / "bad"), "--mimics", "-1"]) == 2
    assert not (tmp_path / "bad").exists()

"""Synthetic chest CT phantoms: determinism, exact ground truth, orientation, kinds, writers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from lungspread.errors import InputError
from lungspread.phantom import (
    DENSITIES,
    LOCATIONS,
    SHAPES,
    Acquisition,
    Phantom,
    TumorSpec,
    make_phantom,
    write_phantom_dataset,
)
from lungspread.volume import Volume


@cache
def small(seed: int, **kw: object) -> Phantom:
    return make_phantom(seed, size="small", **kw)  # type: ignore[arg-type]


def _centroid_x(vol: Volume, mask: np.ndarray) -> float:
    idx = np.argwhere(mask).mean(axis=0)
    return float(vol.index_to_world(idx)[0])


# -- basics --------------------------------------------------------------------------------


def test_small_phantom_types_shapes_and_geometry() -> None:
    ph = small(0)
    assert ph.ct.shape == (96, 96, 64)
    assert ph.ct.array.dtype == np.int16
    assert ph.ct.spacing == pytest.approx((3.6, 3.6, 5.0))
    for v in (ph.tumor, ph.lungs, ph.lesion_labels, ph.airways, ph.body):
        assert v is not None
        assert v.array.dtype == np.uint8
        assert v.same_grid(ph.ct)
    # default orientation is LIDC-like: diag(-sx, -sy, +sz), axis codes L, P, S
    assert np.allclose(np.diag(ph.ct.affine)[:3], [-3.6, -3.6, 5.0])
    assert nib.aff2axcodes(ph.ct.affine) == ("L", "P", "S")
    assert set(np.unique(ph.lungs.array)) <= {0, 1, 2}
    assert set(np.unique(ph.tumor.array)) <= {0, 1}


def test_same_seed_same_phantom_other_seed_other_phantom() -> None:
    a = make_phantom(7, size="small")
    b = make_phantom(7, size="small")
    assert np.array_equal(a.ct.array, b.ct.array)
    assert np.array_equal(a.tumor.array, b.tumor.array)
    assert np.array_equal(a.ct.affine, b.ct.affine)
    assert a.lesions == b.lesions
    c = small(8)
    assert not np.array_equal(a.ct.array, c.ct.array)


def test_anatomy_and_tumors_do_not_depend_on_the_grid() -> None:
    a = small(3)
    b = make_phantom(3, size=(128, 128, 80))
    assert [x["location"] for x in a.lesions] == [x["location"] for x in b.lesions]
    for la, lb in zip(a.lesions, b.lesions, strict=True):
        assert la["diameter_mm"] == lb["diameter_mm"]
        # centroids of the voxel masks agree to within a voxel of the coarse grid
        assert np.linalg.norm(np.subtract(la["center_mm"], lb["center_mm"])) < 6.0
    va = [(a.lungs.array == s).sum() * a.ct.voxel_volume_mm3 for s in (1, 2)]
    vb = [(b.lungs.array == s).sum() * b.ct.voxel_volume_mm3 for s in (1, 2)]
    assert np.allclose(va, vb, rtol=0.05)


# -- orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["LPS", "RAS", "LAS", "RPI"])
def test_right_lung_is_on_the_patients_right_in_world_space(code: str) -> None:
    ph = make_phantom(2, size="small", orientation=code)
    assert nib.aff2axcodes(ph.ct.affine) == tuple(code)
    lab = ph.lungs.array
    assert ph.body is not None
    x_right = _centroid_x(ph.lungs, lab == 1)
    x_left = _centroid_x(ph.lungs, lab == 2)
    x_body = _centroid_x(ph.body, ph.body.array > 0)
    # RAS+: x grows towards the patient's right (as in the LIDC scans: a left-lung nodule
    # of lidc-idri-0001 has a smaller world x than the body's centre)
    assert x_right > x_body + 30 > x_left + 60
    # slices are axial whatever the orientation: the third axis is superior-inferior
    assert ph.ct.slice_axis() == 2


def test_orientations_are_the_same_patient() -> None:
    a = make_phantom(4, size="small", orientation="LPS")
    b = make_phantom(4, size="small", orientation="RAI")
    # RAI flips all three axes of LPS: the arrays are exact flips of each other
    assert np.array_equal(a.lungs.array, b.lungs.array[::-1, ::-1, ::-1])
    assert np.array_equal(a.tumor.array, b.tumor.array[::-1, ::-1, ::-1])
    assert np.allclose(a.ct.index_to_world([0, 0, 0]), b.ct.index_to_world([95, 95, 63]), atol=1e-6)


# -- ground truth --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 5, 9])
def test_ground_truth_is_exact(seed: int) -> None:
    ph = make_phantom(seed, size="small", tumors=4)
    lab = ph.lesion_labels.array
    assert np.array_equal(ph.tumor.array, (lab > 0).astype(np.uint8))
    vox_ml = ph.ct.voxel_volume_mm3 / 1000.0
    assert sorted(int(v) for v in np.unique(lab) if v) == [les["id"] for les in ph.lesions]
    for les in ph.lesions:
        mask = lab == les["id"]
        assert mask.sum() == les["voxels"] > 0
        assert les["volume_ml"] == pytest.approx(mask.sum() * vox_ml, rel=1e-9)
        side = 1 if les["side"] == "right" else 2
        # every tumor voxel lies in the lung it was placed in
        assert np.all(ph.lungs.array[mask] == side)
        centre = ph.ct.index_to_world(np.argwhere(mask).mean(axis=0))
        assert np.allclose(centre, les["center_mm"], atol=1e-2)
        assert les["shape"] in SHAPES
        assert les["density"] in DENSITIES
        assert les["location"] in LOCATIONS
    assert ph.tumor.array.sum() == sum(les["voxels"] for les in ph.lesions)


def test_tumor_hu_matches_its_density() -> None:
    kinds = [
        TumorSpec("round", "solid", "central", "right", 24.0),
        TumorSpec("round", "ground-glass", "central", "left", 24.0),
    ]
    ph = make_phantom(11, size="medium", tumor_kinds=kinds)
    lab = ph.lesion_labels.array
    ct = ph.ct.array.astype(float)
    by_density = {les["density"]: les for les in ph.lesions}
    core = ndi.binary_erosion(lab == by_density["solid"]["id"], iterations=2)
    assert -40 < np.median(ct[core]) < 90
    core = ndi.binary_erosion(lab == by_density["ground-glass"]["id"], iterations=2)
    assert -800 < np.median(ct[core]) < -420  # GROUND_GLASS_HU plus texture and blur
    # equivalent diameter of a central round tumor is the requested one (within a voxel)
    for les in ph.lesions:
        assert les["equivalent_diameter_mm"] == pytest.approx(24.0, abs=2.0)


@pytest.mark.parametrize("location", ["juxtapleural", "mediastinal"])
def test_tumors_at_the_lung_edge_touch_it_and_stay_in_the_lung(location: str) -> None:
    kinds = [{"location": location, "diameter_mm": 18.0, "side": s} for s in ("right", "left")]
    ph = make_phantom(12, size="medium", tumor_kinds=kinds)
    assert [les["location"] for les in ph.lesions] == [location, location]
    assert ph.body is not None
    lab = ph.lesion_labels.array
    lungs = ph.lungs.array
    wall = (lungs == 0) & (ph.body.array > 0)  # chest wall or mediastinum
    for les in ph.lesions:
        mask = lab == les["id"]
        assert np.all(lungs[mask] > 0)
        touching = ndi.binary_dilation(mask, iterations=1) & wall
        assert touching.sum() >= 5, "tumor at the lung edge does not touch the wall"
        # the tumor is flattened against the wall: its mask is clipped by the lung
        assert les["equivalent_diameter_mm"] < 18.0


def test_every_kind_appears_across_seeds() -> None:
    seen: dict[str, set[str]] = {"shape": set(), "density": set(), "location": set(), "side": set()}
    sizes = []
    counts = []
    for seed in range(20):
        ph = small(seed)
        counts.append(len(ph.lesions))
        for les in ph.lesions:
            for key in seen:
                seen[key].add(les[key])
            sizes.append(les["diameter_mm"])
    assert seen["shape"] == set(SHAPES)
    assert seen["density"] == set(DENSITIES)
    assert seen["location"] == set(LOCATIONS)
    assert seen["side"] == {"right", "left"}
    assert min(counts) == 0 and max(counts) >= 3
    assert min(sizes) < 6 and max(sizes) > 30


def test_tumor_kinds_restrict_the_draws() -> None:
    ph = make_phantom(3, size="small", tumors=3, tumor_kinds={"shape": ["spiculated"]})
    assert len(ph.lesions) == 3
    assert {les["shape"] for les in ph.lesions} == {"spiculated"}


def test_bad_arguments_are_input_errors() -> None:
    with pytest.raises(InputError, match="size"):
        make_phantom(0, size="huge")
    with pytest.raises(InputError, match="orientation"):
        make_phantom(0, orientation="XYZ")
    with pytest.raises(InputError, match="shape must be one of"):
        make_phantom(0, tumor_kinds=[{"shape": "square"}])
    with pytest.raises(InputError, match="tumor_kinds keys"):
        make_phantom(0, tumor_kinds={"colour": ["red"]})
    with pytest.raises(InputError, match="seed"):
        make_phantom(-1)
    with pytest.raises(InputError, match="diameter_mm"):
        TumorSpec(diameter_mm=200.0)


# -- tissue values and acquisition ---------------------------------------------------------


def test_tissue_values_look_like_ct() -> None:
    ph = small(1)
    assert ph.body is not None
    ct = ph.ct.array.astype(float)
    lungs = ph.lungs.array > 0
    body = ph.body.array > 0
    assert -900 < np.median(ct[lungs & (ph.tumor.array == 0)]) < -750
    soft = ct[body & ~lungs & (ct > -250) & (ct < 150)]
    hist, edges = np.histogram(soft, bins=40, range=(-250, 150))
    peaks = edges[:-1][np.argsort(hist)[::-1]]
    assert any(20 <= p <= 70 for p in peaks[:3]), "no soft-tissue peak near +40 HU"
    assert any(-130 <= p <= -70 for p in peaks[:3]), "no fat peak near -100 HU"
    assert np.median(ct[~body & (ct > -1500)]) == pytest.approx(-1000, abs=30)
    assert ct.max() > 500  # bone


def test_noise_level_and_field_of_view_follow_the_acquisition() -> None:
    quiet = Acquisition(noise_hu=0.0, psf_fwhm_mm=0.1, fov_circle=True, fov_fill_hu=-3024)
    noisy = Acquisition(noise_hu=25.0, psf_fwhm_mm=0.1, fov_circle=True, fov_fill_hu=-3024)
    a = make_phantom(2, size="small", acquisition=quiet)
    b = make_phantom(2, size="small", acquisition=noisy)
    ct = b.ct.array
    assert ct[0, 0, 10] == -3024 and ct[-1, -1, 30] == -3024
    noise = ct.astype(float) - a.ct.array
    assert b.body is not None
    body = ndi.binary_erosion(b.body.array > 0, iterations=4)
    air = ndi.binary_dilation(b.body.array > 0, iterations=6) == 0
    air &= ct > -1500
    # about the nominal level inside the body (a little more at its centre), little in air
    assert 22.0 < np.std(noise[body]) < 32.0
    assert np.std(noise[air]) < 10.0
    assert b.meta["acquisition"]["noise_hu"] == 25.0


def test_vessels_fill_a_few_percent_of_the_lungs() -> None:
    ph = make_phantom(6, size="medium", tumors=0)
    ct = ph.ct.array
    lungs = ph.lungs.array > 0
    frac = float((ct[lungs] > -500).mean())
    assert 0.01 < frac < 0.12
    # vessels thin towards the periphery: dense voxels are rarer in the outer lung
    depth = ndi.distance_transform_edt(lungs, sampling=ph.ct.spacing)
    inner = float((ct[lungs & (depth > 20)] > -500).mean())
    outer = float((ct[lungs & (depth < 8)] > -500).mean())
    assert inner > outer
    assert ph.airways is not None and ph.airways.array.sum() > 0


def test_lung_volumes_are_adult_sized() -> None:
    for seed in range(6):
        ph = small(seed)
        vox_l = ph.ct.voxel_volume_mm3 / 1e6
        right, left = ((ph.lungs.array == s).sum() * vox_l for s in (1, 2))
        assert 1.0 < left < right < 5.0
        assert 2.5 < left + right < 8.0


# -- dataset writer and CLI ----------------------------------------------------------------


def test_msd_dataset_is_complete_and_consistent(tmp_path: Path) -> None:
    out = write_phantom_dataset(tmp_path / "ds", cases=2, seed=20, size="small", tumors=2)
    data = json.loads((out / "dataset.json").read_text())
    assert data["modality"] == {"0": "CT"}
    assert data["labels"] == {"0": "background", "1": "tumor"}
    assert data["numTraining"] == 2 == len(data["training"])
    assert data["training"][0]["image"] == "./imagesTr/phantom_000.nii.gz"
    assert data["training"][0]["label"] == "./labelsTr/phantom_000.nii.gz"
    assert (out / "run.json").is_file()
    for n, entry in enumerate(data["training"]):
        img: Any = nib.load(str(out / entry["image"]))
        lab: Any = nib.load(str(out / entry["label"]))
        lungs: Any = nib.load(str(out / "lungsTr" / f"phantom_{n:03d}.nii.gz"))
        assert img.get_data_dtype() == np.int16
        assert np.allclose(img.affine, lab.affine) and np.allclose(img.affine, lungs.affine)
        y = np.asarray(lab.dataobj)
        assert set(np.unique(y)) <= {0, 1}
        meta = json.loads((out / "metaTr" / f"phantom_{n:03d}.json").read_text())
        vox_ml = abs(np.linalg.det(img.affine[:3, :3])) / 1000
        assert meta["tumor_volume_ml"] == pytest.approx(y.sum() * vox_ml)
        assert sum(les["volume_ml"] for les in meta["lesions"]) == pytest.approx(y.sum() * vox_ml)
        # the written CT is the phantom of seed 20 + n
        ph = small(20 + n, tumors=2)
        assert np.array_equal(np.asarray(img.dataobj), ph.ct.array)
        assert np.array_equal(np.asarray(lungs.dataobj), ph.lungs.array)


def test_cli_writes_and_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lungspread.cli.app import main

    out = tmp_path / "phantoms"
    assert main(["phantom", str(out), "--cases", "1", "--seed", "3"]) == 0
    assert (out / "imagesTr" / "phantom_000.nii.gz").is_file()
    before = (out / "imagesTr" / "phantom_000.nii.gz").read_bytes()
    capsys.readouterr()
    assert main(["phantom", str(out), "--cases", "1", "--seed", "4"]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--overwrite" in err
    assert (out / "imagesTr" / "phantom_000.nii.gz").read_bytes() == before
    assert main(["phantom", str(out), "--cases", "1", "--seed", "4", "--overwrite"]) == 0
    assert (out / "imagesTr" / "phantom_000.nii.gz").read_bytes() != before
    assert main(["phantom", str(tmp_path / "x"), "--size", "giant"]) == 2
    assert "--size" in capsys.readouterr().err


@pytest.mark.slow
def test_full_size_phantom_is_512_with_adult_lungs() -> None:
    ph = make_phantom(0, size="full")
    assert ph.ct.shape == (512, 512, 256)
    vox_l = ph.ct.voxel_volume_mm3 / 1e6
    for side in (1, 2):
        assert 1.0 < (ph.lungs.array == side).sum() * vox_l < 5.0
    assert -900 < np.median(ph.ct.array[ph.lungs.array > 0]) < -750

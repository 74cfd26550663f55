"""Phantoms against the real LIDC scans, and real LIDC nodules inserted into phantom lungs."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from lungspread.errors import GeometryError, InputError
from lungspread.phantom import insert_nodule, make_phantom
from lungspread.phantom.compare import CTStats, ct_stats
from lungspread.phantom.insert import lung_site
from lungspread.volume import Volume


@cache
def real_stats(data: Path, case: str) -> CTStats:
    from lungspread.io import read_volume

    return ct_stats(read_volume(data / case / "ct.nii.gz"), step=4)


def test_phantoms_match_the_real_scans(shared_data: Path) -> None:
    real = [real_stats(shared_data, c) for c in ("lidc-idri-0001", "lidc-idri-0002")]
    # what the real scans look like through the same simple masks (measured, see docs)
    for r in real:
        assert -900 < r.lung_median_hu < -750
        assert 0.015 < r.dense_lung_fraction < 0.06
        assert 1.0 < r.left_lung_l < 5.0 and 1.0 < r.right_lung_l < 5.0
    lo_med = min(r.lung_median_hu for r in real) - 40
    hi_med = max(r.lung_median_hu for r in real) + 40
    soft = [r.soft_tissue_peak_hu for r in real]
    for seed in (0, 1):
        ph = make_phantom(seed, size="medium", tumors=0)
        st = ct_stats(ph.ct, step=2)
        assert lo_med < st.lung_median_hu < hi_med
        assert -900 < st.lung_median_hu < -750
        assert min(soft) - 30 <= st.soft_tissue_peak_hu <= max(soft) + 30
        assert st.fat_peak_hu == pytest.approx(real[0].fat_peak_hu, abs=30)
        assert 1.0 < st.left_lung_l < 5.0 and 1.0 < st.right_lung_l < 5.0
        # a few percent of the lung is vessel (the medium grid's partial volume adds some)
        assert 0.015 < st.dense_lung_fraction < 0.09
        # the simple threshold masks find the phantom's true lungs
        truth = ct_stats(ph.ct, ph.lungs.array, ph.body.array if ph.body else None, step=2)
        assert st.right_lung_l == pytest.approx(truth.right_lung_l, rel=0.08)
        assert st.left_lung_l == pytest.approx(truth.left_lung_l, rel=0.08)
        # lung HU histograms overlap the real ones (Bhattacharyya coefficient)
        for r in real:
            p = np.asarray(st.lung_hist) / np.sum(st.lung_hist)
            q = np.asarray(r.lung_hist) / np.sum(r.lung_hist)
            assert np.sum(np.sqrt(p * q)) > 0.85


def _crop(data: Path, name: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    img: Any = nib.load(str(data / "lidc-nodule-vois" / "image" / f"{name}.nii.gz"))
    msk: Any = nib.load(str(data / "lidc-nodule-vois" / "mask" / f"{name}.nii.gz"))
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return np.asarray(img.dataobj), np.asarray(msk.dataobj), zooms


def test_insert_real_nodule_into_phantom_lung(shared_data: Path) -> None:
    hu, mask, spacing = _crop(shared_data, "LIDC-IDRI-0001_R_1")  # 8.1 mL solid nodule
    crop_ml = mask.sum() * np.prod(spacing) / 1000.0
    ph = make_phantom(5, size="medium", tumors=0)
    centre = lung_site(ph.lungs, np.random.default_rng(0), min_depth_mm=20.0, side=1)
    ct, tumor = insert_nodule(ph, None, hu, mask, spacing, centre)
    assert ct.same_grid(ph.ct) and tumor.same_grid(ph.ct)
    assert ct.array.dtype == np.int16
    t = tumor.array > 0
    new_ml = t.sum() * ph.ct.voxel_volume_mm3 / 1000.0
    assert new_ml == pytest.approx(crop_ml, rel=0.15)
    assert np.all(ph.lungs.array[t] == 1)  # inside the right lung
    # the nodule's values are the real ones: mean HU in the mask near the crop's
    assert np.mean(ct.array[t]) == pytest.approx(np.mean(hu[mask > 0]), abs=60)
    # its centroid lands where asked (within a voxel of the medium grid)
    got = ph.ct.index_to_world(np.argwhere(t).mean(axis=0))
    assert np.linalg.norm(got - centre) < 2.5
    # far from the nodule nothing changed; lung voxels were only raised
    changed = ct.array != ph.ct.array
    far = ~np.zeros_like(t)
    idx = np.argwhere(t)
    lo, hi = idx.min(0) - 3, idx.max(0) + 4
    far[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = False
    assert not changed[far].any()
    assert np.all(ct.array >= ph.ct.array)
    # contrast 0.5 keeps half of the nodule's excess over the lung, in the same mask
    faded, tumor_f = insert_nodule(ph, None, hu, mask, spacing, centre, contrast=0.5)
    assert np.array_equal(tumor_f.array, tumor.array)
    excess = ct.array[t].astype(float) - ph.ct.array[t]
    excess_f = faded.array[t].astype(float) - ph.ct.array[t]
    assert np.abs(excess_f - 0.5 * excess).max() <= 1.0  # rounding to whole HU
    with pytest.raises(InputError, match="contrast"):
        insert_nodule(ph, None, hu, mask, spacing, centre, contrast=0.0)


def test_insert_real_nodule_into_real_ct(shared_data: Path) -> None:
    from lungspread.io import read_volume

    real = read_volume(shared_data / "lidc-idri-0001" / "ct.nii.gz")
    truth = read_volume(shared_data / "lidc-idri-0001" / "nodules.nii.gz")
    hu, mask, spacing = _crop(shared_data, "LIDC-IDRI-0005_R_2")
    # a point in the right lung's parenchyma of the real scan (HU well below -800)
    a = real.array
    k = a.shape[2] // 2
    ii, jj = np.nonzero(a[:, :, k] < -850)
    world = real.index_to_world(np.stack([ii, jj, np.full_like(ii, k)], 1).astype(float))
    pick = np.argmax(world[:, 0])  # most to the patient's right
    centre = world[pick] - np.array([25.0, 0.0, 0.0])
    ct, tumor = insert_nodule(real, truth, hu, mask, spacing, centre)
    t = tumor.array > 0
    assert t.sum() > np.asarray(truth.array).sum()  # old nodule kept, new one added
    assert np.all(tumor.array[np.asarray(truth.array) > 0] == 1)
    assert isinstance(ct, Volume) and np.allclose(ct.affine, real.affine)
    with pytest.raises(GeometryError):
        insert_nodule(real, None, hu, mask, spacing, [5000.0, 0.0, 0.0])

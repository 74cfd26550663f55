"""segmentation.seg.nrrd read back with slicerio, the library 3D Slicer users script with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import pytest

from export_fixtures import LIDC1, chest, hand_report, report_for
from lungspread.errors import GeometryError, InputError
from lungspread.export.slicer import write_seg_nrrd
from lungspread.export.structures import (
    LEFT_LUNG_COLOR,
    LESION_COLORS,
    RIGHT_LUNG_COLOR,
    build_structures,
)
from lungspread.volume import LPS_TO_RAS, Volume

slicerio = pytest.importorskip("slicerio")


def _write(
    tmp_path: Path, order: str = "LPS", lungs: bool = True, report: bool = True
) -> tuple[Any, list[Any], dict[str, Any], Path]:
    c = chest(order=order)
    rep = report_for(c) if report else None
    structures = build_structures(c.ct, c.tumor, c.lungs if lungs else None, rep)
    path = write_seg_nrrd(tmp_path / "segmentation.seg.nrrd", structures, c.ct)
    return c, structures, slicerio.read_segmentation(str(path)), path


def test_segments_names_colours_labels_and_terminology(tmp_path: Path) -> None:
    c, _structures, seg, _ = _write(tmp_path)
    names = [s["name"] for s in seg["segments"]]
    # L1 = the tumor voxels on the patient's right (x > 0), 2 x 2 x 3 mm each
    idx = np.argwhere(c.tumor.array > 0)
    right = c.ct.index_to_world(idx)[:, 0] > 0
    l1_ml = right.sum() * 12.0 / 1000.0
    l2_ml = (~right).sum() * 12.0 / 1000.0
    assert names[:2] == ["Right lung", "Left lung"]
    assert names[2] == f"L1 tumor {l1_ml:.1f} mL"
    assert names[3] == f"L2 tumor {l2_ml:.1f} mL"
    assert len(names) == 4
    by_name = {s["name"]: s for s in seg["segments"]}
    np.testing.assert_allclose(by_name["Right lung"]["color"], RIGHT_LUNG_COLOR, atol=1e-5)
    np.testing.assert_allclose(by_name["Left lung"]["color"], LEFT_LUNG_COLOR, atol=1e-5)
    np.testing.assert_allclose(seg["segments"][2]["color"], LESION_COLORS[0], atol=1e-5)
    np.testing.assert_allclose(seg["segments"][3]["color"], LESION_COLORS[1], atol=1e-5)
    # lungs share layer 0 (labels 1, 2); lesions overlap them, so they are in layer 1
    assert [(s["layer"], s["labelValue"]) for s in seg["segments"]] == [
        (0, 1),
        (0, 2),
        (1, 1),
        (1, 2),
    ]
    assert seg["voxels"].shape == (2, *c.ct.shape)
    right = by_name["Right lung"]["terminology"]
    assert right["type"][:2] == ["SCT", "39607008"]  # lung
    assert right["typeModifier"][:2] == ["SCT", "24028007"]  # right
    assert by_name["Left lung"]["terminology"]["typeModifier"][:2] == ["SCT", "7771000"]
    tumor_term = seg["segments"][2]["terminology"]
    assert tumor_term["category"][:2] == ["SCT", "49755003"]
    assert tumor_term["type"][:2] == ["SCT", "108369006"]  # neoplasm
    assert tumor_term["anatomicRegion"][:2] == ["SCT", "39607008"]
    assert tumor_term["anatomicRegionModifier"][:2] == ["SCT", "24028007"]  # L1 is right
    assert seg["segments"][3]["terminology"]["anatomicRegionModifier"][:2] == ["SCT", "7771000"]
    assert seg["masterRepresentation"] == "Binary labelmap"
    full = [0, c.ct.shape[0] - 1, 0, c.ct.shape[1] - 1, 0, c.ct.shape[2] - 1]
    assert all(s["extent"] == full for s in seg["segments"])


def test_voxels_and_world_positions_match_the_ct(tmp_path: Path) -> None:
    c, _structures, seg, _ = _write(tmp_path)
    # geometry: the file's IJK->LPS is the CT affine converted at the boundary, exactly
    np.testing.assert_allclose(seg["ijkToLPS"], LPS_TO_RAS @ c.ct.affine, atol=1e-9)
    assert slicerio.segment_mask(seg, "Right lung").sum() == (c.lungs.array == 1).sum()
    np.testing.assert_array_equal(slicerio.segment_mask(seg, "Left lung"), c.lungs.array == 2)
    l1 = slicerio.segment_mask(seg, seg["segments"][2]["id"])
    l2 = slicerio.segment_mask(seg, seg["segments"][3]["id"])
    np.testing.assert_array_equal(l1 | l2, c.tumor.array > 0)
    assert l1.sum() > l2.sum()
    # L1 is the sphere around (45, 0, 20) RAS mm: its voxels' world centre, through the file's
    # own matrix, is that point in LPS
    idx = np.argwhere(l1).mean(axis=0)
    lps = seg["ijkToLPS"][:3, :3] @ idx + seg["ijkToLPS"][:3, 3]
    np.testing.assert_allclose(lps, [-45.0, 0.0, 20.0], atol=0.6)


@pytest.mark.parametrize("order", ["RAS", "PLS", "oblique"])
def test_geometry_for_other_voxel_orders(tmp_path: Path, order: str) -> None:
    c, _, seg, _ = _write(tmp_path, order=order)
    np.testing.assert_allclose(seg["ijkToLPS"], LPS_TO_RAS @ c.ct.affine, atol=1e-9)
    l1 = slicerio.segment_mask(seg, seg["segments"][2]["id"])
    idx = np.argwhere(l1).mean(axis=0)
    ras = LPS_TO_RAS[:3, :3] @ (seg["ijkToLPS"][:3, :3] @ idx + seg["ijkToLPS"][:3, 3])
    np.testing.assert_allclose(ras, [45.0, 0.0, 20.0], atol=0.7)


def test_lesions_only_is_a_3d_labelmap_with_own_numbering(tmp_path: Path) -> None:
    _c, _structures, seg, path = _write(tmp_path, lungs=False, report=False)
    assert seg["voxels"].ndim == 3
    assert [s["name"].split()[0] for s in seg["segments"]] == ["L1", "L2"]
    assert [s["labelValue"] for s in seg["segments"]] == [1, 2]
    header = nrrd.read_header(str(path))
    assert header["kinds"] == ["domain", "domain", "domain"]
    assert header["space"] == "left-posterior-superior"
    # Slicer's own field layout: tags end with "|", terminology inside the tags
    assert header["Segment0_Tags"].endswith("|")
    assert "TerminologyEntry:Segmentation category and type" in header["Segment0_Tags"]
    assert header["Segment0_ID"] == "lesion_L1"


def test_report_ids_follow_centroids_even_in_lps(tmp_path: Path) -> None:
    c = chest()
    rep = hand_report()
    rep["lesions"] = list(reversed(rep["lesions"]))  # order must not matter, centroids do
    structures = build_structures(c.ct, c.tumor, c.lungs, rep)
    lesions = [s for s in structures if s.kind == "lesion"]
    assert [s.lesion_id for s in lesions] == ["L1", "L2"]
    assert lesions[0].side == "right" and lesions[1].side == "left"
    assert lesions[1].report["zone"] == "lower"


def test_mask_on_another_grid_and_bad_lung_labels_are_refused() -> None:
    c = chest()
    shifted = Volume(c.tumor.array, c.tumor.affine + _shift(5.0))
    with pytest.raises(GeometryError, match="tumor mask must be on the CT's grid"):
        build_structures(c.ct, shifted, None, None)
    bad = c.lungs.with_array(c.lungs.array * 2)
    with pytest.raises(InputError, match="lung mask labels must be 0, 1"):
        build_structures(c.ct, c.tumor, bad, None)


def _shift(mm: float) -> np.ndarray:
    m = np.zeros((4, 4))
    m[0, 3] = mm
    return m


def test_real_lidc_nodule_segmentation(tmp_path: Path) -> None:
    if not LIDC1.is_dir():
        pytest.skip(f"real data not found at {LIDC1}")
    from lungspread.io import read_volume

    ct = read_volume(LIDC1 / "ct.nii.gz")
    tumor = read_volume(LIDC1 / "nodules.nii.gz")
    structures = build_structures(ct, tumor, None, None)
    path = write_seg_nrrd(tmp_path / "lidc.seg.nrrd", structures, ct)
    seg = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in seg["segments"]] == ["L1 tumor 7.8 mL"]
    np.testing.assert_allclose(seg["ijkToLPS"], LPS_TO_RAS @ ct.affine, atol=1e-6)
    mask = slicerio.segment_mask(seg, "L1 tumor 7.8 mL")
    assert int(mask.sum()) == 6282
    np.testing.assert_array_equal(mask, np.asarray(tumor.array) > 0)
    # the NIfTI's first voxel is at RAS (166, 171.7, -340), i.e. LPS (-166, -171.7, -340)
    np.testing.assert_allclose(seg["ijkToLPS"][:3, 3], [-166.0, -171.7, -340.0], atol=1e-3)

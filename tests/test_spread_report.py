"""The spread report on a box-lung phantom whose answers can be worked out by hand.

Grid 100 x 60 x 48 voxels of 1.5 x 1.5 x 2.5 mm (5.625 mm^3), identity directions, origin 0,
so x = 1.5 i (RAS: larger x = patient's right), z = 2.5 k.
Right lung: i 55-89, left lung: i 10-44; both j 10-49, k 4-43 (35 x 40 x 40 = 56,000 voxels =
315 mL each). Lung voxel centres span z 10-107.5 mm: lower third z < 42.5, upper z > 75.

Lesions:
  C  box i 30-57, j 28-31, k 20-23 (448 voxels): 240 in the left lung, 160 between the lungs,
     48 in the right lung -> side left, zone middle, straddles both lungs, touches the pleura.
  A  ball r = 6 mm at (108, 45, 92.5) mm, in the right lung's upper third; nearest lung surface
     is above it: top lesion voxel k = 39, last lung voxel k = 43 -> 4 voxels x 2.5 = 10 mm.
  B  box i 10-14, j 20-24, k 8-11 (100 voxels), against the left lung's lateral surface, lower.
  D  box i 48-51, j 36-39, k 30-33 (64 voxels) between the lungs: 3 voxels (4.5 mm) from each.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import pytest

from lungspread.errors import GeometryError, InputError
from lungspread.spread import compute_spread, spread_report
from lungspread.spread.recist import measurable_min_mm, select_targets, target_response
from lungspread.spread.tdescriptor import size_category, t_descriptor
from lungspread.volume import Volume

SPACING = (1.5, 1.5, 2.5)
VOX_MM3 = 1.5 * 1.5 * 2.5
SHAPE = (100, 60, 48)


def lungs_array() -> np.ndarray:
    lungs = np.zeros(SHAPE, dtype=np.uint8)
    lungs[55:90, 10:50, 4:44] = 1
    lungs[10:45, 10:50, 4:44] = 2
    return lungs


def ball_a() -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    world = idx * np.array(SPACING)
    out: np.ndarray = ((world - np.array([108.0, 45.0, 92.5])) ** 2).sum(-1) <= 36.0
    return out


def tumor_array() -> np.ndarray:
    t = np.zeros(SHAPE, dtype=np.uint8)
    t[30:58, 28:32, 20:24] = 1  # C
    t[ball_a()] = 1  # A
    t[10:15, 20:25, 8:12] = 1  # B
    t[48:52, 36:40, 30:34] = 1  # D
    return t


def vol(arr: np.ndarray, **meta: Any) -> Volume:
    return Volume.from_spacing(arr, SPACING, meta=meta)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return spread_report(vol(tumor_array()), lungs=vol(lungs_array()))


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {les["id"]: les for les in report["lesions"]}


def test_lungs_volumes_and_geometry(report: dict[str, Any]) -> None:
    lungs = report["lungs"]
    assert lungs["right_ml"] == pytest.approx(56000 * VOX_MM3 / 1000)  # 315 mL
    assert lungs["left_ml"] == pytest.approx(315.0)
    assert lungs["total_ml"] == pytest.approx(630.0)
    # Box of voxel centres: x from 15 (i 10) to 133.5 (i 89); centroid x = (27 + 72) / 2 * 1.5.
    assert lungs["bbox_min_mm"] == pytest.approx([15.0, 15.0, 10.0])
    assert lungs["bbox_max_mm"] == pytest.approx([133.5, 73.5, 107.5])
    assert lungs["centroid_mm"] == pytest.approx([74.25, 44.25, 58.75])


def test_lesion_order_and_counts(report: dict[str, Any]) -> None:
    n_a = int(ball_a().sum())
    # A ball of radius 6 mm is 905 mm^3 = 160.8 voxels; its digital version has 165.
    assert n_a == 165
    counts = [(les["id"], les["voxel_count"]) for les in report["lesions"]]
    assert counts == [("L1", 448), ("L2", n_a), ("L3", 100), ("L4", 64)]
    assert report["totals"]["lesion_count"] == 4
    total = (448 + n_a + 100 + 64) * VOX_MM3 / 1000
    assert report["totals"]["tumor_volume_ml"] == pytest.approx(total, abs=1e-4)


def test_straddling_lesion(report: dict[str, Any]) -> None:
    c = by_id(report)["L1"]
    assert c["side"] == "left"
    assert c["lung_fractions"] == pytest.approx({"right": 48 / 448, "left": 240 / 448}, abs=1e-4)
    assert c["fraction_in_lung"] == pytest.approx(288 / 448, abs=1e-4)
    assert c["zone"] == "middle"
    assert c["pleural_contact"] is True
    assert c["distance_to_pleura_mm"] == 0.0
    # 42 x 6 mm in plane: outline diagonal sqrt(42^2 + 4.5^2); 3D adds 10 - 2.5 mm in z.
    assert c["recist_diameter_mm"] == pytest.approx(math.hypot(42.0, 4.5), abs=0.01)
    assert c["max_diameter_mm"] == pytest.approx(
        max(math.sqrt(42.0**2 + 4.5**2 + 7.5**2), math.sqrt(40.5**2 + 4.5**2 + 10.0**2)),
        abs=0.01,
    )


def test_lesion_inside_the_lung_away_from_the_pleura(report: dict[str, Any]) -> None:
    a = by_id(report)["L2"]
    assert a["side"] == "right"
    assert a["zone"] == "upper"
    assert a["fraction_in_lung"] == 1.0
    assert a["pleural_contact"] is False
    assert a["distance_to_pleura_mm"] == pytest.approx(10.0)
    assert a["centroid_mm"] == pytest.approx([108.0, 45.0, 92.5], abs=1e-3)


def test_lesion_against_the_chest_wall(report: dict[str, Any]) -> None:
    b = by_id(report)["L3"]
    assert (b["side"], b["zone"]) == ("left", "lower")
    assert b["pleural_contact"] is True
    assert b["distance_to_pleura_mm"] == 0.0
    assert b["fraction_in_lung"] == 1.0


def test_lesion_outside_the_lungs(report: dict[str, Any]) -> None:
    d = by_id(report)["L4"]
    assert d["side"] == "outside_lungs"
    assert d["fraction_in_lung"] == 0.0
    assert d["zone"] is None
    assert "inside the lungs" in d["null_reasons"]["zone"]
    # For a lesion outside the lungs the distance is to the nearest lung voxel.
    assert d["distance_to_pleura_mm"] == pytest.approx(4.5)
    assert d["pleural_contact"] is False


def test_totals(report: dict[str, Any]) -> None:
    tot = report["totals"]
    n_a = 165
    assert tot["lesions_per_side"] == {"right": 1, "left": 2, "outside_lungs": 1}
    assert tot["lesions_per_zone"] == {"upper": 1, "middle": 1, "lower": 1}
    assert tot["lesions_per_lung_zone"] == {
        "right": {"upper": 1, "middle": 0, "lower": 0},
        "left": {"upper": 0, "middle": 1, "lower": 1},
    }
    in_right, in_left = n_a + 48, 100 + 240
    assert tot["tumor_volume_in_lungs_ml"] == pytest.approx(
        (in_right + in_left) * VOX_MM3 / 1000, abs=1e-4
    )
    assert tot["lung_involvement_pct"]["right"] == pytest.approx(100 * in_right / 56000, abs=1e-4)
    assert tot["lung_involvement_pct"]["left"] == pytest.approx(100 * in_left / 56000, abs=1e-4)
    assert tot["lung_involvement_pct"]["total"] == pytest.approx(
        100 * (in_right + in_left) / 112000, abs=1e-4
    )
    assert tot["bilateral"] is True


def test_recist_targets(report: dict[str, Any]) -> None:
    les = by_id(report)
    tot = report["totals"]
    # B (5 x 5 pixels: 9.6 mm) and D (7.5 mm) are below 10 mm; C and A are lung targets.
    assert les["L3"]["recist_diameter_mm"] == pytest.approx(math.hypot(7.5, 6.0), abs=0.01)
    assert [t["id"] for t in tot["recist_targets"]] == ["L1", "L2"]
    assert {t["organ"] for t in tot["recist_targets"]} == {"lung"}
    assert tot["recist_non_targets"] == ["L3", "L4"]
    assert tot["sum_of_diameters_mm"] == pytest.approx(
        les["L1"]["recist_diameter_mm"] + les["L2"]["recist_diameter_mm"], abs=1e-6
    )
    assert abs(les["L2"]["recist_diameter_mm"] - 12.0) <= 1.5


def test_t_descriptor_on_the_phantom(report: dict[str, Any]) -> None:
    td = report["t_descriptor"]
    assert td["primary_lesion_id"] == "L1"
    assert td["size_category"] == "T2b"  # about 43 mm
    assert td["estimate"] == "T4"  # B is in another zone of the same (left) lung
    assert td["m_estimate"] == "M1a"  # A is in the right lung
    relations = {n["id"]: n["relation"] for n in td["separate_nodules"]}
    assert relations == {"L2": "other_lung", "L3": "different_ipsilateral_lobe"}
    assert "AJCC 8th" in td["edition"]
    assert "not a clinical" in td["basis"]
    assert "T4" in td["rule"] and "M1a" in td["rule"] and "L3" in td["rule"]
    caveats = " ".join(td["caveats"])
    assert "zones" in caveats and "L4" in caveats and "L1 abuts the pleura (0.0 mm" in caveats


def test_lobe_map_gives_lobes_lungs_and_real_lobe_rules() -> None:
    lungs = lungs_array()
    lobes = np.zeros(SHAPE, dtype=np.uint8)
    k = np.arange(SHAPE[2])[None, None, :]
    lobes[lungs == 2] = np.where(np.broadcast_to(k, SHAPE) >= 24, 1, 2)[lungs == 2]
    right = np.where(k >= 30, 3, np.where(k >= 18, 4, 5))
    lobes[lungs == 1] = np.broadcast_to(right, SHAPE)[lungs == 1]
    report = spread_report(vol(tumor_array()), lobes=vol(lobes))
    les = by_id(report)
    assert report["lungs"]["right_ml"] == pytest.approx(315.0)
    assert report["inputs_used"]["lungs"] == "derived from the lobe map"
    assert (les["L1"]["lobe"], les["L2"]["lobe"], les["L3"]["lobe"]) == (
        "left_lower",
        "right_upper",
        "left_lower",
    )
    assert les["L4"]["lobe"] is None and "lobe" in les["L4"]["null_reasons"]
    td = report["t_descriptor"]
    # B is now in the same lobe as C: T3 (not T4); A in the other lung: M1a.
    assert (td["estimate"], td["m_estimate"]) == ("T3", "M1a")
    assert td["lobe_basis"] == "lobe map"


def test_zone_map_given_is_used() -> None:
    zones = np.zeros(SHAPE, dtype=np.uint8)
    zones[lungs_array() > 0] = 3  # everything "lower"
    report = spread_report(vol(tumor_array()), lungs=vol(lungs_array()), zones=vol(zones))
    assert {les["zone"] for les in report["lesions"] if les["side"] != "outside_lungs"} == {"lower"}
    assert report["inputs_used"]["zones"] == "given"


def test_ct_gives_mean_hu_and_solid_fraction() -> None:
    lungs = lungs_array()
    ct = np.where(lungs > 0, -850, 40).astype(np.int16)
    a = ball_a()
    k = np.broadcast_to(np.arange(SHAPE[2])[None, None, :], SHAPE)
    ct[a & (k <= 37)] = 20  # solid part
    ct[a & (k > 37)] = -600  # ground glass
    n_solid, n_ggo = int((a & (k <= 37)).sum()), int((a & (k > 37)).sum())
    report = spread_report(vol(tumor_array()), ct=vol(ct), lungs=vol(lungs))
    les = by_id(report)["L2"]
    assert les["mean_hu"] == pytest.approx(
        (20 * n_solid - 600 * n_ggo) / (n_solid + n_ggo), abs=0.05
    )
    assert les["solid_fraction"] == pytest.approx(n_solid / (n_solid + n_ggo), abs=1e-4)
    # Threshold is a parameter: at 30 HU nothing is solid.
    report2 = spread_report(vol(tumor_array()), ct=vol(ct), lungs=vol(lungs), solid_threshold_hu=30)
    assert by_id(report2)["L2"]["solid_fraction"] == 0.0
    assert report2["settings"]["solid_threshold_hu"] == 30


def _assert_every_null_has_a_reason(report: dict[str, Any]) -> None:
    reasons = report["null_reasons"]
    if any(v is None for v in report["lungs"].values()):
        assert "lungs" in reasons
    for key, value in report["totals"].items():
        if value is None:
            assert f"totals.{key}" in reasons, key
    for les in report["lesions"]:
        for key, value in les.items():
            if value is None:
                assert key in les["null_reasons"], (les["id"], key)
    td = report["t_descriptor"]
    for key, value in td.items():
        if value is None:
            assert key in td["null_reasons"], key


def test_mask_only_keeps_geometry_and_explains_every_null() -> None:
    report = spread_report(vol(tumor_array()))
    les = by_id(report)
    assert les["L1"]["volume_ml"] == pytest.approx(448 * VOX_MM3 / 1000, abs=1e-4)
    assert les["L1"]["recist_diameter_mm"] == pytest.approx(math.hypot(42.0, 4.5), abs=0.01)
    for key in ("side", "zone", "pleural_contact", "distance_to_pleura_mm", "mean_hu"):
        assert les["L1"][key] is None
    assert les["L1"]["null_reasons"]["mean_hu"] == "no CT given"
    assert "no lung mask" in les["L1"]["null_reasons"]["side"]
    assert report["lungs"] == {"right_ml": None, "left_ml": None, "total_ml": None}
    assert report["totals"]["lung_involvement_pct"] is None
    _assert_every_null_has_a_reason(report)
    # Without lungs every lesion counts as lung for RECIST: at most 2 targets (one organ).
    assert [t["id"] for t in report["totals"]["recist_targets"]] == ["L1", "L2"]
    td = report["t_descriptor"]
    assert td["estimate"] == "T2b" and td["separate_nodules"] == []
    assert any("no lung mask" in c for c in td["caveats"])


@pytest.mark.parametrize(
    ("gap_voxels", "axis", "gap_mm", "contact"),
    [
        (0, 0, 0.0, True),
        (1, 0, 0.7, True),
        (2, 0, 1.4, True),
        (3, 0, 2.1, False),
        (1, 2, 2.5, False),
    ],
)
def test_pleural_gap_and_contact_tolerance(
    gap_voxels: int, axis: int, gap_mm: float, contact: bool
) -> None:
    """A 3-voxel cube with ``gap_voxels`` lung voxels between it and the lung's edge, at
    0.7 x 0.7 x 2.5 mm: the gap is that many voxel lengths; contact up to 1.5 mm."""
    lung = np.zeros((30, 30, 30), dtype=np.uint8)
    lung[5:25, 5:25, 5:25] = 1
    tumor = np.zeros_like(lung)
    lo = [12, 12, 12]
    lo[axis] = 5 + gap_voxels  # the lung's first voxel along ``axis`` is 5
    tumor[lo[0] : lo[0] + 3, lo[1] : lo[1] + 3, lo[2] : lo[2] + 3] = 1
    aniso = (0.7, 0.7, 2.5)
    report = spread_report(
        Volume.from_spacing(tumor, aniso), lungs=Volume.from_spacing(lung, aniso)
    )
    les = report["lesions"][0]
    assert les["distance_to_pleura_mm"] == pytest.approx(gap_mm)
    assert les["pleural_contact"] is contact
    assert report["settings"]["pleural_contact_mm"] == 1.5


def test_full_report_explains_every_null(report: dict[str, Any]) -> None:
    _assert_every_null_has_a_reason(report)
    assert report["coordinate_system"] == "RAS"
    assert set(report) >= {"lungs", "lesions", "totals", "t_descriptor", "units", "notes"}
    # Plain JSON types only (no numpy scalars, no NaN): json.dumps works as is.
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_oblique_grid_gives_the_same_answers(report: dict[str, Any]) -> None:
    """The phantom on a grid tilted 8 degrees about x and turned 20 degrees about z (RAS).

    Every measure is computed in world millimetres, and the grid's rotation moves the whole
    chest with it, so volumes, distances and diameters must not change; sides come from the
    lung labels, zones from world z of the tilted lungs.
    """
    c, s = math.cos(math.radians(8)), math.sin(math.radians(8))
    cz, sz = math.cos(math.radians(20)), math.sin(math.radians(20))
    rot = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1.0]]) @ np.array(
        [[1.0, 0, 0], [0, c, -s], [0, s, c]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(SPACING)
    aff[:3, 3] = (-60.0, 20.0, -140.0)
    tilted = spread_report(Volume(tumor_array(), aff), lungs=Volume(lungs_array(), aff))
    assert tilted["image"]["oblique"] is True
    assert tilted["lungs"]["right_ml"] == pytest.approx(report["lungs"]["right_ml"])
    for a, b in zip(report["lesions"], tilted["lesions"], strict=True):
        for key in ("volume_ml", "recist_diameter_mm", "short_axis_mm", "max_diameter_mm"):
            assert b[key] == pytest.approx(a[key], abs=0.02), (a["id"], key)
        assert b["surface_area_mm2"] == pytest.approx(a["surface_area_mm2"], rel=1e-6)
        assert b["distance_to_pleura_mm"] == pytest.approx(a["distance_to_pleura_mm"])
        assert (b["side"], b["zone"], b["fraction_in_lung"]) == (
            a["side"],
            a["zone"],
            a["fraction_in_lung"],
        )
    a_centroid = np.array(tilted["lesions"][1]["centroid_mm"])
    assert a_centroid == pytest.approx(rot @ np.array([108.0, 45.0, 92.5]) + aff[:3, 3], abs=1e-3)


def test_binary_lung_mask_is_split_at_its_centroid() -> None:
    binary = (lungs_array() > 0).astype(np.uint8)
    report = spread_report(vol(tumor_array()), lungs=vol(binary))
    assert report["lungs"]["right_ml"] == pytest.approx(315.0)
    assert report["lungs"]["left_ml"] == pytest.approx(315.0)
    assert any("only label 1" in n for n in report["notes"])
    assert by_id(report)["L2"]["side"] == "right"


def test_grid_mismatch_is_a_geometry_error_naming_both_grids() -> None:
    tumor = vol(tumor_array(), source="tumor.nii.gz")
    small = Volume.from_spacing(
        np.zeros((50, 60, 48), np.int16), SPACING, meta={"source": "ct.nii.gz"}
    )
    with pytest.raises(GeometryError) as exc:
        spread_report(tumor, ct=small)
    msg = str(exc.value)
    assert "(50, 60, 48)" in msg and "(100, 60, 48)" in msg and "1.5x1.5x2.5" in msg
    assert "\n" not in msg
    shifted = Volume.from_spacing(lungs_array(), (1.5, 1.5, 3.0))
    with pytest.raises(GeometryError, match="lung mask"):
        spread_report(tumor, lungs=shifted)


def test_bad_lung_labels_are_refused() -> None:
    lungs = lungs_array()
    lungs[0, 0, 0] = 5
    with pytest.raises(InputError, match="--lobes"):
        spread_report(vol(tumor_array()), lungs=vol(lungs))


def test_ct_without_lungs_segments_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import lungspread.lungs

    calls: list[Volume] = []

    def fake_segment(ct: Volume) -> Volume:
        calls.append(ct)
        return ct.with_array(lungs_array())

    monkeypatch.setattr(lungspread.lungs, "segment_lungs", fake_segment, raising=False)
    ct = vol(np.where(lungs_array() > 0, -850, 40).astype(np.int16))
    report, lung_map = compute_spread(vol(tumor_array()), ct=ct)
    assert len(calls) == 1
    assert report["inputs_used"]["lungs"].startswith("segmented from the CT")
    assert lung_map is not None and np.array_equal(lung_map.array, lungs_array())
    assert by_id(report)["L2"]["side"] == "right"


def test_ct_without_lung_segmentation_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lungspread.lungs", None)  # import fails
    ct = vol(np.full(SHAPE, -850, dtype=np.int16))
    report = spread_report(vol(tumor_array()), ct=ct)
    assert report["lungs"]["total_ml"] is None
    assert "unavailable" in report["null_reasons"]["lungs"]
    assert by_id(report)["L1"]["mean_hu"] == -850.0


# -- RECIST target selection and T-descriptor rules on lesion entries -------------------------


def _les(i: int, d: float, side: str | None = "right", zone: str | None = "upper", **kw: Any):
    return {
        "id": f"L{i}",
        "recist_diameter_mm": d,
        "max_diameter_mm": d,
        "side": side,
        "zone": zone,
        **kw,
    }


def test_recist_at_most_two_per_organ_and_five_in_all() -> None:
    lesions = [
        _les(1, 50, "right"),
        _les(2, 40, "left"),  # both lungs are one organ
        _les(3, 35, "right"),
        _les(4, 30, "outside_lungs"),
        _les(5, 25, "outside_lungs"),
        _les(6, 20, "outside_lungs"),
        _les(7, 9.9, "left"),
    ]
    sel = select_targets(lesions, slice_spacing_mm=2.5)
    assert [t["id"] for t in sel["recist_targets"]] == ["L1", "L2", "L4", "L5"]
    assert sel["sum_of_diameters_mm"] == pytest.approx(50 + 40 + 30 + 25)
    assert sel["recist_non_targets"] == ["L3", "L6", "L7"]


def test_recist_measurable_size_follows_slice_thickness() -> None:
    assert measurable_min_mm(2.5) == 10.0
    assert measurable_min_mm(5.0) == 10.0
    assert measurable_min_mm(7.0) == 14.0
    sel = select_targets([_les(1, 12.0)], slice_spacing_mm=7.0)
    assert sel["recist_targets"] == [] and sel["recist_measurable_min_mm"] == 14.0


@pytest.mark.parametrize(
    ("mm", "cat"),
    [
        (5, "T1a"),
        (10, "T1a"),
        (10.01, "T1b"),
        (20, "T1b"),
        (25, "T1c"),
        (30, "T1c"),
        (35, "T2a"),
        (40, "T2a"),
        (45, "T2b"),
        (50, "T2b"),
        (60, "T3"),
        (70, "T3"),
        (70.5, "T4"),
    ],
)
def test_t_size_bins(mm: float, cat: str) -> None:
    assert size_category(mm) == cat


def test_t_separate_nodule_rules() -> None:
    primary = _les(1, 25.0, "right", "upper")
    same = t_descriptor([primary, _les(2, 8.0, "right", "upper")], True, False)
    assert (same["estimate"], same["m_estimate"]) == ("T3", None)
    other_lobe = t_descriptor([primary, _les(2, 8.0, "right", "lower")], True, False)
    assert other_lobe["estimate"] == "T4"
    other_lung = t_descriptor([primary, _les(2, 8.0, "left", "upper")], True, False)
    assert (other_lung["estimate"], other_lung["m_estimate"]) == ("T1c", "M1a")
    alone = t_descriptor([primary], True, False)
    assert (
        alone["estimate"] == "T1c" and "no separate nodule" in alone["null_reasons"]["m_estimate"]
    )
    # The primary is the largest lesion inside the lungs, not the first in the list.
    outside_big = t_descriptor([_les(1, 80.0, "outside_lungs", None), _les(2, 15.0)], True, False)
    assert (outside_big["primary_lesion_id"], outside_big["estimate"]) == ("L2", "T1b")
    none_inside = t_descriptor([_les(1, 30.0, "outside_lungs", None)], True, False)
    assert none_inside["estimate"] is None and "estimate" in none_inside["null_reasons"]
    ggo = t_descriptor([_les(1, 25.0, solid_fraction=0.1)], True, False)
    assert any("non-solid" in c for c in ggo["caveats"])


def test_t_small_separate_nodules_are_listed_not_counted() -> None:
    primary = _les(1, 25.0, "right", "upper")
    specks = [_les(2, 4.0, "left", "upper"), _les(3, 5.9, "right", "lower")]
    td = t_descriptor([primary, *specks], True, False)
    # Neither the 4 mm speck in the other lung (M1a) nor the 5.9 mm one in another lobe (T4)
    # changes the size estimate of the 25 mm primary.
    assert (td["estimate"], td["m_estimate"]) == ("T1c", None)
    assert [(n["id"], n["descriptor"], n["counted"]) for n in td["separate_nodules"]] == [
        ("L2", "M1a", False),
        ("L3", "T4", False),
    ]
    assert td["min_separate_nodule_mm"] == 6.0
    assert "2 separate nodule(s) under 6 mm not counted" in td["rule"]
    assert any("L2 4.0 mm, L3 5.9 mm" in c for c in td["caveats"])
    assert "at least 6 mm in the other lung" in td["null_reasons"]["m_estimate"]
    # At the limit a nodule counts; with 0 every nodule counts.
    at_limit = t_descriptor([primary, _les(2, 6.0, "left", "upper")], True, False)
    assert at_limit["m_estimate"] == "M1a" and at_limit["separate_nodules"][0]["counted"]
    every = t_descriptor([primary, *specks], True, False, min_separate_nodule_mm=0.0)
    assert (every["estimate"], every["m_estimate"]) == ("T4", "M1a")
    assert not any("not counted" in c for c in every["caveats"])
    assert "separate nodules are assumed to be tumor; a benign one" in " ".join(every["caveats"])
    assert "separate nodules of 6 mm or more are assumed" in " ".join(td["caveats"])
    with pytest.raises(ValueError, match="min_separate_nodule_mm"):
        t_descriptor([primary], True, False, min_separate_nodule_mm=-1.0)


def test_lesions_at_the_image_edge_are_flagged_as_lower_bounds() -> None:
    tumor = np.zeros(SHAPE, np.uint8)
    tumor[60:80, 20:40, 30:48] = 1  # 20 x 20 x 18 voxels, cut by the last slice (axis 2)
    tumor[20:24, 20:24, 20:24] = 1  # inside the image
    tumor[0:3, 50:60, 0:2] = 1  # at the first index of axes 0 and 2, the last of axis 1
    rep = spread_report(vol(tumor), lungs=vol(lungs_array()))
    edges = {e["id"]: (e["touches_image_edge"], e["image_edges"]) for e in rep["lesions"]}
    assert edges == {
        "L1": (True, ["axis 2 last"]),
        "L2": (False, []),
        "L3": (True, ["axis 0 first", "axis 1 last", "axis 2 first"]),
    }
    note = next(n for n in rep["notes"] if "edge of the image" in n)
    assert "2 lesion(s)" in note and "L1: axis 2 last" in note and "axis 2 is the slice" in note
    assert "lower bounds" in note
    # the primary (L1, the largest diameter) is cut by the scan: the estimate may be too low
    assert any("L1 reaches the edge of the image" in c for c in rep["t_descriptor"]["caveats"])
    inside = spread_report(vol(_inner()))
    assert inside["lesions"][0]["touches_image_edge"] is False
    assert not any("edge of the image" in n for n in inside["notes"])
    assert not any("edge of the image" in c for c in inside["t_descriptor"]["caveats"])


def _inner() -> np.ndarray:
    t = np.zeros(SHAPE, np.uint8)
    t[40:50, 20:30, 10:20] = 1
    return t


def test_recist_response_thresholds_by_hand() -> None:
    assert target_response(100.0, 0.0, 2) == "CR"
    assert target_response(100.0, 70.0, 2) == "PR"  # exactly -30 %
    assert target_response(100.0, 70.1, 2) == "SD"
    assert target_response(100.0, 120.0, 2) == "PD"  # exactly +20 % and +20 mm
    assert target_response(100.0, 119.9, 2) == "SD"
    assert target_response(20.0, 24.5, 1) == "SD"  # +22.5 % but only +4.5 mm
    assert target_response(20.0, 25.0, 1) == "PD"  # +25 % and +5 mm
    assert target_response(0.0, 0.0, 0) == "NE"

"""Follow-up: lesion matching after lung alignment and the RECIST 1.1 response, one case each.

Phantom: 80 x 60 x 40 voxels of 0.8 x 0.8 x 2.0 mm; right lung i 44-71, left lung i 8-35,
both j 10-49, k 3-36. Baseline: target T, a ball of radius 10 mm (diameter about 20 mm) in the
right lung, and N, a ball of radius 3 mm (below RECIST's 10 mm, so a non-target) in the left
lung. Follow-up scans are taken with the table moved (origin shifted by SHIFT mm): the lungs
move with the patient, so only the alignment on the lungs can pair the lesions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lungspread.errors import InputError
from lungspread.spread import follow_up, load_report, spread_report
from lungspread.volume import Volume

SPACING = (0.8, 0.8, 2.0)
SHAPE = (80, 60, 40)
T_CENTRE = (46.0, 24.0, 40.0)  # mm in the baseline scan (i 57.5, j 30, k 20)
N_CENTRE = (17.0, 22.0, 30.0)
SHIFT = np.array([12.0, -7.0, 30.0])


def lungs() -> np.ndarray:
    out = np.zeros(SHAPE, dtype=np.uint8)
    out[44:72, 10:50, 3:37] = 1
    out[8:36, 10:50, 3:37] = 2
    return out


def balls(spacing: tuple[float, float, float], items: list[tuple[tuple[float, ...], float]]):
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    world = idx * np.array(spacing)
    out = np.zeros(SHAPE, dtype=np.uint8)
    for centre, r in items:
        out[((world - np.array(centre)) ** 2).sum(-1) <= r * r] = 1
    return out


def scan(
    items: list[tuple[tuple[float, ...], float]],
    origin: np.ndarray | None = None,
    spacing: tuple[float, float, float] = SPACING,
) -> tuple[Volume, Volume]:
    """Tumor and lung volumes; lesion centres are given in the scan's own index-mm frame."""
    o = np.zeros(3) if origin is None else origin
    tumor = Volume.from_spacing(balls(spacing, items), spacing, o)
    return tumor, Volume.from_spacing(lungs(), spacing, o)


def report_of(items, origin=None, spacing=SPACING) -> dict[str, Any]:
    tumor, lung = scan(items, origin, spacing)
    return spread_report(tumor, lungs=lung)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    rep = report_of([(T_CENTRE, 10.0), (N_CENTRE, 3.0)])
    assert [t["id"] for t in rep["totals"]["recist_targets"]] == ["L1"]
    assert rep["totals"]["recist_non_targets"] == ["L2"]
    assert abs(rep["totals"]["sum_of_diameters_mm"] - 20.0) <= 0.8 + 1e-6  # one voxel
    return rep


def test_stable_disease_after_a_table_shift(baseline: dict[str, Any]) -> None:
    fu = report_of([(T_CENTRE, 10.0), (N_CENTRE, 3.0)], origin=SHIFT)
    res = follow_up(baseline, fu)
    assert res["alignment"]["translation_mm"] == pytest.approx((-SHIFT).tolist(), abs=1e-3)
    assert res["alignment"]["scale"] == pytest.approx([1, 1, 1])
    pairs = {(m["baseline_id"], m["followup_id"]) for m in res["matches"]}
    assert pairs == {("L1", "L1"), ("L2", "L2")}
    for m in res["matches"]:
        assert m["distance_after_alignment_mm"] == pytest.approx(0.0, abs=1e-3)
        assert m["volume_change_pct"] == 0.0 and m["recist_diameter_change_mm"] == 0.0
    assert res["new_lesions"] == [] and res["disappeared_lesions"] == []
    assert res["recist"]["target_response"] == "SD"
    assert res["response"] == "SD"


def test_partial_response(baseline: dict[str, Any]) -> None:
    fu = report_of([(T_CENTRE, 6.5), (N_CENTRE, 3.0)], origin=SHIFT)
    res = follow_up(baseline, fu)
    rec = res["recist"]
    assert rec["sum_change_pct"] <= -30.0  # 20 mm -> 13 mm
    assert (rec["target_response"], res["response"]) == ("PR", "PR")
    m = next(m for m in res["matches"] if m["baseline_id"] == "L1")
    # Volume ratio (6.5 / 10)^3 = 0.275 -> about -72.5 %, within the digitization of balls.
    assert m["volume_change_pct"] == pytest.approx(-72.5, abs=3.0)
    assert m["recist_diameter_change_mm"] == pytest.approx(-7.0, abs=1.6)


def test_complete_response(baseline: dict[str, Any]) -> None:
    fu = report_of([], origin=SHIFT)
    res = follow_up(baseline, fu)
    assert res["recist"]["followup_sum_mm"] == 0.0
    assert (res["recist"]["target_response"], res["response"]) == ("CR", "CR")
    assert [d["id"] for d in res["disappeared_lesions"]] == ["L1", "L2"]


def test_targets_gone_but_non_target_left_is_pr_overall(baseline: dict[str, Any]) -> None:
    fu = report_of([(N_CENTRE, 3.0)], origin=SHIFT)
    res = follow_up(baseline, fu)
    assert res["recist"]["target_response"] == "CR"
    assert res["response"] == "PR"
    assert "non-target" in res["recist"]["rule"]


def test_progression_by_growth(baseline: dict[str, Any]) -> None:
    fu = report_of([(T_CENTRE, 13.0), (N_CENTRE, 3.0)], origin=SHIFT)
    res = follow_up(baseline, fu)
    rec = res["recist"]
    assert rec["sum_change_pct"] >= 20.0 and rec["sum_change_mm"] >= 5.0  # 20 -> 26 mm
    assert (rec["target_response"], res["response"]) == ("PD", "PD")
    assert res["new_lesions"] == []


def test_progression_by_a_new_lesion(baseline: dict[str, Any]) -> None:
    new_centre = (17.0, 22.0, 60.0)  # left lung, 30 mm above N
    fu = report_of([(T_CENTRE, 10.0), (N_CENTRE, 3.0), (new_centre, 4.0)], origin=SHIFT)
    res = follow_up(baseline, fu)
    assert res["recist"]["target_response"] == "SD"
    assert res["response"] == "PD"
    assert len(res["new_lesions"]) == 1
    new = res["new_lesions"][0]
    assert new["side"] == "left"
    assert np.array(new["centroid_mm"]) - SHIFT == pytest.approx(new_centre, abs=0.5)
    assert res["recist"]["new_lesion_ids"] == [new["id"]]


def test_lung_scaling_is_undone() -> None:
    """Follow-up slices 2.4 mm apart instead of 2.0: in world space the chest is 20 % taller."""
    items = [(T_CENTRE, 10.0), ((46.0, 24.0, 60.0), 4.0)]
    base = report_of(items)
    stretched = [((46.0, 24.0, 40.0 * 1.2), 10.0), ((46.0, 24.0, 60.0 * 1.2), 4.0)]
    fu = report_of(stretched, origin=SHIFT, spacing=(0.8, 0.8, 2.4))
    res = follow_up(base, fu)
    assert res["alignment"]["scale"] == pytest.approx([1.0, 1.0, 1 / 1.2], abs=1e-5)
    assert {(m["baseline_id"], m["followup_id"]) for m in res["matches"]} == {
        ("L1", "L1"),
        ("L2", "L2"),
    }
    assert max(m["distance_after_alignment_mm"] for m in res["matches"]) < 1.5


def test_far_lesions_do_not_match() -> None:
    base = report_of([(T_CENTRE, 4.0)])
    fu = report_of([((46.0, 24.0, 10.0), 4.0)])  # 30 mm lower: gate is 10 + 8 = 18 mm
    res = follow_up(base, fu)
    assert res["matches"] == []
    assert len(res["new_lesions"]) == 1 and len(res["disappeared_lesions"]) == 1
    assert res["response"] == "PD"


def test_overlapping_masks_match_even_beyond_the_gate(baseline: dict[str, Any]) -> None:
    b_tumor, _b_lungs = scan([(T_CENTRE, 10.0), (N_CENTRE, 3.0)])
    f_tumor, f_lungs = scan([(T_CENTRE, 10.0), (N_CENTRE, 3.0)], origin=SHIFT)
    fu = spread_report(f_tumor, lungs=f_lungs)
    # A negative margin closes the distance gate: only overlap can pair lesions now.
    assert follow_up(baseline, fu, gate_margin_mm=-1000)["matches"] == []
    res = follow_up(baseline, fu, b_tumor, f_tumor, gate_margin_mm=-1000)
    assert {(m["baseline_id"], m["followup_id"]) for m in res["matches"]} == {
        ("L1", "L1"),
        ("L2", "L2"),
    }
    assert all(m["overlap_fraction"] == pytest.approx(1.0) for m in res["matches"])


def test_lung_volumes_replace_report_geometry(baseline: dict[str, Any]) -> None:
    fu = report_of([(T_CENTRE, 10.0), (N_CENTRE, 3.0)], origin=SHIFT)
    stripped_b = {**baseline, "lungs": {"right_ml": None, "left_ml": None, "total_ml": None}}
    stripped_f = {**fu, "lungs": {"right_ml": None, "left_ml": None, "total_ml": None}}
    res = follow_up(stripped_b, stripped_f)
    assert res["alignment"]["method"].startswith("none")
    assert any("not aligned" in n for n in res["notes"])
    assert res["matches"] == []  # 33 mm apart in raw RAS
    _, b_lungs = scan([])
    _, f_lungs = scan([], origin=SHIFT)
    res2 = follow_up(stripped_b, stripped_f, baseline_lungs=b_lungs, followup_lungs=f_lungs)
    assert len(res2["matches"]) == 2


def test_load_report_from_folder_and_errors(tmp_path: Path, baseline: dict[str, Any]) -> None:
    (tmp_path / "report.json").write_text(json.dumps(baseline))
    assert load_report(tmp_path)["lesions"][0]["id"] == "L1"
    assert load_report(tmp_path / "report.json") == json.loads(json.dumps(baseline))
    with pytest.raises(InputError, match=r"report\.json"):
        load_report(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        load_report(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not a spread report"):
        load_report({"foo": 1})

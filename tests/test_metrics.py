"""lungspread.metrics against hand-computed values, a brute-force reference and MONAI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lungspread.errors import GeometryError
from lungspread.metrics import (
    aggregate,
    assd_mm,
    case_metrics,
    dice,
    false_positive_rate,
    hd95_mm,
    iou,
    lesion_counts,
    nsd,
    precision,
    sensitivity,
    surface_distances,
)
from lungspread.outputs import write_json


def cubes(
    shift: int, axis: int, shape: tuple[int, int, int] = (40, 40, 40)
) -> tuple[np.ndarray, np.ndarray]:
    """Truth: a 10-voxel cube at [10:20]^3; prediction: the cube moved ``shift`` along ``axis``."""
    truth = np.zeros(shape, bool)
    truth[10:20, 10:20, 10:20] = True
    pred = np.roll(truth, shift, axis=axis)
    return pred, truth


def brute_surface_distances(
    pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: surface = voxel with a 6-neighbour outside the mask (or the array
    border); distances by brute force over all surface-voxel pairs."""

    def surface(m: np.ndarray) -> np.ndarray:
        pad = np.pad(m, 1)
        inner = np.ones_like(m)
        for ax in range(m.ndim):
            for d in (-1, 1):
                inner &= np.roll(pad, d, axis=ax)[tuple(slice(1, -1) for _ in range(m.ndim))]
        return np.argwhere(m & ~inner) * np.asarray(spacing)

    sp, st = surface(pred), surface(truth)
    d = np.sqrt(((sp[:, None, :] - st[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1), d.min(axis=0)


# -- overlap -------------------------------------------------------------------------------
def test_overlap_metrics_hand_values() -> None:
    pred, truth = cubes(2, axis=0)  # overlap 8x10x10 = 800 of 1000 each
    assert dice(pred, truth) == pytest.approx(0.8)
    assert iou(pred, truth) == pytest.approx(800 / 1200)
    assert sensitivity(pred, truth) == pytest.approx(0.8)
    assert precision(pred, truth) == pytest.approx(0.8)
    assert false_positive_rate(pred, truth) == pytest.approx(200 / (40**3 - 1000))


def test_undefined_overlap_is_nan_not_zero() -> None:
    empty = np.zeros((5, 5, 5), bool)
    one = empty.copy()
    one[2, 2, 2] = True
    assert math.isnan(dice(empty, empty))
    assert math.isnan(iou(empty, empty))
    assert dice(empty, one) == 0.0  # defined: one side empty
    assert math.isnan(sensitivity(one, empty))
    assert math.isnan(precision(empty, one))
    assert math.isnan(false_positive_rate(np.ones((2, 2, 2), bool), np.ones((2, 2, 2), bool)))


def test_shape_and_spacing_errors() -> None:
    with pytest.raises(GeometryError, match=r"prediction shape \(2, 2, 2\) differs"):
        dice(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    with pytest.raises(GeometryError, match="spacing"):
        hd95_mm(np.ones((2, 2, 2)), np.ones((2, 2, 2)), (1.0, 1.0))
    with pytest.raises(GeometryError, match="positive"):
        hd95_mm(np.ones((2, 2, 2)), np.ones((2, 2, 2)), (1.0, 0.0, 1.0))


# -- surface distances -----------------------------------------------------------------------
@pytest.mark.parametrize(("axis", "expected"), [(0, 4.0), (1, 2.0), (2, 1.0)])
def test_hd95_shifted_cubes_anisotropic(axis: int, expected: float) -> None:
    # Shift of 2 voxels; spacing (2, 1, 0.5) mm: the far face is 2 voxels = 4 / 2 / 1 mm from
    # the other cube's surface and nothing is farther; 100 of the 488 surface voxels lie there
    # (> 5 %), so the 95th percentile is that maximum.
    pred, truth = cubes(2, axis)
    assert hd95_mm(pred, truth, (2.0, 1.0, 0.5)) == pytest.approx(expected)


def test_identical_masks_have_zero_distance_and_full_nsd() -> None:
    pred, truth = cubes(0, 0)
    assert hd95_mm(pred, truth, (1.0, 1.0, 1.0)) == 0.0
    assert assd_mm(pred, truth, (1.0, 1.0, 1.0)) == 0.0
    assert nsd(pred, truth, (1.0, 1.0, 1.0)) == 1.0


def test_nsd_hand_values() -> None:
    # One-voxel shift along a 2 mm axis: every surface distance is 0 or 2 mm.
    pred, truth = cubes(1, axis=0)
    d_pt, _d_tp = surface_distances(pred, truth, (2.0, 1.0, 1.0))
    assert d_pt.max() == pytest.approx(2.0)
    assert nsd(pred, truth, (2.0, 1.0, 1.0), tolerance_mm=2.0) == 1.0
    # At 1.9 mm only the distances below 2 count: from the brute-force reference.
    b_pt, b_tp = brute_surface_distances(pred, truth, (2.0, 1.0, 1.0))
    expected = ((b_pt <= 1.9).sum() + (b_tp <= 1.9).sum()) / (b_pt.size + b_tp.size)
    assert 0 < expected < 1
    assert nsd(pred, truth, (2.0, 1.0, 1.0), tolerance_mm=1.9) == pytest.approx(expected)


def test_surface_distances_match_brute_force_on_random_blobs() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for trial in range(3):
        a = ndimage.gaussian_filter(rng.random((18, 16, 12)), 2) > 0.52
        b = ndimage.gaussian_filter(rng.random((18, 16, 12)), 2) > 0.52
        a[0, 0, 0] = b[-1, -1, -1] = True  # touch the array border too
        spacing = (0.7, 1.3, 2.5 + trial)
        d_pt, d_tp = surface_distances(a, b, spacing)
        r_pt, r_tp = brute_surface_distances(a, b, spacing)
        np.testing.assert_allclose(np.sort(d_pt), np.sort(r_pt), atol=1e-9)
        np.testing.assert_allclose(np.sort(d_tp), np.sort(r_tp), atol=1e-9)
        assert assd_mm(a, b, spacing) == pytest.approx(np.concatenate([r_pt, r_tp]).mean())
        assert hd95_mm(a, b, spacing) == pytest.approx(
            max(np.percentile(r_pt, 95), np.percentile(r_tp, 95))
        )


def test_surface_metrics_agree_with_monai() -> None:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    from scipy import ndimage

    rng = np.random.default_rng(7)
    a = ndimage.gaussian_filter(rng.random((24, 20, 14)), 2) > 0.51
    b = ndimage.gaussian_filter(rng.random((24, 20, 14)), 2) > 0.51
    spacing = (0.8, 0.8, 2.5)
    ta = torch.from_numpy(a[None, None].astype(np.float32))
    tb = torch.from_numpy(b[None, None].astype(np.float32))
    hd = monai_metrics.compute_hausdorff_distance(
        ta, tb, include_background=True, percentile=95, spacing=spacing
    )
    asd = monai_metrics.compute_average_surface_distance(
        ta, tb, include_background=True, symmetric=True, spacing=spacing
    )
    sd = monai_metrics.compute_surface_dice(
        ta, tb, class_thresholds=[2.0], include_background=True, spacing=spacing
    )
    assert hd95_mm(a, b, spacing) == pytest.approx(float(hd), rel=1e-5)
    assert assd_mm(a, b, spacing) == pytest.approx(float(asd), rel=1e-5)
    assert nsd(a, b, spacing, 2.0) == pytest.approx(float(sd), rel=1e-5)


def test_surface_metrics_2d() -> None:
    truth = np.zeros((30, 30), bool)
    truth[5:15, 5:15] = True
    pred = np.roll(truth, 3, axis=1)
    assert hd95_mm(pred, truth, (1.0, 0.5)) == pytest.approx(1.5)
    assert dice(pred, truth) == pytest.approx(0.7)


# -- lesions ---------------------------------------------------------------------------------
def test_lesion_counts() -> None:
    truth = np.zeros((30, 30, 30), bool)
    truth[2:6, 2:6, 2:6] = True  # lesion A: found
    truth[20:24, 20:24, 20:24] = True  # lesion B: missed
    pred = np.zeros_like(truth)
    pred[3:5, 3:5, 3:5] = True  # hits A
    pred[10:12, 10:12, 10:12] = True  # false positive
    pred[14, 2, 2] = True  # another false positive (single voxel)
    assert lesion_counts(pred, truth, (1, 1, 1)) == (1, 2, 1)
    # single-voxel FP ignored below 2 mm^3
    assert lesion_counts(pred, truth, (1, 1, 1), min_volume_mm3=2) == (1, 1, 1)
    # require > 50 % of a truth lesion covered: 8 of 64 voxels is not enough
    assert lesion_counts(pred, truth, (1, 1, 1), min_overlap=0.5) == (0, 2, 2)


def test_lesion_connectivity() -> None:
    truth = np.zeros((6, 6, 6), bool)
    truth[1, 1, 1] = truth[2, 2, 2] = True  # corner-touching voxels
    pred = np.zeros_like(truth)
    pred[1, 1, 1] = True
    assert lesion_counts(pred, truth, (1, 1, 1), connectivity=26) == (1, 0, 0)
    assert lesion_counts(pred, truth, (1, 1, 1), connectivity=6) == (1, 0, 1)
    with pytest.raises(ValueError, match="connectivity"):
        lesion_counts(pred, truth, (1, 1, 1), connectivity=5)


# -- case_metrics and aggregate ---------------------------------------------------------------
def test_case_metrics_keys_values_and_null_reasons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pred, truth = cubes(2, axis=0)
    m = case_metrics(pred, truth, (2.0, 1.0, 0.5), "c1")
    for key in (
        "case", "dice", "iou", "sensitivity", "precision", "fpr", "hd95_mm", "assd_mm",
        "nsd_2mm", "lesions_tp", "lesions_fp", "lesions_fn", "voxels_tp", "voxels_fp",
        "voxels_fn", "null_reasons",
    ):  # fmt: skip
        assert key in m
    assert m["dice"] == pytest.approx(0.8)
    assert m["hd95_mm"] == pytest.approx(4.0)
    assert (m["voxels_tp"], m["voxels_fp"], m["voxels_fn"]) == (800, 200, 200)
    assert (m["lesions_tp"], m["lesions_fp"], m["lesions_fn"]) == (1, 0, 0)
    assert m["truth_volume_ml"] == pytest.approx(1000 * 1.0 / 1000)
    assert m["null_reasons"] == {}

    empty = np.zeros_like(truth)
    both = case_metrics(empty, empty, (1, 1, 1), "c2")
    assert math.isnan(both["dice"]) and both["null_reasons"]["dice"] == "both masks empty"
    assert math.isnan(both["hd95_mm"]) and math.isnan(both["nsd_2mm"])
    assert both["fpr"] == 0.0
    missed = case_metrics(empty, truth, (1, 1, 1), "c3")
    assert missed["dice"] == 0.0 and missed["nsd_2mm"] == 0.0 and missed["sensitivity"] == 0.0
    assert math.isnan(missed["hd95_mm"]) and missed["null_reasons"]["hd95_mm"] == "prediction empty"
    assert missed["null_reasons"]["precision"] == "prediction empty"
    assert (missed["lesions_tp"], missed["lesions_fn"]) == (0, 1)
    # NaN becomes null in JSON, never 0
    write_json(tmp_path / "m.json", both)
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["dice"] is None and data["hd95_mm"] is None


def test_aggregate_means_intervals_and_pooled_dice() -> None:
    def row(
        case: str, d: object, hd: float, vox: tuple[int, int, int], les: tuple[int, int, int]
    ) -> dict[str, object]:
        return {
            "case": case, "dice": d, "hd95_mm": hd,
            "voxels_tp": vox[0], "voxels_fp": vox[1], "voxels_fn": vox[2],
            "lesions_tp": les[0], "lesions_fp": les[1], "lesions_fn": les[2],
        }  # fmt: skip

    cases = [
        row("a", 0.5, 2.0, (10, 10, 10), (1, 0, 0)),
        row("b", 1.0, float("nan"), (90, 0, 0), (1, 2, 0)),
        row("c", None, 4.0, (0, 0, 0), (0, 0, 1)),
    ]
    agg = aggregate(cases, n_boot=500, seed=1)
    assert agg["n_cases"] == 3
    assert agg["dice"]["mean"] == pytest.approx(0.75) and agg["dice"]["n"] == 2
    lo, hi = agg["dice"]["ci95"]
    assert 0.5 <= lo <= 0.75 <= hi <= 1.0
    assert agg["hd95_mm"]["mean"] == pytest.approx(3.0) and agg["hd95_mm"]["n"] == 2
    assert agg["dice_global"]["mean"] == pytest.approx(2 * 100 / (2 * 100 + 10 + 10))
    assert agg["lesions_total"] == {"tp": 2, "fp": 2, "fn": 1}
    assert math.isnan(agg["iou"]["mean"]) and agg["iou"]["n"] == 0
    again = aggregate(cases, n_boot=500, seed=1)  # deterministic for a seed
    assert json.dumps(again, default=str) == json.dumps(agg, default=str)


def test_bootstrap_interval_of_single_case_is_the_value() -> None:
    agg = aggregate([{"case": "a", "dice": 0.6, "voxels_tp": 3, "voxels_fp": 1, "voxels_fn": 3}])
    assert agg["dice"]["ci95"] == [pytest.approx(0.6), pytest.approx(0.6)]
    assert agg["dice_global"]["mean"] == pytest.approx(0.6)


def test_bootstrap_interval_covers_the_mean_of_many_cases() -> None:
    rng = np.random.default_rng(0)
    vals = rng.normal(0.7, 0.1, 60)
    agg = aggregate([{"case": str(i), "dice": float(v)} for i, v in enumerate(vals)], n_boot=2000)
    lo, hi = agg["dice"]["ci95"]
    se = vals.std(ddof=1) / math.sqrt(len(vals))
    assert lo < vals.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)  # close to the normal interval

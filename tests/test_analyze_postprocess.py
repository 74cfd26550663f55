"""Post-processing of tumor probabilities: threshold, minimum size, peak, lung proximity."""

from __future__ import annotations

import numpy as np
import pytest

from lungspread.inference.postprocess import PostprocessOptions, postprocess


def _cube(shape: tuple[int, int, int], lo: tuple[int, int, int], size: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return m


def test_threshold_and_minimum_size_in_mm3() -> None:
    prob = np.zeros((40, 40, 20), dtype=np.float32)
    prob[_cube(prob.shape, (2, 2, 2), 4)] = 0.9  # 64 voxels * 2 mm^3 = 128 mm^3
    prob[_cube(prob.shape, (20, 20, 10), 2)] = 0.9  # 8 voxels * 2 mm^3 = 16 mm^3
    prob[_cube(prob.shape, (30, 2, 2), 5)] = 0.4  # below the threshold
    opts = PostprocessOptions(threshold=0.5, min_lesion_mm3=20.0, min_peak_probability=0.5)
    res = postprocess(prob, (1.0, 1.0, 2.0), None, opts)
    assert res.mask.dtype == np.uint8
    assert int(res.mask.sum()) == 64
    assert res.candidates == 2 and res.kept == 1
    assert res.dropped == {"too_small": 1, "low_probability": 0, "outside_lungs": 0}
    # at 1 mm^3 voxels the 64-voxel cube (64 mm^3) is kept, at 0.25 mm^3 (16 mm^3) it is not
    assert postprocess(prob, (0.5, 0.5, 1.0), None, opts).kept == 0


def test_peak_probability_drops_weak_components() -> None:
    prob = np.zeros((30, 30, 30), dtype=np.float32)
    prob[_cube(prob.shape, (2, 2, 2), 6)] = 0.6
    prob[_cube(prob.shape, (15, 15, 15), 6)] = 0.6
    prob[17, 17, 17] = 0.95
    opts = PostprocessOptions(threshold=0.5, min_lesion_mm3=1.0, min_peak_probability=0.9)
    res = postprocess(prob, (1.0, 1.0, 1.0), None, opts)
    assert res.kept == 1 and res.dropped["low_probability"] == 1
    assert res.mask[17, 17, 17] == 1 and res.mask[3, 3, 3] == 0


def test_components_far_from_the_lungs_are_dropped_with_true_mm_distances() -> None:
    shape = (60, 20, 20)
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[:20] = 1  # lung occupies i < 20
    prob = np.zeros(shape, dtype=np.float32)
    # component A starts 3 voxels outside the lung, B starts 20 voxels outside
    prob[_cube(shape, (22, 5, 5), 4)] = 0.9
    prob[_cube(shape, (39, 5, 5), 4)] = 0.9
    opts = PostprocessOptions(
        threshold=0.5, min_lesion_mm3=1.0, lung_margin_mm=10.0, min_fraction_in_lungs=0.25
    )
    # spacing 2 mm along i: A's voxels lie 6-12 mm from the lung -> 3 of 4 layers within 10 mm
    res = postprocess(prob, (2.0, 1.0, 1.0), lungs, opts)
    assert res.kept == 1 and res.dropped["outside_lungs"] == 1
    assert res.mask[23, 6, 6] == 1 and res.mask[40, 6, 6] == 0
    # at 4 mm along i, A lies 12-24 mm away: dropped too
    res4 = postprocess(prob, (4.0, 1.0, 1.0), lungs, opts)
    assert res4.kept == 0 and res4.dropped["outside_lungs"] == 2


def test_component_inside_lungs_is_kept_whole() -> None:
    shape = (30, 30, 30)
    lungs = np.zeros(shape, dtype=np.uint8)
    lungs[5:25, 5:25, 5:25] = 2
    prob = np.zeros(shape, dtype=np.float32)
    prob[_cube(shape, (20, 10, 10), 8)] = 0.8  # 5 of its 8 layers in the lung, 3 outside
    res = postprocess(prob, (1.0, 1.0, 1.0), lungs, PostprocessOptions(min_lesion_mm3=1.0))
    assert int(res.mask.sum()) == 8**3  # kept whole, including the part outside the lung


def test_26_connectivity_joins_diagonal_neighbours() -> None:
    prob = np.zeros((10, 10, 10), dtype=np.float32)
    prob[2, 2, 2] = prob[3, 3, 3] = prob[4, 4, 4] = 0.9
    res = postprocess(prob, (1.0, 1.0, 1.0), None, PostprocessOptions(min_lesion_mm3=3.0))
    assert res.candidates == 1 and int(res.mask.sum()) == 3


def test_empty_probability_gives_empty_mask() -> None:
    res = postprocess(np.zeros((5, 5, 5), np.float32), (1.0, 1.0, 1.0))
    assert res.candidates == 0 and not res.mask.any()


def test_options_from_mapping_ignore_unknown_keys_and_apply_overrides() -> None:
    opts = PostprocessOptions.from_mapping(
        {"threshold": 0.3, "min_lesion_mm3": 50, "unknown": 1}, min_lesion_mm3=None, threshold=0.7
    )
    assert opts.threshold == pytest.approx(0.7)
    assert opts.min_lesion_mm3 == pytest.approx(50.0)


def test_lung_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        postprocess(np.zeros((4, 4, 4)), (1.0, 1.0, 1.0), np.zeros((4, 4, 5), np.uint8))

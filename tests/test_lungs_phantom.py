"""Lung masks on the synthetic chest phantoms of :mod:`lungspread.phantom` (exact truth).

The phantoms' lung labels (1 right, 2 left) contain their tumors. These tests ask for Dice
above 0.95 per lung, and for at least 95% of each tumor touching the chest wall
(juxtapleural) or the mediastinum to lie inside the lung it belongs to. They run on "medium"
phantoms (192 x 192 x 128 at 1.8 x 1.8 x 2.5 mm). On randomly placed tumors this is asked of
those up to 30 mm across, which the rolling ball reaches wherever they touch the pleura. A
larger one needs the convex-hull step (costal pleura only; one 5 cm case below); against the
mediastinum or on the diaphragm it is a known limit, see docs/lungs.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lungspread.lungs import LEFT, RIGHT, LungOptions, segment_lungs

phantom = pytest.importorskip("lungspread.phantom", reason="lungspread.phantom not available")

EDGE_TUMORS = {"location": ["juxtapleural", "mediastinal"]}
#: Tumors smaller than this (in voxels, about 8 mm across) are too coarse for a percentage.
MIN_VOXELS = 20
#: Randomly placed edge tumors up to this diameter must be inside whatever they touch.
MAX_RANDOM_DIAMETER_MM = 30.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b)))


def _check(ph: Any, labels: np.ndarray, max_diameter_mm: float = np.inf) -> list[str]:
    """Failures (empty when all is well); tumors above ``max_diameter_mm`` are not checked."""
    truth = np.asarray(ph.lungs.array)
    lesion_labels = np.asarray(ph.lesion_labels.array)
    problems = []
    for lbl in (RIGHT, LEFT):
        d = _dice(labels == lbl, truth == lbl)
        if d <= 0.95:
            problems.append(f"lung {lbl}: Dice {d:.3f}")
    for lesion in ph.lesions:
        mask = lesion_labels == lesion["id"]
        if mask.sum() < MIN_VOXELS or lesion["diameter_mm"] > max_diameter_mm:
            continue
        side = RIGHT if lesion["side"] == "right" else LEFT
        inside = float(np.mean(labels[mask] == side))
        if inside < 0.95:
            problems.append(
                f"{lesion['location']} {lesion['side']} {lesion['diameter_mm']:.0f} mm: "
                f"{100 * inside:.1f}% inside"
            )
    return problems


def _run(seed: int, kinds: Any, orientation: str = "LPS") -> tuple[Any, np.ndarray]:
    ph = phantom.make_phantom(seed, size="medium", tumor_kinds=kinds, orientation=orientation)
    labels = np.asarray(segment_lungs(ph.ct).array)
    assert labels.shape == ph.ct.shape
    return ph, labels


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_phantom_lungs_and_edge_tumors(seed: int) -> None:
    ph, labels = _run(seed, EDGE_TUMORS)
    assert ph.lesions, "the phantom should hold tumors"
    assert _check(ph, labels, MAX_RANDOM_DIAMETER_MM) == []


def test_phantom_tumors_on_both_sides_and_the_mediastinum() -> None:
    """25 mm tumors on the chest wall of each lung and a 15 mm one against the mediastinum."""
    kinds = [
        {"location": "juxtapleural", "side": "left", "diameter_mm": 25, "density": "solid"},
        {"location": "juxtapleural", "side": "right", "diameter_mm": 25, "density": "solid"},
        {"location": "mediastinal", "side": "right", "diameter_mm": 15, "density": "solid"},
    ]
    ph, labels = _run(1, kinds)
    assert sorted((les["location"], les["side"]) for les in ph.lesions) == [
        ("juxtapleural", "left"),
        ("juxtapleural", "right"),
        ("mediastinal", "right"),
    ]
    assert _check(ph, labels) == []


def test_phantom_large_costal_tumor_needs_the_hull_step() -> None:
    """A 5 cm tumor on the costal pleura is beyond the 15 mm ball's reach: the convex-hull
    step brings it in (the exact share depends on its shape and place; see docs/lungs.md)."""
    kinds = [{"location": "juxtapleural", "side": "left", "diameter_mm": 50, "density": "solid"}]
    ph = phantom.make_phantom(0, size="medium", tumor_kinds=kinds)
    mask = np.asarray(ph.lesion_labels.array) == ph.lesions[0]["id"]
    with_hull = np.asarray(segment_lungs(ph.ct).array)[mask]
    without = np.asarray(segment_lungs(ph.ct, LungOptions(hull_fill=False)).array)[mask]
    assert np.mean(with_hull == LEFT) >= 0.9
    assert np.mean(without == LEFT) <= 0.5


@pytest.mark.slow
@pytest.mark.parametrize("orientation", ["RAS", "LPI"])
def test_phantom_orientation_does_not_change_sides(orientation: str) -> None:
    """The same patient stored RAS or LPI (feet first): labels still follow the patient."""
    ph, labels = _run(2, EDGE_TUMORS, orientation=orientation)
    assert _check(ph, labels, MAX_RANDOM_DIAMETER_MM) == []


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 8))
def test_phantom_more_seeds(seed: int) -> None:
    ph, labels = _run(seed, EDGE_TUMORS)
    assert _check(ph, labels, MAX_RANDOM_DIAMETER_MM) == []

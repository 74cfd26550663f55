"""Lung masks on the synthetic chest phantoms of :mod:`lungspread.phantom` (exact truth).

The phantoms' lung labels (1 right, 2 left) contain their tumors. These tests ask for Dice
above 0.95 per lung, and for at least 95% of each tumor touching the chest wall
(juxtapleural) or the mediastinum to lie inside the lung it belongs to. They run on "medium"
phantoms (192 x 192 x 128 at 1.8 x 1.8 x 2.5 mm). On randomly placed tumors this is asked of
those up to 30 mm across, which the rolling ball reaches wherever they touch the pleura. A
larger one is only certain on the costal pleura (hull step; one 5 cm case below): against the
mediastinum or on the diaphragm it is a known limit, see docs/lungs.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lungspread.lungs import LEFT, RIGHT, segment_lungs

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


@pytest.mark.parametrize("seed", [0, 1])
def test_phantom_lungs_and_edge_tumors(seed: int) -> None:
    ph, labels = _run(seed, EDGE_TUMORS)
    assert ph.lesions, "the phantom should hold tumors"
    assert _check(ph, labels, MAX_RANDOM_DIAMETER_MM) == []


def test_phantom_large_costal_and_mediastinal_tumors() -> None:
    """A 5 cm tumor on the costal pleura of the left lung (hull step) and a 2.5 cm one on
    the mediastinal side of the right lung (rolling ball)."""
    kinds = [
        {"location": "juxtapleural", "side": "left", "diameter_mm": 50, "density": "solid"},
        {"location": "mediastinal", "side": "right", "diameter_mm": 25, "density": "solid"},
    ]
    ph, labels = _run(0, kinds)
    assert {(les["location"], les["side"]) for les in ph.lesions} == {
        ("juxtapleural", "left"),
        ("mediastinal", "right"),
    }
    assert _check(ph, labels) == []


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

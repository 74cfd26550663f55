"""Synthetic chests with exact answers for the export and report tests.

Anatomy is defined in patient space (RAS mm) and sampled through any affine, so the same chest
can be stored in RAS, LPS, permuted or oblique voxel orders and every export must give the same
world-space answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.volume import Volume

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LIDC1 = SHARED_DATA / "lidc-idri-0001"

#: Lesions of the synthetic chest: (centre RAS mm, radius mm). L1 in the right lung (x > 0),
#: L2 in the left lung.
LESIONS = (((45.0, 0.0, 20.0), 11.0), ((-50.0, -10.0, -25.0), 6.0))


@dataclass
class Chest:
    ct: Volume
    tumor: Volume
    lungs: Volume


def affine_for(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    order: str = "LPS",
) -> np.ndarray:
    """An affine centred on the RAS origin with voxel axes along ``order`` (e.g. "LPS", "RAS",
    "PLS" for a permuted order, or "oblique" for a 20-degree rotation about S)."""
    if order == "oblique":
        t = np.radians(20)
        rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
        direction = rot @ np.diag([-1.0, -1.0, 1.0])
    else:
        axes = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
        direction = np.zeros((3, 3))
        for col, code in enumerate(order):
            row, sign = axes[code]
            direction[row, col] = sign
    aff = np.eye(4)
    aff[:3, :3] = direction * np.asarray(spacing)[None, :]
    centre = (np.asarray(shape) - 1) / 2
    aff[:3, 3] = -aff[:3, :3] @ centre
    return aff


def chest(
    shape: tuple[int, int, int] = (100, 80, 44),
    spacing: tuple[float, float, float] = (2.0, 2.0, 3.0),
    order: str = "LPS",
    seed: int = 0,
) -> Chest:
    """A body (soft tissue), two lungs (-850 HU; label 1 right, 2 left) and two spherical
    lesions (40 HU) from :data:`LESIONS`, with mild noise."""
    aff = affine_for(shape, spacing, order)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    xyz = ijk.reshape(-1, 3) @ aff[:3, :3].T + aff[:3, 3]
    x, y, z = (xyz[:, a].reshape(shape) for a in range(3))
    rng = np.random.default_rng(seed)
    ct = np.full(shape, -1000.0)
    body = (x / 95.0) ** 2 + (y / 72.0) ** 2 <= 1
    ct[body] = 40.0
    lungs = np.zeros(shape, np.uint8)
    for label, cx in ((1, 42.0), (2, -42.0)):
        lung = ((x - cx) / 34.0) ** 2 + ((y + 2.0) / 48.0) ** 2 + (z / 60.0) ** 2 <= 1
        ct[lung] = -850.0
        lungs[lung] = label
    tumor = np.zeros(shape, np.uint8)
    for (cx, cy, cz), r in LESIONS:
        ball = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r
        tumor[ball] = 1
        ct[ball] = 40.0
    ct += rng.normal(0, 15, shape)
    ct_vol = Volume(ct.astype(np.int16), aff, {"source": "synthetic"})
    return Chest(ct_vol, ct_vol.with_array(tumor), ct_vol.with_array(lungs))


def report_for(c: Chest) -> dict[str, Any]:
    """The real spread report when :mod:`lungspread.spread` exists, else a hand-made one."""
    try:
        from lungspread.spread import spread_report
    except ImportError:  # pragma: no cover - spread landed; kept for a partial checkout
        return hand_report()
    result: dict[str, Any] = spread_report(c.tumor, ct=c.ct, lungs=c.lungs)
    return result


def hand_report() -> dict[str, Any]:
    """A report dict with the spread keys, written by hand (with nulls and reasons)."""
    return {
        "lungs": {"right_ml": 1500.0, "left_ml": 1400.0, "total_ml": 2900.0},
        "lesions": [
            {
                "id": "L1",
                "volume_ml": 5.6,
                "recist_diameter_mm": 22.0,
                "short_axis_mm": 21.0,
                "max_diameter_mm": 22.5,
                "centroid_mm": [45.0, 0.0, 20.0],
                "coordinate_system": "RAS",
                "side": "right",
                "zone": "upper",
                "pleural_contact": False,
                "distance_to_pleura_mm": 4.0,
                "fraction_in_lung": 1.0,
                "mean_hu": None,
                "solid_fraction": None,
                "surface_area_mm2": 1500.0,
                "sphericity": 0.95,
                "null_reasons": {"mean_hu": "no CT given", "solid_fraction": "no CT given"},
            },
            {
                "id": "L2",
                "volume_ml": 0.9,
                "recist_diameter_mm": 12.0,
                "short_axis_mm": 11.0,
                "max_diameter_mm": 12.5,
                # LPS on purpose: matching must convert
                "centroid_mm": [50.0, 10.0, -25.0],
                "coordinate_system": "LPS",
                "side": "left",
                "zone": "lower",
                "pleural_contact": False,
                "distance_to_pleura_mm": 6.0,
                "fraction_in_lung": 1.0,
                "mean_hu": None,
                "solid_fraction": None,
                "surface_area_mm2": 430.0,
                "sphericity": 0.93,
            },
        ],
        "totals": {
            "tumor_volume_ml": 6.5,
            "lesion_count": 2,
            "lung_involvement_pct": {"total": 0.22, "right": 0.37, "left": 0.06},
            "bilateral": True,
            "recist_targets": [{"id": "L1"}, {"id": "L2"}],
            "sum_of_diameters_mm": 34.0,
        },
        "t_descriptor": {
            "estimate": "M1a",
            "rule": "a separate nodule in the other lung -> M1a",
            "caveats": ["invasion is not assessed", "lobes are approximated by zones"],
        },
    }

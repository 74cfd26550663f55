"""One call for everything about the lungs: labels, zones, volumes, timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lungspread.lungs.segment import LungOptions, segment_lungs_timed
from lungspread.lungs.zones import lung_volumes_ml, lung_zones, zone_volumes_ml
from lungspread.volume import Volume


@dataclass(frozen=True)
class LungResult:
    """Lung labels (1 right, 2 left) and zones (1 upper, 2 middle, 3 lower) on the CT's grid."""

    labels: Volume
    zones: Volume
    volumes_ml: dict[str, float]
    """``right_ml``, ``left_ml``, ``total_ml``."""
    zone_volumes_ml: dict[str, float]
    """``right_upper_ml`` ... ``left_lower_ml``."""
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What ``lungs.json`` holds (volumes in mL, rounded to 0.1 mL; timings in s)."""
        return {
            "labels": {"0": "background", "1": "right lung", "2": "left lung"},
            "zones": {"0": "outside", "1": "upper", "2": "middle", "3": "lower"},
            **{k: round(v, 1) for k, v in self.volumes_ml.items()},
            "zones_ml": {k: round(v, 1) for k, v in self.zone_volumes_ml.items()},
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }


def analyze_lungs(ct: Volume, options: LungOptions | None = None) -> LungResult:
    """Segment the lungs of ``ct`` (HU) and measure them; see :func:`segment_lungs`."""
    labels, timings = segment_lungs_timed(ct, options)
    t = time.perf_counter()
    zones = lung_zones(labels)
    volumes = lung_volumes_ml(labels)
    zone_volumes = zone_volumes_ml(labels, zones)
    timings = {**timings, "zones_volumes": time.perf_counter() - t}
    return LungResult(labels, zones, volumes, zone_volumes, timings)

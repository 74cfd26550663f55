"""Lung masks without learned weights: right/left labels, zones and volumes.

>>> from lungspread.io import read_volume
>>> from lungspread.lungs import analyze_lungs
>>> result = analyze_lungs(read_volume("ct.nii.gz"))      # doctest: +SKIP
>>> result.volumes_ml["right_ml"], result.labels.array     # doctest: +SKIP

Labels follow the lungmask convention: 0 background, 1 the patient's right lung, 2 the left
lung. Zones: 0 outside, 1 upper, 2 middle, 3 lower third of each lung along the patient's S
axis. See ``docs/lungs.md`` for the method and its limits.
"""

from __future__ import annotations

from lungspread.lungs.result import LungResult, analyze_lungs
from lungspread.lungs.segment import LungOptions, segment_lungs, segment_lungs_timed
from lungspread.lungs.split import LEFT, RIGHT
from lungspread.lungs.zones import (
    LOWER,
    MIDDLE,
    UPPER,
    lung_volumes_ml,
    lung_zones,
    zone_volumes_ml,
)

__all__ = [
    "LEFT",
    "LOWER",
    "MIDDLE",
    "RIGHT",
    "UPPER",
    "LungOptions",
    "LungResult",
    "analyze_lungs",
    "lung_volumes_ml",
    "lung_zones",
    "segment_lungs",
    "segment_lungs_timed",
    "zone_volumes_ml",
]

"""Tumor spread: per-lesion measures, lung involvement, a T-descriptor estimate, follow-up.

* :func:`spread_report` - tumor mask (+ CT, lungs, lobes) -> the ``report.json`` dict.
* :func:`compute_spread` - the same, and the lung map it used (e.g. segmented from the CT).
* :func:`follow_up` - two reports of one patient -> matched lesions and RECIST 1.1 response.

All lengths are in mm, volumes in mL, positions in RAS mm; see docs/spread.md.
"""

from __future__ import annotations

from lungspread.spread.followup import follow_up, load_report
from lungspread.spread.report import (
    PLEURAL_CONTACT_MM,
    SOLID_THRESHOLD_HU,
    compute_spread,
    spread_report,
)
from lungspread.spread.tdescriptor import MIN_SEPARATE_NODULE_MM

__all__ = [
    "MIN_SEPARATE_NODULE_MM",
    "PLEURAL_CONTACT_MM",
    "SOLID_THRESHOLD_HU",
    "compute_spread",
    "follow_up",
    "load_report",
    "spread_report",
]

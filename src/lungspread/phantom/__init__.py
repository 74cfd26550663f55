"""Synthetic chest CT phantoms with exact ground truth (tests, demo and training data).

>>> from lungspread.phantom import make_phantom
>>> ph = make_phantom(seed=0, size="small")        # doctest: +SKIP
>>> ph.ct, ph.tumor, ph.lungs, ph.lesions          # doctest: +SKIP

See ``docs/phantoms.md`` for what is modelled and how the phantoms compare with real scans.
"""

from __future__ import annotations

from lungspread.phantom.acquisition import Acquisition
from lungspread.phantom.dataset import write_phantom_dataset
from lungspread.phantom.geometry import SIZES
from lungspread.phantom.insert import insert_nodule
from lungspread.phantom.make import Phantom, make_phantom
from lungspread.phantom.tumors import DENSITIES, LOCATIONS, SHAPES, SIDES, TumorSpec

__all__ = [
    "DENSITIES",
    "LOCATIONS",
    "SHAPES",
    "SIDES",
    "SIZES",
    "Acquisition",
    "Phantom",
    "TumorSpec",
    "insert_nodule",
    "make_phantom",
    "write_phantom_dataset",
]

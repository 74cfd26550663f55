"""lungspread: find lung tumors in chest CT and measure how far they have spread.

The public API is small; each command of the CLI is one of these calls first.
"""

from __future__ import annotations

from typing import Any

from lungspread.errors import LungspreadError
from lungspread.volume import Volume

__version__ = "0.1.0"

__all__ = ["LungspreadError", "Volume", "__version__", "analyze"]


def __getattr__(name: str) -> Any:
    # Lazy: ``lungspread.analyze`` imports torch only when first used. The module
    # lungspread.analyze is callable, so ``lungspread.analyze("ct.nii.gz")`` and
    # ``lungspread.analyze.analyze("ct.nii.gz")`` both work.
    if name == "analyze":
        import importlib

        return importlib.import_module("lungspread.analyze")
    raise AttributeError(f"module 'lungspread' has no attribute {name!r}")

"""lungspread: find lung tumors in chest CT and measure how far they have spread.

The public API is small; each command of the CLI is one of these calls first.
"""

from __future__ import annotations

from lungspread.errors import LungspreadError
from lungspread.volume import Volume

__version__ = "0.1.0"

__all__ = ["LungspreadError", "Volume", "__version__"]

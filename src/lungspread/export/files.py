"""File helpers of the exporters: the package-wide atomic writers under their export names."""

from __future__ import annotations

from lungspread.outputs import atomic_path
from lungspread.outputs import atomic_write_bytes as atomic_write

__all__ = ["atomic_path", "atomic_write"]

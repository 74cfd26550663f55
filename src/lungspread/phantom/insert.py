"""Placeholder, replaced below."""

from __future__ import annotations

from typing import Any


def insert_nodule(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError

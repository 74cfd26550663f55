"""Errors that lungspread raises for problems a user can fix.

Every user-facing failure is a :class:`LungspreadError` (or a subclass). The message is one
line that says what was expected, what was found and which file; the CLI prints it and exits
with code 2, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class LungspreadError(Exception):
    """Base class of every error a user can act on."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class InputError(LungspreadError):
    """An input file or folder is missing, unreadable or malformed."""


class GeometryError(LungspreadError):
    """Spacing, orientation or slice positions are inconsistent or unsupported."""


class NotCTError(LungspreadError):
    """The image does not look like a CT in Hounsfield units."""


class OutputError(LungspreadError):
    """An output location cannot be written or would overwrite something."""


class ModelError(LungspreadError):
    """A model, checkpoint or run folder is missing, corrupt or incompatible."""


class MissingDependencyError(LungspreadError):
    """An optional dependency is needed for this feature and is not installed."""

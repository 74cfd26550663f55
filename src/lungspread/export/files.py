"""Small file helpers for the exporters: every file is written to a temporary name, then renamed.

Temporary files are created with mode ``0o666`` minus the umask (as ``open`` would), not the
``0o600`` of :func:`tempfile.mkstemp`, so exported files can be shared like any other file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from lungspread.errors import OutputError


def _create_temp(path: Path) -> Path:
    """Create an empty, unique temporary file next to ``path`` (mode 0o666 & ~umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OutputError("could not create a temporary file", path)  # pragma: no cover


def atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a failure raises :class:`OutputError`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a library that writes files itself.

    On success the temporary file replaces ``path``; on failure it is removed.
    """
    try:
        tmp = _create_temp(path)
    except OSError as exc:
        raise OutputError(f"could not write ({exc.strerror or exc})", path) from exc
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"could not write ({exc.strerror or exc})", path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise

"""Output folders that are written completely or not at all, and their ``run.json``.

Every command writes into one folder. :func:`output_dir` stages the files in a hidden sibling
folder and moves them into place only when the command succeeds, so a failure (a bad input, a
full disk, Ctrl-C) never leaves half-written outputs behind and never destroys earlier results.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lungspread.errors import OutputError


def _check_writable_parent(out: Path) -> None:
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"parent {parent} is a file, expected a folder", out)
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        if _read_only_file_system(parent):
            raise OutputError(
                "cannot write here (the parent folder is on a read-only file system)", out
            )
        raise OutputError("cannot write here (permission denied on the parent folder)", out)


def _read_only_file_system(folder: Path) -> bool:
    """True when ``folder`` is on a file system mounted read-only (which binds root too)."""
    try:
        return bool(os.statvfs(folder).f_flag & getattr(os, "ST_RDONLY", 1))
    except (OSError, AttributeError):  # no statvfs (Windows)
        return False


@contextlib.contextmanager
def output_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging folder; on success its files replace/fill ``out`` atomically per file.

    ``out`` may exist and be empty. If it holds files and ``overwrite`` is false, an
    :class:`OutputError` is raised before anything is computed. With ``overwrite`` the files
    the command writes replace those of the same name; other files are left alone.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is a file, expected an output folder", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            "output folder exists and is not empty (pass --overwrite to replace)", out
        )
    _check_writable_parent(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", out) from exc
    try:
        try:
            yield stage
        except (OSError, OutputError) as exc:
            _raise_if_disk_full(exc, out)
            raise
        try:
            out.mkdir(parents=True, exist_ok=True)
            for item in sorted(stage.rglob("*")):
                rel = item.relative_to(stage)
                target = out / rel
                if item.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
        except OSError as exc:
            raise OutputError(f"could not move results into place ({exc})", out) from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: errno values that mean the disk (or quota) cannot take the results.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def _raise_if_disk_full(exc: BaseException, out: Path) -> None:
    """A write that failed for lack of space becomes one :class:`OutputError` naming ``out``
    (the OSError of a full disk often names no file at all)."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in _DISK_FULL:
        raise OutputError(
            f"could not write the results ({cause.strerror or cause}); nothing was kept", out
        ) from exc


def _create_temp(path: Path) -> Path:
    """Create an empty, unique hidden file next to ``path`` that ends with ``path``'s name.

    Keeping the full name as the ending keeps the suffix (``.nii.gz``, ``.nrrd``) that writers
    use to pick a format. The mode is ``0o666`` minus the umask, as ``open`` would give, not
    the ``0o600`` of :func:`tempfile.mkstemp`, so results can be shared like any other file.
    """
    for _ in range(100):
        tmp = path.parent / f".{secrets.token_hex(6)}.partial.{path.name}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise OutputError("could not create a temporary file", path)  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for code that writes a file itself.

    On success the temporary file replaces ``path`` (one rename, so readers never see a
    half-written file); on any failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"folder {path.parent} does not exist", path)
    try:
        tmp = _create_temp(path)
    except OSError as exc:
        raise OutputError(f"cannot write here ({exc.strerror or exc})", path) from exc
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


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (NaN written as null), atomically."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    """Make numpy scalars, paths and NaN JSON-friendly (NaN and inf become null)."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


class RunRecord:
    """Collects what ``run.json`` says: version, command, inputs, options, timings."""

    def __init__(self, command: str, inputs: dict[str, Any], options: dict[str, Any]) -> None:
        from lungspread import __version__

        self._t0 = time.perf_counter()
        self._stage_t0 = self._t0
        self.data: dict[str, Any] = {
            "lungspread_version": __version__,
            "command": command,
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "inputs": inputs,
            "options": options,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "timings_s": {},
        }

    def stage(self, name: str) -> None:
        """Close the running stage timer under ``name`` and start the next one."""
        now = time.perf_counter()
        self.data["timings_s"][name] = round(now - self._stage_t0, 4)
        self._stage_t0 = now

    def write(self, folder: str | Path, **extra: Any) -> None:
        self.data["timings_s"]["total"] = round(time.perf_counter() - self._t0, 4)
        self.data.update(extra)
        write_json(Path(folder) / "run.json", self.data)

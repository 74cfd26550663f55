"""Safe extraction of tar (and zip) archives.

:func:`safe_extract` checks every member *before* writing anything and refuses the whole
archive when one member could write outside the destination:

* absolute names (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``) and names with a ``..``
  component;
* symbolic links (never created: a link inside the archive could be combined with a later
  member to write outside; MSD archives contain none);
* hard links whose target is not a regular file member extracted earlier from the same archive
  (allowed ones are written as independent copies, never as links);
* device files, FIFOs and other special members.

Files are written by this module (never by ``TarFile.extract``), with permissions 0o644 (0o755
for executables and folders, no setuid/setgid/sticky bits), into a hidden staging folder inside
the destination; only when every member is written are the top-level entries moved into place.
A failure (a truncated archive, a full disk) leaves nothing behind. AppleDouble files
(``._name``, written by macOS tar, present in some Decathlon archives) are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lungspread.errors import InputError, OutputError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class _Member:
    """One archive entry, already checked: ``name`` is a safe relative POSIX path."""

    name: str
    kind: str  # "file", "dir" or "hardlink"
    size: int
    executable: bool
    link_target: str | None = None
    ref: object = None  # the TarInfo / ZipInfo to read the data from


def _safe_name(raw: str, archive: Path) -> str | None:
    """Normalized relative name, ``None`` for entries to skip, InputError for unsafe names."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or raw.startswith("\\\\"):
        raise InputError(f"unsafe archive member {raw!r}: absolute path refused", archive)
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(f"unsafe archive member {raw!r}: '..' path component refused", archive)
    if any("\x00" in p for p in parts):
        raise InputError(f"unsafe archive member {raw!r}: NUL byte in name", archive)
    if not parts:
        return None
    if parts[-1].startswith("._") or "__MACOSX" in parts:
        return None  # macOS AppleDouble metadata, not data
    return "/".join(parts)


def _tar_members(tf: tarfile.TarFile, archive: Path) -> list[_Member]:
    members: list[_Member] = []
    files_seen: set[str] = set()
    for info in tf:
        name = _safe_name(info.name, archive)
        if info.issym():
            target = info.linkname
            outside = (
                target.startswith(("/", "\\"))
                or ".." in PurePosixPath(target.replace("\\", "/")).parts
            )
            where = "points outside the destination" if outside else "is a symbolic link"
            raise InputError(
                f"unsafe archive member {info.name!r} -> {target!r}: {where}; "
                "symbolic links are never extracted",
                archive,
            )
        if name is None:
            continue
        if info.islnk():
            raw_target = info.linkname.replace("\\", "/")
            if raw_target.startswith("/") or ".." in PurePosixPath(raw_target).parts:
                raise InputError(
                    f"unsafe archive member {info.name!r}: hard link to {info.linkname!r} "
                    "points outside the destination",
                    archive,
                )
            link_to = _safe_name(info.linkname, archive) if info.linkname else None
            if link_to is None or link_to not in files_seen:
                raise InputError(
                    f"unsafe archive member {info.name!r}: hard link to {info.linkname!r}, "
                    "which is not a file extracted earlier from this archive",
                    archive,
                )
            members.append(_Member(name, "hardlink", 0, False, link_to))
            files_seen.add(name)
        elif info.isdir():
            members.append(_Member(name, "dir", 0, False))
        elif info.isreg():
            members.append(
                _Member(name, "file", int(info.size), bool(info.mode & 0o111), None, info)
            )
            files_seen.add(name)
        else:
            kind = (
                "device file"
                if info.ischr() or info.isblk()
                else "FIFO"
                if info.isfifo()
                else "special member"
            )
            raise InputError(f"unsafe archive member {info.name!r}: {kind} refused", archive)
    return members


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> list[_Member]:
    members: list[_Member] = []
    for info in zf.infolist():
        name = _safe_name(info.filename, archive)
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise InputError(
                f"unsafe archive member {info.filename!r}: symbolic links are never extracted",
                archive,
            )
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise InputError(f"unsafe archive member {info.filename!r}: special file", archive)
        if name is None:
            continue
        if info.is_dir():
            members.append(_Member(name, "dir", 0, False))
        else:
            members.append(
                _Member(name, "file", int(info.file_size), bool(mode & 0o111), None, info)
            )
    return members


def list_members(archive: str | Path) -> list[str]:
    """Names of the entries :func:`safe_extract` would write (raises on an unsafe archive)."""
    archive = Path(archive)
    with _open(archive) as (members, _reader):
        return [m.name for m in members]


@contextlib.contextmanager
def _open(archive: Path) -> Iterator[tuple[list[_Member], object]]:
    if not archive.is_file():
        raise InputError("archive not found", archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                yield _zip_members(zf, archive), zf
            return
        with tarfile.open(archive, "r:*") as tf:
            members = _tar_members(tf, archive)
            yield members, tf
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OutputError(f"extraction failed ({exc.strerror})", exc.filename) from exc
        raise InputError(
            f"not a readable tar or zip archive, truncated or corrupt ({type(exc).__name__}: "
            f"{exc})",
            archive,
        ) from exc


def _copy_stream(src: object, dst_path: Path, size: int, archive: Path, name: str) -> None:
    read = src.read  # type: ignore[attr-defined]
    written = 0
    fd = os.open(
        dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644
    )
    with os.fdopen(fd, "wb") as out:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            out.write(chunk)
            written += len(chunk)
    if written != size:
        raise InputError(
            f"archive member {name!r} is truncated ({written} of {size} bytes)", archive
        )


def safe_extract(
    archive: str | Path,
    dest: str | Path,
    *,
    overwrite: bool = False,
    max_total_bytes: int | None = None,
) -> list[Path]:
    """Extract ``archive`` (tar, tar.gz/bz2/xz or zip) into the folder ``dest`` safely.

    Returns the top-level paths created in ``dest``. Raises :class:`InputError` for an unsafe,
    truncated or corrupt archive (nothing is written then), :class:`OutputError` when a
    top-level entry already exists and ``overwrite`` is false, when the members would need more
    than ``max_total_bytes`` or more than the free disk space.
    """
    archive = Path(archive)
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the destination folder ({exc.strerror})", dest) from exc
    dest_real = dest.resolve()
    with _open(archive) as (members, reader):
        total = sum(m.size for m in members)
        if max_total_bytes is not None and total > max_total_bytes:
            raise OutputError(
                f"archive would extract {total} bytes, more than the allowed {max_total_bytes}",
                archive,
            )
        free = shutil.disk_usage(dest).free
        if total > free:
            raise OutputError(
                f"archive needs {total / 1e9:.2f} GB but only {free / 1e9:.2f} GB are free", dest
            )
        tops = sorted({m.name.split("/")[0] for m in members})
        existing = [t for t in tops if (dest / t).exists() or (dest / t).is_symlink()]
        if existing and not overwrite:
            raise OutputError(
                f"{existing[0]!r} already exists in the destination (pass overwrite to replace)",
                dest,
            )
        stage = Path(tempfile.mkdtemp(prefix=".extract-partial-", dir=dest))
        try:
            _write_members(members, reader, stage, archive)
            created: list[Path] = []
            for top in tops:
                target = dest / top
                if target.is_symlink() or target.is_file():
                    target.unlink()
                elif target.is_dir():
                    shutil.rmtree(target)
                os.replace(stage / top, target)
                created.append(target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    for path in created:
        if not path.resolve().is_relative_to(dest_real):  # pragma: no cover - defence in depth
            raise OutputError("extracted entry resolves outside the destination", path)
    return created


def _write_members(members: list[_Member], reader: object, stage: Path, archive: Path) -> None:
    stage_real = stage.resolve()
    for m in members:
        target = stage.joinpath(*m.name.split("/"))
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if not parent.resolve().is_relative_to(stage_real):
            raise InputError(f"unsafe archive member {m.name!r}: escapes the destination", archive)
        if m.kind == "dir":
            if target.exists() and not target.is_dir():
                raise InputError(f"archive member {m.name!r} is both a file and a folder", archive)
            target.mkdir(exist_ok=True, mode=0o755)
            continue
        if target.exists():
            if target.is_dir():
                raise InputError(f"archive member {m.name!r} is both a folder and a file", archive)
            target.unlink()  # a later member of the same name wins, as with tar
        if m.kind == "hardlink":
            assert m.link_target is not None
            source = stage.joinpath(*m.link_target.split("/"))
            shutil.copyfile(source, target, follow_symlinks=False)
        elif isinstance(reader, zipfile.ZipFile):
            assert isinstance(m.ref, zipfile.ZipInfo)
            with reader.open(m.ref) as zsrc:
                _copy_stream(zsrc, target, m.size, archive, m.name)
        else:
            assert isinstance(reader, tarfile.TarFile) and isinstance(m.ref, tarfile.TarInfo)
            src = reader.extractfile(m.ref)
            if src is None:  # pragma: no cover - checked as a regular file above
                raise InputError(f"archive member {m.name!r} has no data", archive)
            with src:
                _copy_stream(src, target, m.size, archive, m.name)
        os.chmod(target, 0o755 if m.executable else 0o644)

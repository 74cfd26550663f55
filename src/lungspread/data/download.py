"""The one place where lungspread uses the network: downloading a Decathlon archive.

``download_file`` fetches a URL into ``dest`` through ``dest + ".part"``:

* **Resumable.** When a ``.part`` file exists, the request asks for the remaining bytes with an
  HTTP ``Range`` header and appends them (a server that ignores ``Range`` and answers 200 makes
  the download start over).
* **Truncated downloads are kept.** When the connection ends before the announced size, the
  ``.part`` file (a correct prefix of the archive) is kept and an :class:`InputError` says to run
  the command again to resume.
* **Corrupt downloads are deleted.** After the last byte the checksum (MD5 and/or SHA-256) is
  computed over the whole file; on a mismatch the ``.part`` file is deleted (it cannot be repaired
  by resuming) and an :class:`InputError` gives both checksums. Only a verified file is renamed
  to ``dest``.

The official source of Task06_Lung: the Decathlon's archives on AWS Open Data (bucket
``msd-for-monai``, the location MONAI's ``DecathlonDataset`` downloads from) with the MD5 that
MONAI publishes for it; the Decathlon itself publishes no checksum (its page links a Google
Drive folder). A mirror can be given with ``url=``: the same checksum applies, since it must be
the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lungspread.errors import InputError, OutputError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveSource:
    """Where a dataset archive comes from and how to check it."""

    url: str
    filename: str
    folder: str  # top-level folder inside the archive
    md5: str | None = None
    sha256: str | None = None
    note: str = ""


#: Known datasets. Keys are the names the CLI accepts.
SOURCES: dict[str, ArchiveSource] = {
    "msd-lung": ArchiveSource(
        url="https://msd-for-monai.s3-us-west-2.amazonaws.com/Task06_Lung.tar",
        filename="Task06_Lung.tar",
        folder="Task06_Lung",
        md5="8afd997733c7fc0432f71255ba4e52dc",
        note=(
            "Medical Segmentation Decathlon Task06_Lung (CC-BY-SA 4.0), AWS Open Data copy; "
            "MD5 as listed by MONAI (monai.apps.datasets.DecathlonDataset.md5['Task06_Lung'])"
        ),
    ),
}


ProgressFn = Callable[[int, int | None], None]


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: Path, md5: str | None = None, sha256: str | None = None) -> None:
    """Raise :class:`InputError` if ``path`` does not have the given MD5 / SHA-256."""
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        got = file_digest(path, algo)
        if got.lower() != expected.lower():
            raise InputError(
                f"{algo.upper()} checksum mismatch: expected {expected.lower()}, got {got}", path
            )


def _check_hex(value: str | None, n: int, what: str) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{n}}}", v):
        raise InputError(f"{what} must be {n} hexadecimal digits, got {value!r}")
    return v


def _total_from_content_range(value: str | None) -> int | None:
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value)
    if not m or m.group(3) == "*":
        return None
    return int(m.group(3))


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout_s: float = 60.0,
    progress: ProgressFn | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (resumable, verified); return ``dest``.

    An existing ``dest`` that passes the checksum is kept as is (no network access). With no
    checksum given the file is downloaded but not verified; :func:`download_dataset` always
    passes one.
    """
    md5 = _check_hex(md5, 32, "MD5")
    sha256 = _check_hex(sha256, 64, "SHA-256")
    dest = Path(dest)
    if not url.lower().startswith(("http://", "https://")):
        raise InputError(f"only http:// and https:// URLs are downloaded, got {url!r}")
    if dest.is_file():
        try:
            verify_checksum(dest, md5, sha256)
        except InputError:
            log.warning("%s exists but fails its checksum; downloading it again", dest)
            dest.unlink()
        else:
            log.info("%s already downloaded and verified", dest)
            return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the download folder ({exc.strerror})", dest) from exc
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "lungspread-dataset-download", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Nothing left to fetch: the .part file is complete (or longer than the file).
            log.info("server reports the partial file is complete; verifying it")
            return _finish(part, dest, md5, sha256)
        raise InputError(f"download failed: HTTP {exc.code} {exc.reason} from {url}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"download failed: cannot reach {url} ({reason})") from exc
    with contextlib.closing(resp):
        status = getattr(resp, "status", 200)
        length_hdr = resp.headers.get("Content-Length")
        length = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
        if have and status == 206:
            total = _total_from_content_range(resp.headers.get("Content-Range"))
            mode = "ab"
            log.info("resuming %s at byte %d", dest.name, have)
        else:
            if have:
                log.info("server ignored the Range request; starting %s over", dest.name)
            have = 0
            total = length
            mode = "wb"
        expected_body = length
        received = 0
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except http.client.IncompleteRead as exc:
                        out.write(exc.partial)
                        received += len(exc.partial)
                        break
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(have + received, total)
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            log.warning("connection lost after %d bytes (%s)", have + received, exc)
        except OSError as exc:
            raise OutputError(f"cannot write the download ({exc.strerror})", part) from exc
    size = part.stat().st_size
    if (expected_body is not None and received < expected_body) or (
        total is not None and size < total
    ):
        want = total if total is not None else have + (expected_body or 0)
        raise InputError(
            f"download stopped at {size} of {want} bytes (connection closed early); the partial "
            f"file {part.name} is kept: run the same command again to resume",
            part,
        )
    return _finish(part, dest, md5, sha256)


def _finish(part: Path, dest: Path, md5: str | None, sha256: str | None) -> Path:
    try:
        verify_checksum(part, md5, sha256)
    except InputError as exc:
        part.unlink(missing_ok=True)
        raise InputError(
            f"{exc.reason}; the corrupted download was deleted, run the command again", dest
        ) from exc
    os.replace(part, dest)
    return dest


def download_dataset(
    name: str,
    dest_dir: str | Path,
    *,
    url: str | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    extract: bool = True,
    keep_archive: bool = True,
    timeout_s: float = 60.0,
    progress: ProgressFn | None = None,
) -> dict[str, object]:
    """Download (resumably) and verify a known dataset archive, then extract it safely.

    ``name`` is a key of :data:`SOURCES` (``"msd-lung"``). ``url`` replaces the official
    location (a mirror); ``md5``/``sha256`` replace the official checksum (when either is given,
    only the given ones are checked). Returns a summary dict: ``archive``, ``dataset_dir``,
    ``md5``/``sha256`` checked, ``n_cases`` (after a validating :meth:`MSDDataset.open`).
    """
    from lungspread.data.archive import safe_extract
    from lungspread.data.msd import MSDDataset

    if name not in SOURCES:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(SOURCES))}")
    src = SOURCES[name]
    dest_dir = Path(dest_dir)
    if md5 is None and sha256 is None:
        md5, sha256 = src.md5, src.sha256
    dataset_dir = dest_dir / src.folder
    archive = dest_dir / src.filename
    if (dataset_dir / "dataset.json").is_file():
        # Already extracted: no network access, just validate (delete the folder to refetch).
        ds = MSDDataset.open(dataset_dir)
        return {
            "dataset_dir": dataset_dir,
            "archive": archive if archive.is_file() else None,
            "n_cases": len(ds.cases),
            "md5": md5,
            "sha256": sha256,
            "already_present": True,
        }
    download_file(
        url or src.url, archive, md5=md5, sha256=sha256, timeout_s=timeout_s, progress=progress
    )
    result: dict[str, object] = {
        "archive": archive if keep_archive or not extract else None,
        "url": url or src.url,
        "md5": md5,
        "sha256": sha256,
        "already_present": False,
    }
    if extract:
        safe_extract(archive, dest_dir, overwrite=True)
        if not (dataset_dir / "dataset.json").is_file():
            raise InputError(f"archive did not contain {src.folder}/dataset.json", archive)
        ds = MSDDataset.open(dataset_dir)
        result.update(dataset_dir=dataset_dir, n_cases=len(ds.cases))
        if not keep_archive:
            archive.unlink()
    return result

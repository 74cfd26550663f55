"""Batch analysis of a folder of CTs: one output folder per case, restartable, shardable.

* **Cases** are the entries of the input folder, in sorted order: image files (NIfTI, NRRD,
  MetaImage) and sub-folders that directly contain DICOM files (one series each). A folder
  that itself directly contains DICOM files is one CT, not a batch (:func:`is_dicom_folder`).
* **Outputs**: case ``NAME`` (the file name without its image suffix, or the folder name)
  goes to ``OUT/NAME/``. A case is *finished* when ``OUT/NAME/run.json`` exists: analyze
  writes ``run.json`` last, after every other file is in place, so a run that was killed
  midway is redone on restart and a finished one is skipped.
* **Failures** do not stop the batch: each failed case is recorded with its reason and the
  summary lists them at the end.
* **Shards**: ``shard=(i, n)`` takes every n-th case starting at the i-th (0-based, like
  Kubernetes' ``JOB_COMPLETION_INDEX``) of the sorted case list, so n machines given
  ``0/n`` ... ``(n-1)/n`` process every case exactly once, without talking to each other.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lungspread.errors import InputError, LungspreadError, OutputError

log = logging.getLogger(__name__)

#: Image file suffixes that make a file a case (longest first).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: How many files of a folder are looked at to decide whether it holds DICOM.
_DICOM_PROBE_FILES = 16


@dataclass(frozen=True)
class Case:
    """One CT of a batch: its name (output sub-folder) and path (file or DICOM folder)."""

    name: str
    path: Path


@dataclass
class BatchSummary:
    """What a batch did: finished, skipped (already finished earlier) and failed cases."""

    out: Path
    cases: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    shard: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "shard": None if self.shard is None else f"{self.shard[0]}/{self.shard[1]}",
            "cases": self.cases,
            "done": self.done,
            "skipped": self.skipped,
            "failed": [{"case": k, "reason": v} for k, v in self.failed.items()],
            "seconds": self.seconds,
        }


def _is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_folder(folder: str | Path) -> bool:
    """True when ``folder`` directly contains DICOM files (so it is one CT, not a batch)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    probed = 0
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        if _is_dicom_file(entry):
            return True
        probed += 1
        if probed >= _DICOM_PROBE_FILES:
            break
    return False


def case_name(path: Path) -> str | None:
    """The case name of a folder entry, or None when the entry is not a CT."""
    if path.name.startswith("."):
        return None
    if path.is_dir():
        return path.name if is_dicom_folder(path) else None
    lower = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def find_cases(folder: str | Path, exclude: Path | None = None) -> list[Case]:
    """The CTs in ``folder``, sorted by name (``exclude``: a sub-folder to ignore, the output)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("expected a folder of CTs", folder)
    cases: dict[str, Case] = {}
    excluded = exclude.resolve() if exclude is not None else None
    for entry in sorted(folder.iterdir()):
        if excluded is not None and entry.resolve() == excluded:
            continue
        name = case_name(entry)
        if name is None:
            log.info("not a CT, ignored: %s", entry)
            continue
        if name in cases:
            raise InputError(
                f"two inputs would write to the same case folder {name!r}: "
                f"{cases[name].path.name} and {entry.name}; rename one",
                folder,
            )
        cases[name] = Case(name, entry)
    if not cases:
        raise InputError(
            "found no CTs here: expected image files (.nii.gz, .nii, .nrrd, .mha) or "
            "sub-folders of DICOM files",
            folder,
        )
    return [cases[k] for k in sorted(cases)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (0-based)."""
    parts = text.split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        i, n = int(parts[0]), int(parts[1])
    except ValueError:
        raise InputError(f"--shard must look like i/n (for example 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard i/n needs n >= 1 and 0 <= i < n (i is 0-based), got {text!r}")
    return i, n


def shard_cases(cases: list[Case], shard: tuple[int, int] | None) -> list[Case]:
    """Cases of shard ``(i, n)``: every n-th case of the sorted list, starting at i."""
    if shard is None:
        return list(cases)
    i, n = shard
    ordered = sorted(cases, key=lambda c: c.name)
    return ordered[i::n]


def is_finished(case_out: Path) -> bool:
    """A case is finished when its output folder holds ``run.json`` (written last)."""
    return (case_out / "run.json").is_file()


def _remove_stale_staging(out: Path, name: str) -> None:
    """Staging folders of this case left by a killed run (``.NAME.partial-*``).

    Compared by prefix, not with ``Path.glob``: a glob pattern per case name leaves a compiled
    pattern (about 1 KB) in pathlib's selector cache and ``re``'s cache for each new case, which
    keeps memory creeping up over the first few hundred cases of a batch (both are bounded).
    """
    if not out.is_dir():
        return
    prefix = f".{name}.partial-"
    for stale in out.iterdir():
        if stale.name.startswith(prefix) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


#: Callback for progress: ``(case, status, detail)`` with status "start", "done",
#: "skipped" or "failed" (detail: seconds as text, or the reason).
CaseCallback = Callable[[str, str, str], None]


def run_batch(
    folder: str | Path,
    out: str | Path,
    analyzer: Any = None,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    on_case: CaseCallback | None = None,
    export: bool = True,
    **analyzer_options: Any,
) -> BatchSummary:
    """Analyze every CT of ``folder`` (or of one shard) into ``out/<case>/``.

    ``analyzer``: an :class:`lungspread.analyze.Analyzer` to reuse; otherwise one is built
    from ``analyzer_options`` (``model``, ``tta``, ``device``, ``force_ct``, ...).
    With ``overwrite`` finished cases are analyzed again. Returns the summary; it is also
    written to ``out/batch.json`` (``out/batch-shard-I-of-N.json`` for a shard).
    """
    from lungspread.analyze import Analyzer
    from lungspread.outputs import write_json

    folder, out = Path(folder), Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is a file, expected an output folder", out)
    cases = shard_cases(find_cases(folder, exclude=out), shard)
    summary = BatchSummary(out=out, cases=[c.name for c in cases], shard=shard)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", out) from exc
    if analyzer is None:
        analyzer = Analyzer(**analyzer_options)
    analyzer.load()  # a model problem is one error for the batch, not one per case

    def tell(name: str, status: str, detail: str = "") -> None:
        if on_case is not None:
            on_case(name, status, detail)

    for case in cases:
        case_out = out / case.name
        if is_finished(case_out) and not overwrite:
            summary.skipped.append(case.name)
            tell(case.name, "skipped", "finished earlier")
            continue
        tell(case.name, "start")
        t0 = time.perf_counter()
        _remove_stale_staging(out, case.name)
        try:
            result = analyzer.run(case.path)
            result.write(case_out, overwrite=True, export=export)
            del result
        except LungspreadError as exc:
            summary.failed[case.name] = str(exc)
            tell(case.name, "failed", str(exc))
            continue
        except MemoryError:
            summary.failed[case.name] = f"{case.path}: out of memory"
            tell(case.name, "failed", summary.failed[case.name])
            continue
        except Exception as exc:  # a bug must not stop the other cases
            log.debug("case %s failed:\n%s", case.name, traceback.format_exc())
            reason = f"{case.path}: internal error ({type(exc).__name__}: {exc})"
            summary.failed[case.name] = reason
            tell(case.name, "failed", reason)
            continue
        dt = time.perf_counter() - t0
        summary.done.append(case.name)
        summary.seconds[case.name] = round(dt, 3)
        tell(case.name, "done", f"{dt:.1f} s")

    name = "batch.json" if shard is None else f"batch-shard-{shard[0]}-of-{shard[1]}.json"
    write_json(out / name, summary.to_json())
    return summary

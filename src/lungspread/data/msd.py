"""Medical Segmentation Decathlon (MSD) folders: ``dataset.json``, ``imagesTr/``, ``labelsTr/``.

:meth:`MSDDataset.open` reads and checks ``dataset.json`` and that every listed file exists;
:meth:`MSDDataset.load_case` reads one case and checks its label (values among the declared
labels, same voxel grid as the image); :meth:`MSDDataset.validate` runs those checks over every
case and returns the problems.

Accepted ``dataset.json`` forms:

* MSD (Decathlon): ``{"modality": {"0": "CT"}, "labels": {"0": "background", "1": "cancer"},
  "training": [{"image": "./imagesTr/lung_001.nii.gz", "label": "./labelsTr/lung_001.nii.gz"}]}``.
  A training entry may carry ``"patient"`` (lungspread's extension): cases of one patient stay
  in one fold of :func:`lungspread.data.splits.kfold_splits`.
* nnU-Net v2: ``"channel_names"`` instead of ``"modality"``, ``"labels"`` as ``{name: value}``,
  no ``"training"`` list: the cases are found as ``imagesTr/<case>_0000<file_ending>`` with
  ``labelsTr/<case><file_ending>``.

Only the first channel (``"0"``) is used: multi-channel 4D images (MSD brain, prostate) are
not supported by :meth:`load_case`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import GeometryError, InputError, LungspreadError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

DATASET_JSON = "dataset.json"
_NIFTI_ENDINGS = (".nii.gz", ".nii")
#: Largest tolerated difference between an image's and its label's affine entries (mm).
GRID_TOLERANCE_MM = 1e-2
#: Largest ``dataset.json`` read (bytes); the MSD tasks' files are tens of KB.
MAX_DATASET_JSON_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class MSDCase:
    """One training case: ``id`` (file name without extension), image and label paths."""

    id: str
    image: Path
    label: Path | None
    patient: str | None = None


def nifti_ending(path: str | Path) -> str:
    """The NIfTI ending of ``path`` as written (``.nii.gz``, ``.NII``, ...), or ``""``."""
    name = Path(path).name
    for end in _NIFTI_ENDINGS:
        if name.lower().endswith(end):
            return name[-len(end) :]
    return ""


@contextmanager
def staged_dataset(out: Path) -> Iterator[Path]:
    """A fresh ``OUT.partial`` folder (with ``imagesTr/`` and ``labelsTr/``) to write a new MSD
    folder into: renamed to ``out`` when the block ends, removed when it fails, so that an
    interrupted writer leaves no half-written dataset behind."""
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "imagesTr").mkdir(parents=True)
    (tmp / "labelsTr").mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(out)


def file_ending(path: str | Path) -> str:
    """The ending a case file keeps when it is renamed: its NIfTI ending, else its suffix."""
    return nifti_ending(path) or Path(path).suffix


def case_id_from_path(path: str | Path, strip_channel: bool = False) -> str:
    """``imagesTr/lung_001.nii.gz`` -> ``lung_001`` (``lung_001_0000`` -> ``lung_001`` if asked)."""
    name = Path(path).name
    name = name[: len(name) - len(nifti_ending(name))]
    if strip_channel and len(name) > 5 and name[-5] == "_" and name[-4:].isdigit():
        name = name[:-5]
    return name


def _shown(value: Any, limit: int = 80) -> str:
    """A value from ``dataset.json`` for an error message: one line, at most ``limit`` chars.

    Strings and numbers as ``repr`` (quotes and escapes, so a newline or NUL cannot break the
    message), anything else as compact JSON; never fails (deep nesting, huge containers).
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        try:
            text = repr(value)
        except ValueError:  # an int too long for str()
            text = f"<integer of {value.bit_length()} bits>"  # type: ignore[union-attr]
    else:
        try:
            text = json.dumps(value, ensure_ascii=True)
        except (ValueError, TypeError, RecursionError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shown_path(path: Path, limit: int = 160) -> str:
    """A path for an error message: as it is when printable, else quoted with escapes."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= limit else text[: limit // 2 - 2] + "..." + text[-limit // 2 :]


def _check_file(path: Path, what: str, jpath: Path) -> None:
    """Raise :class:`InputError` (naming ``jpath``) unless ``path`` is an existing file."""
    try:
        ok = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, an unencodable name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(
            f"{what} cannot be looked up ({reason}): {_shown_path(path)}", jpath
        ) from None
    if not ok:
        raise InputError(f"{what} is missing ({_shown_path(path)})", jpath)


def _load_json(jpath: Path) -> Any:
    """The parsed ``dataset.json``; every way it can be unreadable is an :class:`InputError`."""
    try:
        size = jpath.stat().st_size
        if size > MAX_DATASET_JSON_BYTES:
            raise InputError(
                f"dataset.json is {size / 2**20:.0f} MB; expected a small JSON file (at most "
                f"{MAX_DATASET_JSON_BYTES // 2**20} MB)",
                jpath,
            )
        raw = jpath.read_bytes()
    except OSError as exc:
        raise InputError(f"dataset.json cannot be read ({exc.strerror})", jpath) from exc
    try:
        return json.loads(raw.decode("utf-8-sig"))  # a byte-order mark is tolerated
    except UnicodeDecodeError as exc:
        raise InputError(
            f"dataset.json is not UTF-8 text ({exc.reason} at byte {exc.start})", jpath
        ) from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            f"dataset.json is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            jpath,
        ) from exc
    except RecursionError:
        raise InputError(
            "dataset.json is nested too deeply (hundreds of levels); expected a dataset "
            "description a few levels deep",
            jpath,
        ) from None
    except ValueError as exc:  # e.g. a number longer than Python's 4300-digit limit
        reason = str(exc).split(";")[0]
        raise InputError(
            f"dataset.json holds a value that cannot be read ({reason})", jpath
        ) from None


def _as_index_map(obj: Any, key: str, path: Path) -> dict[str, str]:
    """Parse ``{"0": "CT"}`` (or nnU-Net v2 ``{"background": 0}`` for labels) into str->str."""
    if not isinstance(obj, dict) or not obj:
        raise InputError(
            f'key {key!r} must be a non-empty object like {{"0": ...}}, found '
            f"{type(obj).__name__} {_shown(obj, 60)}",
            path,
        )
    out: dict[str, str] = {}
    v2 = all(isinstance(v, int) and not isinstance(v, bool) for v in obj.values())
    for k, v in obj.items():
        idx, name = (v, k) if v2 else (k, v)
        try:
            i = int(str(idx))
        except ValueError:
            raise InputError(
                f'key {key!r}: {_shown(idx)} is not an integer index (expected e.g. {{"0": ...}})',
                path,
            ) from None
        if i < 0 or i > 255:
            raise InputError(f"key {key!r}: index {i} out of range 0-255", path)
        if not isinstance(name, str):
            raise InputError(
                f"key {key!r}: value for {_shown(idx)} must be a string, found {_shown(name)}",
                path,
            )
        if str(i) in out:
            raise InputError(f"key {key!r}: index {i} declared twice", path)
        out[str(i)] = name
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def _resolve_inside(root: Path, rel: Any, what: str, path: Path) -> Path:
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"{what} must be a relative path string, found {_shown(rel)}", path)
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise InputError(f"{what} {_shown(rel)} must be a path inside the dataset folder", path)
    return root / p


@dataclass
class MSDDataset:
    """An MSD-format dataset folder, checked on opening."""

    root: Path
    name: str
    modality: dict[str, str]
    labels: dict[str, str]
    cases: list[MSDCase]
    test_images: list[Path] = field(default_factory=list)
    description: str = ""
    json_data: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> MSDDataset:
        """Read ``root/dataset.json`` and check that every listed image and label exists."""
        root = Path(root)
        if not root.exists():
            raise InputError("no such dataset folder", root)
        if not root.is_dir():
            raise InputError("expected an MSD dataset folder, found a file", root)
        jpath = root / DATASET_JSON
        if not jpath.is_file():
            raise InputError(
                "no dataset.json here; expected an MSD-format folder (dataset.json, imagesTr/, "
                "labelsTr/)",
                root,
            )
        data = _load_json(jpath)
        if not isinstance(data, dict):
            raise InputError(
                f"dataset.json must hold a JSON object, found {type(data).__name__}", jpath
            )
        if "modality" in data:
            modality = _as_index_map(data["modality"], "modality", jpath)
        elif "channel_names" in data:
            modality = _as_index_map(data["channel_names"], "channel_names", jpath)
        else:
            raise InputError(
                'dataset.json has no key \'modality\' (expected e.g. "modality": {"0": "CT"})',
                jpath,
            )
        if "0" not in modality:
            raise InputError("key 'modality' must declare channel \"0\"", jpath)
        if "labels" not in data:
            raise InputError(
                'dataset.json has no key \'labels\' (expected e.g. "labels": {"0": '
                '"background", "1": "cancer"})',
                jpath,
            )
        labels = _as_index_map(data["labels"], "labels", jpath)
        if "0" not in labels:
            raise InputError("key 'labels' must declare label \"0\" (background)", jpath)
        name = data.get("name", root.name)
        if not isinstance(name, str):
            raise InputError(f"key 'name' must be a string, found {_shown(name)}", jpath)
        cases = cls._cases_from_json(root, data, jpath)
        if not cases:
            raise InputError("dataset.json lists no training cases", jpath)
        test_raw = data.get("test", [])
        test_images: list[Path] = []
        if isinstance(test_raw, list):
            for t in test_raw:
                rel = t.get("image") if isinstance(t, dict) else t
                if (
                    isinstance(rel, str)
                    and not Path(rel).is_absolute()
                    and ".." not in Path(rel).parts
                ):
                    test_images.append(root / rel)
        n_declared = data.get("numTraining")
        if isinstance(n_declared, int) and n_declared != len(cases):
            log.warning(
                "%s: numTraining is %d but %d cases are listed", jpath, n_declared, len(cases)
            )
        desc = data.get("description", "")
        return cls(
            root=root,
            name=name,
            modality=modality,
            labels=labels,
            cases=cases,
            test_images=test_images,
            description=desc if isinstance(desc, str) else "",
            json_data=data,
        )

    @staticmethod
    def _cases_from_json(root: Path, data: dict[str, Any], jpath: Path) -> list[MSDCase]:
        cases: list[MSDCase] = []
        if "training" in data:
            training = data["training"]
            if not isinstance(training, list):
                raise InputError(
                    f'key \'training\' must be a list of {{"image", "label"}} objects, found '
                    f"{type(training).__name__}",
                    jpath,
                )
            for n, entry in enumerate(training):
                if not isinstance(entry, dict) or "image" not in entry:
                    raise InputError(
                        f"key 'training' entry {n} must be an object with an \"image\" path, "
                        f"found {_shown(entry)}",
                        jpath,
                    )
                image = _resolve_inside(root, entry["image"], f"training[{n}].image", jpath)
                label = (
                    None
                    if entry.get("label") is None
                    else _resolve_inside(root, entry["label"], f"training[{n}].label", jpath)
                )
                patient = entry.get("patient")
                if patient is not None and not isinstance(patient, str):
                    raise InputError(f"training[{n}].patient must be a string", jpath)
                cases.append(MSDCase(case_id_from_path(image), image, label, patient))
        else:
            ending = data.get("file_ending", ".nii.gz")
            if not isinstance(ending, str) or not ending:
                raise InputError(
                    f"key 'file_ending' must be a string, found {_shown(ending)}", jpath
                )
            images_dir = root / "imagesTr"
            if not images_dir.is_dir():
                raise InputError(
                    "dataset.json has no 'training' list and there is no imagesTr/ folder", jpath
                )
            v2 = "channel_names" in data
            try:
                listing = sorted(images_dir.iterdir())
            except OSError as exc:
                raise InputError(f"cannot list imagesTr/ ({exc.strerror})", jpath) from exc
            for img in listing:
                if img.name.startswith(".") or not img.name.endswith(ending):
                    continue
                stem = img.name[: -len(ending)]
                if v2:
                    if not stem.endswith("_0000"):
                        continue
                    stem = stem[:-5]
                lab = root / "labelsTr" / f"{stem}{ending}"
                cases.append(MSDCase(stem, img, lab))
        seen: dict[str, Path] = {}
        for c in cases:
            if c.id in seen:
                raise InputError(f"case id {_shown(c.id)} is listed twice", jpath)
            seen[c.id] = c.image
            _check_file(c.image, f"image of case {_shown(c.id)}", jpath)
            if c.label is not None:
                _check_file(c.label, f"label of case {_shown(c.id)}", jpath)
        return cases

    # -- facts ------------------------------------------------------------------------------
    @property
    def primary_modality(self) -> str:
        """The modality of channel 0 (``"CT"`` for Task06)."""
        return self.modality["0"]

    @property
    def is_ct(self) -> bool:
        """True when channel 0 is ``"CT"`` (compared case-insensitively, as nnU-Net does)."""
        return self.primary_modality.casefold() == "ct"

    @property
    def label_values(self) -> list[int]:
        return [int(k) for k in self.labels]

    @property
    def groups(self) -> dict[str, str]:
        """Case id -> patient id (the case id itself where dataset.json names no patient)."""
        return {c.id: c.patient or c.id for c in self.cases}

    @cached_property
    def is_2d(self) -> bool:
        """True when the cases are single-slice NIfTIs (judged from the first case's header)."""
        return header_shape(self.cases[0].image)[2] == 1

    def case(self, case_id: str) -> MSDCase:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise InputError(f"no case {case_id!r} in this dataset", self.root)

    # -- reading ------------------------------------------------------------------------------
    def load_case(self, case: MSDCase | str) -> tuple[Volume, Volume | None]:
        """Image and label (uint8) of a case, checked: see :func:`load_case`."""
        c = self.case(case) if isinstance(case, str) else case
        return load_case(c, allowed_labels=self.label_values)

    def validate(self, check_voxels: bool = True) -> list[LungspreadError]:
        """Check every case; return the problems found (empty when all is well).

        With ``check_voxels`` each case is read (label values and grids); otherwise only the
        NIfTI headers are compared (shape and affine), which is fast.
        """
        problems: list[LungspreadError] = []
        for c in self.cases:
            try:
                if check_voxels:
                    self.load_case(c)
                elif c.label is not None:
                    check_same_grid_headers(c.image, c.label)
            except LungspreadError as exc:
                problems.append(exc)
        return problems


def header_shape(path: Path) -> tuple[int, int, int]:
    """Shape of a NIfTI file from its header alone (2D shapes get a trailing 1)."""
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as exc:
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path) from exc
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise InputError(f"expected a 3D image, found shape {shape}", path)
    return (shape[0], shape[1], shape[2])


def header_grid(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, affine) of a NIfTI file read from its header."""
    import nibabel as nib

    shape = header_shape(path)
    try:
        img: Any = nib.load(str(path))
        affine = np.asarray(img.affine, dtype=np.float64)
    except Exception as exc:  # pragma: no cover - header_shape has read it already
        raise InputError(f"not a readable NIfTI file ({exc})", path) from exc
    return shape, affine


def _grid_error(image: Path, label: Path, what: str) -> GeometryError:
    return GeometryError(f"label {label} does not match its image {image}: {what}")


def check_same_grid_headers(image: Path, label: Path) -> None:
    """Raise :class:`GeometryError` when the two NIfTI headers describe different grids."""
    s1, a1 = header_grid(image)
    s2, a2 = header_grid(label)
    if s1 != s2:
        raise _grid_error(image, label, f"shape {s2} vs image shape {s1}")
    if not np.allclose(a1, a2, atol=GRID_TOLERANCE_MM, rtol=0):
        diff = float(np.max(np.abs(a1 - a2)))
        raise _grid_error(image, label, f"affines differ by up to {diff:.4g} mm")


def load_case(
    case: MSDCase, allowed_labels: list[int] | None = None
) -> tuple[Volume, Volume | None]:
    """Read a case's image and label; the label comes back as uint8 on the image's grid.

    Raises :class:`GeometryError` when the label's shape or affine differs from the image's
    (naming both files) and :class:`InputError` when the label holds values that are not
    integers or not among ``allowed_labels``.
    """
    from lungspread.io import read_volume

    image = read_volume(case.image)
    if image.array.dtype.kind == "f" and not np.all(np.isfinite(image.array)):
        bad = int(np.count_nonzero(~np.isfinite(image.array)))
        raise InputError(
            f"image holds {bad} NaN or infinite voxel(s); expected finite intensities", case.image
        )
    image = Volume(image.array, image.affine, {**image.meta, "case": case.id})
    if case.label is None:
        return image, None
    label = read_volume(case.label)
    if label.shape != image.shape:
        raise _grid_error(
            case.image, case.label, f"shape {label.shape} vs image shape {image.shape}"
        )
    if not np.allclose(label.affine, image.affine, atol=GRID_TOLERANCE_MM, rtol=0):
        diff = float(np.max(np.abs(label.affine - image.affine)))
        raise _grid_error(case.image, case.label, f"affines differ by up to {diff:.4g} mm")
    arr = label.array
    values = np.unique(arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            odd = [float(v) for v in values if not (np.isfinite(v) and v == round(float(v)))][:5]
            raise InputError(
                f"label holds non-integer values {odd}; expected label indices", case.label
            )
    elif arr.dtype.kind not in "iub":
        raise InputError(f"label has dtype {arr.dtype}; expected integer label indices", case.label)
    ints = [int(v) for v in values]
    allowed = set(allowed_labels) if allowed_labels is not None else set(range(256))
    extra = [v for v in ints if v not in allowed]
    if extra:
        raise InputError(
            f"label holds values {extra[:10]} not among the declared labels {sorted(allowed)}",
            case.label,
        )
    lab = Volume(arr.astype(np.uint8), image.affine.copy(), {**label.meta, "case": case.id})
    return image, lab


# -- writing ---------------------------------------------------------------------------------
def write_dataset_json(
    root: str | Path,
    *,
    name: str,
    modality: dict[str, str],
    labels: dict[str, str],
    cases: list[MSDCase],
    description: str = "",
    entry_fields: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Path:
    """Write an MSD ``dataset.json`` listing ``cases`` (paths made relative to ``root``).

    ``entry_fields``, one dict per case, adds further fields to the cases' entries (their
    image, label and patient win); ``extra`` adds top-level keys."""
    from lungspread.outputs import write_json

    root = Path(root)
    if entry_fields is not None and len(entry_fields) != len(cases):
        raise ValueError(f"{len(entry_fields)} entry_fields for {len(cases)} cases")
    training: list[dict[str, Any]] = []
    for n, c in enumerate(cases):
        entry: dict[str, Any] = dict(entry_fields[n]) if entry_fields is not None else {}
        entry["image"] = "./" + c.image.relative_to(root).as_posix()
        if c.label is not None:
            entry["label"] = "./" + c.label.relative_to(root).as_posix()
        if c.patient is not None:
            entry["patient"] = c.patient
        training.append(entry)
    data: dict[str, Any] = {
        "name": name,
        "description": description,
        "tensorImageSize": "3D",
        "modality": modality,
        "labels": labels,
        "numTraining": len(cases),
        "numTest": 0,
        **extra,
        "training": training,
        "test": [],
    }
    path = root / DATASET_JSON
    write_json(path, data)
    return path


def write_case(
    root: str | Path,
    case_id: str,
    image: Volume,
    label: Volume | None,
    patient: str | None = None,
) -> MSDCase:
    """Write ``imagesTr/<id>.nii.gz`` (and ``labelsTr/<id>.nii.gz``) and return the case."""
    from lungspread.io import write_volume

    root = Path(root)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    img_path = write_volume(image, root / "imagesTr" / f"{case_id}.nii.gz")
    lab_path = None
    if label is not None:
        (root / "labelsTr").mkdir(parents=True, exist_ok=True)
        lab_path = write_volume(label, root / "labelsTr" / f"{case_id}.nii.gz")
    return MSDCase(case_id, img_path, lab_path, patient)

"""Mutation fuzzing of every reader: broken files raise lungspread errors and nothing else.

A few hundred inputs per reader here (seconds); ``benchmarks/fuzz_readers.py`` runs 10,000+.
The last tests replay the ``dataset.json`` inputs that the fuzzer found escaping (before the
reader was fixed) as fixed regression cases.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lungspread.data.msd import MSDDataset
from lungspread.errors import InputError
from lungspread.io.fuzz import READERS, fuzz_reader, mutate, read_input, seed_files
from lungspread.io.readers import read_volume


def _write_seed(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


@pytest.mark.parametrize("reader", READERS)
def test_seeds_are_valid(tmp_path: Path, reader: str) -> None:
    for i, files in enumerate(seed_files(reader)):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        _write_seed(folder, files)
        if reader == "dataset.json":
            ds = MSDDataset.open(folder)
            assert ds.is_ct and len(ds.cases) == 2 and ds.validate() == []
            read_input(reader, folder)
            continue
        target = folder if reader == "dicom" else folder / next(iter(files))
        assert read_volume(target).array.size > 0


@pytest.mark.parametrize("reader", READERS)
def test_only_lungspread_errors_escape(tmp_path: Path, reader: str) -> None:
    report = fuzz_reader(reader, 300, seed=11, workdir=tmp_path)
    assert report.n_inputs == 300
    assert report.n_escapes == 0, report.escapes
    # the mutations do reach the readers' checks: most inputs are refused, some still read
    assert report.outcomes["read"] > 10
    assert sum(v for k, v in report.outcomes.items() if k != "read") > 50
    assert report.slowest_s < 5.0


def test_mutations_are_deterministic() -> None:
    import random

    data = seed_files("nrrd")[0]["a.nrrd"]
    a = [mutate("a.nrrd", data, random.Random(f"x{i}")) for i in range(20)]
    b = [mutate("a.nrrd", data, random.Random(f"x{i}")) for i in range(20)]
    assert a == b
    assert sum(m != data for m in a) >= 18


def test_json_mutations_reach_the_dataset_checks() -> None:
    """The structure-aware mutations keep most documents valid JSON (so the checks after
    parsing are exercised) and produce the kinds of damage the fuzzer is meant to try."""
    data = seed_files("dataset.json")[0]["dataset.json"]
    texts = [mutate("dataset.json", data, random.Random(f"j{i}")) for i in range(400)]
    parsed = 0
    for t in texts:
        try:
            json.loads(t.decode("utf-8"))
            parsed += 1
        except (ValueError, RecursionError):
            pass
    assert 120 < parsed < 360, parsed
    joined = b"\n".join(texts)
    for needle in (b"/etc/passwd", b"../", b"[[[[[[[[", b"99999999", b"NaN", b"\\ud800"):
        assert needle in joined, needle


def _msd(tmp_path: Path, text: bytes | str) -> Path:
    """The first dataset.json seed's folder with ``text`` as its dataset.json."""
    root = tmp_path / "ds"
    root.mkdir()
    _write_seed(root, seed_files("dataset.json")[0])
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    (root / "dataset.json").write_bytes(data)
    return root


HEAD = '{"modality": {"0": "CT"}, "labels": {"0": "bg"}, '


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # found by the fuzzer: RecursionError, ValueError and OSError escaped before
        ("[" * 100_000 + "]" * 100_000, "dataset.json is nested too deeply"),
        ('{"a":' * 30_000 + "1" + "}" * 30_000, "dataset.json is nested too deeply"),
        (
            '{"numTraining": ' + "9" * 5000 + "}",
            "holds a value that cannot be read \\(Exceeds the limit \\(4300 digits\\)",
        ),
        (
            HEAD + '"training": [{"image": "imagesTr/' + "x" * 300 + '.nii.gz"}]}',
            "image of case 'xxxx.*cannot be looked up \\(File name too long\\)",
        ),
        (
            HEAD + '"training": [{"image": "' + "d/" * 2100 + 'x.nii.gz"}]}',
            "image of case 'x' cannot be looked up \\(File name too long\\)",
        ),
        # messages stay one line whatever the strings hold
        (
            HEAD + '"training": [{"image": "imagesTr/a\\nb.nii.gz"}]}',
            "image of case 'a\\\\nb' is missing \\('.*imagesTr/a\\\\nb.nii.gz'\\)",
        ),
        (HEAD + '"training": [{"image": "imagesTr/\\u0000.nii.gz"}]}', "is missing"),
        (HEAD + '"training": [{"image": "imagesTr/\\ud800.nii.gz"}]}', "is missing"),
        (HEAD + '"name": "x\\ny", "training": [{"image": 7}]}', "found 7"),
        (HEAD + '"training": [{"image": "../../etc/passwd"}]}', "inside the dataset folder"),
        (HEAD + '"training": [{"image": "/etc/passwd"}]}', "inside the dataset folder"),
        ('{"modality": {"0": "CT"}, "labels": ' + "[" * 500 + "]" * 500 + "}", "found list"),
        ("\ud800", "not UTF-8 text"),
        # a byte-order mark (Notepad writes one) is accepted: the next check is reached
        ('\ufeff{"modality": {"0": "CT"}}', "has no key 'labels'"),
    ],
)
def test_dataset_json_regressions(tmp_path: Path, text: str, expected: str) -> None:
    root = _msd(tmp_path, text)
    with pytest.raises(InputError, match=expected) as info:
        MSDDataset.open(root)
    message = str(info.value)
    assert message.startswith(f"{root / 'dataset.json'}: ")  # names the file
    assert "\n" not in message and "\r" not in message and len(message) < 400


def test_huge_dataset_json_is_refused_before_reading(tmp_path: Path) -> None:
    root = _msd(tmp_path, b"{}")
    with open(root / "dataset.json", "wb") as fh:  # sparse: no disk space used
        fh.truncate(65 * 1024 * 1024)
    with pytest.raises(InputError, match=r"dataset\.json is 65 MB; expected a small JSON file"):
        MSDDataset.open(root)

"""Mutation fuzzing of every reader: broken files raise lungspread errors and nothing else.

A few hundred inputs per reader here (seconds); ``benchmarks/fuzz_readers.py`` runs 10,000+.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lungspread.io.fuzz import READERS, fuzz_reader, mutate, seed_files
from lungspread.io.readers import read_volume


@pytest.mark.parametrize("reader", READERS)
def test_seeds_are_valid(tmp_path: Path, reader: str) -> None:
    for i, files in enumerate(seed_files(reader)):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
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

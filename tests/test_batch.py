"""Batch mode: case discovery, failures that do not stop the batch, restarts, shards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analyze_fixtures import phantom_ct, write_tiny_model
from lungspread.batch import (
    Case,
    find_cases,
    is_dicom_folder,
    parse_shard,
    run_batch,
    shard_cases,
)
from lungspread.cli.app import main
from lungspread.errors import InputError
from lungspread.io import write_volume

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("model"), bias=1.0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two good phantom CTs, one corrupt .nii.gz and one unrelated file."""
    src = tmp_path / "cts"
    src.mkdir()
    write_volume(phantom_ct(0)[0], src / "a_good.nii.gz")
    write_volume(phantom_ct(1)[0], src / "c_good.nrrd")
    (src / "b_corrupt.nii.gz").write_bytes(b"\x1f\x8b\x08\x00not really gzip" * 10)
    (src / "notes.txt").write_text("not a CT")
    return src


def test_find_cases_sorted_with_names_and_formats(folder: Path) -> None:
    cases = find_cases(folder)
    assert [c.name for c in cases] == ["a_good", "b_corrupt", "c_good"]
    assert cases[2].path.name == "c_good.nrrd"


def test_find_cases_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="found no CTs"):
        find_cases(tmp_path)
    (tmp_path / "x.nii.gz").write_bytes(b"1")
    (tmp_path / "x.nrrd").write_bytes(b"1")
    with pytest.raises(InputError, match="same case folder 'x'"):
        find_cases(tmp_path)


def test_a_folder_of_dicom_files_is_one_ct(tmp_path: Path) -> None:
    dcm = tmp_path / "series"
    dcm.mkdir()
    (dcm / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    assert is_dicom_folder(dcm)
    batch = tmp_path / "batch"
    batch.mkdir()
    shutil.copytree(dcm, batch / "patient7")
    (batch / "p8.nii.gz").write_bytes(b"1")
    assert not is_dicom_folder(batch)
    assert [(c.name, c.path.is_dir()) for c in find_cases(batch)] == [
        ("p8", False),
        ("patient7", True),
    ]


def test_real_dicom_folder_is_detected(shared_data: Path) -> None:
    assert is_dicom_folder(shared_data / "lidc-idri-0001" / "dicom")
    assert not is_dicom_folder(shared_data / "lidc-idri-0001")


def test_shards_partition_the_sorted_cases() -> None:
    cases = [Case(n, Path(n)) for n in ["e", "a", "d", "b", "c"]]
    assert [c.name for c in shard_cases(cases, (0, 2))] == ["a", "c", "e"]
    assert [c.name for c in shard_cases(cases, (1, 2))] == ["b", "d"]
    parts = [shard_cases(cases, (i, 3)) for i in range(3)]
    names = sorted(c.name for part in parts for c in part)
    assert names == ["a", "b", "c", "d", "e"]  # every case exactly once
    assert shard_cases(cases, None) == cases


@pytest.mark.parametrize("text", ["2/2", "-1/3", "a/b", "1", "0/0", "1/2/3"])
def test_bad_shards_are_rejected(text: str) -> None:
    with pytest.raises(InputError, match="shard"):
        parse_shard(text)


def test_batch_goes_on_after_a_failure_and_restarts_only_unfinished_cases(
    folder: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["analyze", str(folder), "--out", str(out), "--model", str(tiny_model)])
    text = capsys.readouterr().out
    assert code == 1
    assert (out / "a_good" / "run.json").is_file() and (out / "c_good" / "run.json").is_file()
    assert not (out / "b_corrupt").exists()
    assert "Failed cases" in text and "b_corrupt" in text
    summary = json.loads((out / "batch.json").read_text())
    assert summary["done"] == ["a_good", "c_good"]
    assert [f["case"] for f in summary["failed"]] == ["b_corrupt"]
    assert "b_corrupt.nii.gz" in summary["failed"][0]["reason"]

    # restart: finished cases are skipped (untouched), the failed one is tried again;
    # a case whose run.json is missing (killed before the end) is redone
    stamp = (out / "a_good" / "tumor.nii.gz").stat().st_mtime_ns
    (out / "c_good" / "run.json").unlink()
    (out / ".c_good.partial-dead").mkdir()  # staging left by a killed run
    code = main(["analyze", str(folder), "--out", str(out), "--model", str(tiny_model)])
    assert code == 1
    summary = json.loads((out / "batch.json").read_text())
    assert summary["skipped"] == ["a_good"]
    assert summary["done"] == ["c_good"]
    assert [f["case"] for f in summary["failed"]] == ["b_corrupt"]
    assert (out / "a_good" / "tumor.nii.gz").stat().st_mtime_ns == stamp
    assert (out / "c_good" / "run.json").is_file()
    assert not (out / ".c_good.partial-dead").exists()


def test_shard_runs_only_its_cases(folder: Path, tiny_model: Path, tmp_path: Path) -> None:
    (folder / "b_corrupt.nii.gz").unlink()
    out = tmp_path / "out"
    summary = run_batch(folder, out, model=tiny_model, device="cpu", shard=(1, 2))
    assert summary.cases == ["c_good"] and summary.done == ["c_good"] and summary.ok
    assert not (out / "a_good").exists()
    assert json.loads((out / "batch-shard-1-of-2.json").read_text())["done"] == ["c_good"]
    code = main(
        ["analyze", str(folder), "--out", str(out), "--model", str(tiny_model), "--shard", "0/2"]
    )
    assert code == 0
    assert (out / "a_good" / "run.json").is_file()


def test_batch_with_a_bad_model_fails_once_before_any_case(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(folder), "--out", str(tmp_path / "o"), "--model", str(tmp_path)])
    assert code == 2
    assert "model.json" in capsys.readouterr().err
    assert not (tmp_path / "o" / "a_good").exists()

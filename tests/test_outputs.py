from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lungspread.errors import OutputError
from lungspread.outputs import RunRecord, output_dir, write_json


def test_output_dir_moves_files_into_place_on_success(tmp_path: Path) -> None:
    out = tmp_path / "result"
    with output_dir(out) as stage:
        (stage / "a.txt").write_text("hello")
        (stage / "sub").mkdir()
        (stage / "sub" / "b.txt").write_text("world")
        assert not out.exists() or not any(out.iterdir())
    assert (out / "a.txt").read_text() == "hello"
    assert (out / "sub" / "b.txt").read_text() == "world"
    assert [p.name for p in tmp_path.iterdir()] == ["result"]  # staging folder removed


def test_output_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "result"
    with pytest.raises(RuntimeError), output_dir(out) as stage:
        (stage / "half.nii.gz").write_bytes(b"partial")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_output_dir_refuses_non_empty_folder_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "result"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"), output_dir(out):
        pass
    assert (out / "old.txt").read_text() == "keep me"
    with output_dir(out, overwrite=True) as stage:
        (stage / "old.txt").write_text("new")
    assert (out / "old.txt").read_text() == "new"


def test_output_dir_refuses_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="is a file"), output_dir(f):
        pass


def test_write_json_turns_numpy_and_nan_into_plain_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_json(path, {"a": np.float32(1.5), "b": math.nan, "c": np.arange(3), "d": Path("p")})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": None, "c": [0, 1, 2], "d": "p"}


def test_run_record_has_version_inputs_and_timings(tmp_path: Path) -> None:
    rec = RunRecord("lungs", {"ct": "ct.nii.gz"}, {"force_ct": False})
    rec.stage("read")
    rec.write(tmp_path)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["command"] == "lungs"
    assert data["inputs"] == {"ct": "ct.nii.gz"}
    assert set(data["timings_s"]) == {"read", "total"}
    assert data["timings_s"]["total"] >= data["timings_s"]["read"] >= 0


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os
    import stat

    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask

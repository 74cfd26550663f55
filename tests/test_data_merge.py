"""``lungspread dataset merge``: several MSD folders into one, nothing lost or overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lungspread.cli.app import main
from lungspread.data.merge import merge_datasets
from lungspread.data.msd import MSDDataset, write_case, write_dataset_json
from lungspread.errors import InputError
from lungspread.volume import Volume


def build(root: Path, n: int, value: int, labels: dict[str, str] | None = None) -> Path:
    cases = []
    for i in range(n):
        arr = np.full((8, 8, 4), value + i, np.int16)
        lab = np.zeros(arr.shape, np.uint8)
        lab[2:4, 2:4, 1] = 1
        vol = Volume.from_spacing(arr, (1.0, 1.0, 2.0))
        cases.append(write_case(root, f"case_{i}", vol, vol.with_array(lab), patient=f"p{i}"))
    write_dataset_json(
        root,
        name=root.name,
        modality={"0": "CT"},
        labels=labels or {"0": "background", "1": "tumor"},
        cases=cases,
        entry_fields=[{"made_by": root.name} for _ in cases],
    )
    return root


def test_merge_keeps_every_case_under_a_prefixed_id(tmp_path: Path) -> None:
    a = build(tmp_path / "first", 2, 100)
    b = build(tmp_path / "second", 3, 200)
    merged = merge_datasets(tmp_path / "both", [a, b])
    assert [c.id for c in merged.cases] == [
        "first_case_0",
        "first_case_1",
        "second_case_0",
        "second_case_1",
        "second_case_2",
    ]
    assert [c.patient for c in merged.cases] == ["p0", "p1", "p0", "p1", "p2"]
    assert not merged.validate()
    # the voxels are the sources' own: case i of "second" holds 200 + i everywhere
    img, lab = merged.load_case(merged.cases[3])
    assert np.all(img.array == 201) and int(lab.array.sum()) == 4
    meta = json.loads((tmp_path / "both" / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["name"] == "first"
    assert meta["merged_from"] == [str(a.resolve()), str(b.resolve())]
    # every other field of a source entry is kept
    assert [e["made_by"] for e in meta["training"]] == ["first"] * 2 + ["second"] * 3
    assert not (tmp_path / "both.partial").exists()
    # the sources are untouched
    assert len(MSDDataset.open(a).cases) == 2 and len(MSDDataset.open(b).cases) == 3


def test_merge_refuses_what_it_cannot_do_safely(tmp_path: Path) -> None:
    a = build(tmp_path / "first", 1, 100)
    other_labels = build(tmp_path / "other", 1, 100, {"0": "background", "1": "nodule"})
    same_name = build(tmp_path / "x" / "first", 1, 100)
    with pytest.raises(InputError, match="at least two"):
        merge_datasets(tmp_path / "m1", [a])
    with pytest.raises(InputError, match="labels"):
        merge_datasets(tmp_path / "m2", [a, other_labels])
    with pytest.raises(InputError, match="share a name"):
        merge_datasets(tmp_path / "m3", [a, same_name])
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError, match="exists already"):
        merge_datasets(tmp_path / "taken", [a, other_labels])
    for name in ("m1", "m2", "m3", "m1.partial", "m2.partial", "m3.partial"):
        assert not (tmp_path / name).exists()


def test_merge_command_copies_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build(tmp_path / "first", 1, 100)
    b = build(tmp_path / "second", 1, 200)
    out = tmp_path / "both"
    assert main(["dataset", "merge", str(out), str(a), str(b), "--copy", "--name", "mix"]) == 0
    assert "2 cases from 2 datasets" in capsys.readouterr().out
    copied = out / "imagesTr" / "first_case_0.nii.gz"
    assert copied.stat().st_nlink == 1  # a copy, not a link to the source
    assert json.loads((out / "dataset.json").read_text())["name"] == "mix"
    # a bad input is one line on stderr and exit code 2, no traceback
    assert main(["dataset", "merge", str(tmp_path / "m"), str(a), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such dataset folder" in err and "Traceback" not in err

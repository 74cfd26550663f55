"""MSD folders: opening, validation messages, case loading."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lungspread.data.msd import (
    MSDCase,
    MSDDataset,
    case_id_from_path,
    nifti_ending,
    write_case,
    write_dataset_json,
)
from lungspread.errors import GeometryError, InputError
from lungspread.volume import Volume

LABELS = {"0": "background", "1": "cancer"}
HEAD = '{"modality": {"0": "CT"}, "labels": {"0": "bg"}, '  # a valid start of dataset.json


def build_msd(root: Path, n: int = 3, depth: int = 6, modality: str = "CT") -> MSDDataset:
    """A tiny MSD folder: CT-like volumes (air, body, a tumor blob) with labels."""
    cases: list[MSDCase] = []
    for i in range(n):
        arr = np.full((20, 18, depth), -1000, np.int16)
        arr[2:18, 2:16, :] = 30
        lab = np.zeros(arr.shape, np.uint8)
        lab[6 : 9 + i, 6:9, depth // 2 : depth // 2 + 1 if depth == 1 else depth // 2 + 2] = 1
        arr[lab > 0] = 60
        v = Volume.from_spacing(arr, (0.8, 0.8, 2.5 if depth > 1 else 1.5))
        cases.append(write_case(root, f"lung_{i:03d}", v, v.with_array(lab), patient=f"p{i // 2}"))
    write_dataset_json(root, name="Tiny", modality={"0": modality}, labels=LABELS, cases=cases)
    return MSDDataset.open(root)


def test_open_reads_everything(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds")
    assert ds.name == "Tiny"
    assert ds.modality == {"0": "CT"} and ds.is_ct
    assert ds.labels == LABELS and ds.label_values == [0, 1]
    assert [c.id for c in ds.cases] == ["lung_000", "lung_001", "lung_002"]
    assert ds.cases[0].image == tmp_path / "ds" / "imagesTr" / "lung_000.nii.gz"
    assert ds.cases[0].label == tmp_path / "ds" / "labelsTr" / "lung_000.nii.gz"
    assert ds.groups == {"lung_000": "p0", "lung_001": "p0", "lung_002": "p1"}
    assert ds.is_2d is False
    image, label = ds.load_case("lung_001")
    assert label is not None and label.array.dtype == np.uint8
    assert int(label.array.sum()) == 4 * 3 * 2
    assert image.spacing == pytest.approx((0.8, 0.8, 2.5))
    assert ds.validate() == []


def test_2d_dataset(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds", depth=1)
    assert ds.is_2d is True
    image, label = ds.load_case(ds.cases[0])
    assert image.shape == (20, 18, 1) and label is not None and label.array.sum() == 9


def test_decathlon_style_json_and_test_list(tmp_path: Path) -> None:
    root = tmp_path / "Task06_Lung"
    build_msd(root, n=1)
    data = {
        "name": "Lung",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "cancer"},
        "numTraining": 1,
        "numTest": 1,
        "training": [
            {"image": "./imagesTr/lung_000.nii.gz", "label": "./labelsTr/lung_000.nii.gz"}
        ],
        "test": ["./imagesTs/lung_999.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(data))
    ds = MSDDataset.open(root)
    assert ds.name == "Lung" and ds.groups == {"lung_000": "lung_000"}
    assert ds.test_images == [root / "imagesTs" / "lung_999.nii.gz"]


def test_nnunet_v2_layout(tmp_path: Path) -> None:
    root = tmp_path / "Dataset001"
    src = build_msd(tmp_path / "src", n=2)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for c in src.cases:
        (root / "imagesTr" / f"{c.id}_0000.nii.gz").write_bytes(c.image.read_bytes())
        assert c.label is not None
        (root / "labelsTr" / f"{c.id}.nii.gz").write_bytes(c.label.read_bytes())
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "tumor": 1},
                "numTraining": 2,
                "file_ending": ".nii.gz",
            }
        )
    )
    ds = MSDDataset.open(root)
    assert [c.id for c in ds.cases] == ["lung_000", "lung_001"]
    assert ds.labels == {"0": "background", "1": "tumor"}
    assert ds.load_case("lung_001")[1] is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: .* at line 1 column 2"),
        ("[1, 2]", "must hold a JSON object, found list"),
        ('{"labels": {"0": "bg"}, "training": []}', "no key 'modality'"),
        ('{"modality": {"0": "CT"}, "training": []}', "no key 'labels'"),
        ('{"modality": "CT", "labels": {"0": "bg"}}', "key 'modality' must be a non-empty object"),
        ('{"modality": {"zero": "CT"}, "labels": {"0": "bg"}}', "'zero' is not an integer index"),
        ('{"modality": {"0": "CT"}, "labels": {"1": "tumor"}}', 'must declare label "0"'),
        (
            '{"modality": {"0": "CT"}, "labels": {"0": "bg"}, "training": {}}',
            "key 'training' must be a list",
        ),
        (
            '{"modality": {"0": "CT"}, "labels": {"0": "bg"}, "training": [{"label": "x"}]}',
            'entry 0 must be an object with an \\"image\\"',
        ),
        (
            HEAD + '"training": [{"image": "../x.nii.gz"}]}',
            "must be a path inside the dataset folder",
        ),
        (
            HEAD + '"training": [{"image": "/etc/x.nii.gz"}]}',
            "must be a path inside the dataset folder",
        ),
        (
            '{"modality": {"0": "CT"}, "labels": {"0": "bg"}, "training": []}',
            "lists no training cases",
        ),
        (
            HEAD + '"training": [{"image": "imagesTr/nope.nii.gz"}]}',
            "image of case 'nope' is missing",
        ),
    ],
)
def test_malformed_dataset_json(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(InputError, match=message) as info:
        MSDDataset.open(tmp_path)
    assert "dataset.json" in str(info.value)  # names the file
    assert "\n" not in str(info.value)


def test_missing_folder_and_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such dataset folder"):
        MSDDataset.open(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no dataset\.json here"):
        MSDDataset.open(tmp_path)


def test_missing_label_file_and_duplicate_ids(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds", n=2)
    assert ds.cases[1].label is not None
    ds.cases[1].label.unlink()
    with pytest.raises(InputError, match="label of case 'lung_001' is missing"):
        MSDDataset.open(ds.root)
    data = json.loads((ds.root / "dataset.json").read_text())
    data["training"] = [data["training"][0], data["training"][0]]
    (ds.root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="'lung_000' is listed twice"):
        MSDDataset.open(ds.root)


def _rewrite_label(
    ds: MSDDataset, case: int, array: np.ndarray, affine: np.ndarray | None = None
) -> Path:
    path = ds.cases[case].label
    assert path is not None
    img = nib.load(str(ds.cases[case].image))
    nib.save(nib.Nifti1Image(array, img.affine if affine is None else affine), str(path))
    return path


def test_label_with_undeclared_values(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds")
    lab = np.zeros((20, 18, 6), np.uint8)
    lab[1, 1, 1] = 2
    lab[2, 2, 2] = 1
    path = _rewrite_label(ds, 0, lab)
    with pytest.raises(
        InputError, match=r"values \[2\] not among the declared labels \[0, 1\]"
    ) as info:
        ds.load_case(ds.cases[0])
    assert str(path) in str(info.value)
    problems = ds.validate()
    assert len(problems) == 1 and "lung_000" in str(problems[0])


def test_label_with_fractional_values(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds")
    lab = np.zeros((20, 18, 6), np.float32)
    lab[1, 1, 1] = 0.5
    _rewrite_label(ds, 0, lab)
    with pytest.raises(InputError, match=r"non-integer values \[0.5\]"):
        ds.load_case(ds.cases[0])


def test_label_on_another_grid(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds")
    image = ds.cases[0].image
    path = _rewrite_label(ds, 0, np.zeros((20, 18, 5), np.uint8))
    with pytest.raises(
        GeometryError, match=r"shape \(20, 18, 5\) vs image shape \(20, 18, 6\)"
    ) as info:
        ds.load_case(ds.cases[0])
    assert str(path) in str(info.value) and str(image) in str(info.value)  # names both
    moved = nib.load(str(image)).affine.copy()
    moved[0, 3] += 5.0
    _rewrite_label(ds, 1, np.zeros((20, 18, 6), np.uint8), moved)
    with pytest.raises(GeometryError, match="affines differ by up to 5 mm"):
        ds.load_case(ds.cases[1])
    # the header-only check finds both without reading voxels
    assert len(ds.validate(check_voxels=False)) == 2


def test_unlabelled_case(tmp_path: Path) -> None:
    ds = build_msd(tmp_path / "ds", n=1)
    data = json.loads((ds.root / "dataset.json").read_text())
    del data["training"][0]["label"]
    (ds.root / "dataset.json").write_text(json.dumps(data))
    ds2 = MSDDataset.open(ds.root)
    assert ds2.cases[0].label is None
    image, label = ds2.load_case(ds2.cases[0])
    assert label is None and image.shape == (20, 18, 6)


def test_nifti_ending_and_case_id_from_a_path() -> None:
    assert nifti_ending("imagesTr/lung_001.nii.gz") == ".nii.gz"
    assert nifti_ending("a/B.NII.GZ") == ".NII.GZ"  # as written, any case
    assert nifti_ending("c.nii") == ".nii" and nifti_ending("d.nrrd") == ""
    assert case_id_from_path("imagesTr/lung_001.nii.gz") == "lung_001"
    assert case_id_from_path("x/LUNG_002.NII.GZ") == "LUNG_002"
    assert case_id_from_path("lung_003_0000.nii", strip_channel=True) == "lung_003"
    assert case_id_from_path("scan.nrrd") == "scan.nrrd"

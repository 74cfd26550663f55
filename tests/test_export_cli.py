"""``lungspread export`` and the library calls behind it (write_exports, write_all)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export_fixtures import LIDC1, chest, report_for
from lungspread.cli.app import main
from lungspread.export import ExportOptions, write_all, write_exports
from lungspread.io import write_volume
from lungspread.volume import Volume


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    c = chest()
    paths = {
        "ct": tmp_path / "ct.nii.gz",
        "mask": tmp_path / "mask.nii.gz",
        "lungs": tmp_path / "lungs.nii.gz",
    }
    write_volume(c.ct, paths["ct"])
    write_volume(c.tumor, paths["mask"])
    write_volume(c.lungs, paths["lungs"])
    return paths


def test_export_writes_everything(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "export",
            str(files["mask"]),
            "--ct",
            str(files["ct"]),
            "--lungs",
            str(files["lungs"]),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert found == sorted(
        [
            "segmentation.seg.nrrd",
            "meshes/right_lung.stl",
            "meshes/right_lung.obj",
            "meshes/left_lung.stl",
            "meshes/left_lung.obj",
            "meshes/lesion_L1.stl",
            "meshes/lesion_L1.obj",
            "meshes/lesion_L2.stl",
            "meshes/lesion_L2.obj",
            "meshes/scene.glb",
            "figures/lesion_L1.png",
            "figures/lesion_L2.png",
            "figures/axial_montage.png",
            "figures/render_3d.png",
            "report.html",
            "run.json",
        ]
    )  # no DICOM-SEG: the CT is NIfTI
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "export"
    assert run["inputs"] == {"mask": "mask.nii.gz", "ct": "ct.nii.gz", "lungs": "lungs.nii.gz"}
    assert "report.html" in run["outputs"] and run["lungs_source"] == "given"
    html = (out / "report.html").read_text()
    assert "L1 tumor" in html and "T-descriptor" in html
    assert not list(out.parent.glob(".out.partial-*"))  # staging folder cleaned up
    # files are readable by others (not the 0600 of mkstemp)
    assert (out / "report.html").stat().st_mode & 0o044


def test_skip_flags_and_overwrite(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [
        "export",
        str(files["mask"]),
        "--ct",
        str(files["ct"]),
        "--lungs",
        str(files["lungs"]),
        "--out",
        str(out),
        "--no-meshes",
        "--no-figures",
        "--no-html",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["run.json", "segmentation.seg.nrrd"]
    # an existing, non-empty folder: a clear error, exit 2, nothing changed
    before = (out / "segmentation.seg.nrrd").stat().st_mtime_ns
    assert main([*args, "--no-slicer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and "Traceback" not in err
    assert (out / "segmentation.seg.nrrd").stat().st_mtime_ns == before
    assert main([*args, "--no-slicer", "--overwrite"]) == 0


def test_mask_on_another_grid_is_a_clear_error(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = chest()
    other = Volume(c.tumor.array[:-2], c.tumor.affine)
    write_volume(other, tmp_path / "small.nii.gz")
    out = tmp_path / "out"
    code = main(
        [
            "export",
            str(tmp_path / "small.nii.gz"),
            "--ct",
            str(files["ct"]),
            "--lungs",
            str(files["lungs"]),
            "--out",
            str(out),
            "--no-html",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    # raised by the spread report or by the exporter, whichever looks first
    assert "grid" in err and "small.nii.gz" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_write_all_hook_and_empty_mask(tmp_path: Path) -> None:
    c = chest()
    written = write_all(
        tmp_path / "a",
        ct=c.ct,
        tumor=c.tumor,
        lungs=c.lungs,
        report=report_for(c),
        source=Path("/secret/PATIENT_NAME/ct.nii.gz"),
        options=ExportOptions(meshes=False, figures=False, html_slices=False),
    )
    assert sorted(p.name for p in written) == ["report.html", "segmentation.seg.nrrd"]
    assert "PATIENT_NAME" not in (tmp_path / "a" / "report.html").read_text()
    # no tumor at all: still a segmentation (lungs) and a report that says so
    empty = c.tumor.with_array(np.zeros(c.ct.shape, np.uint8))
    written = write_exports(
        tmp_path / "b", c.ct, empty, c.lungs, None, ExportOptions(figures=False, html_slices=False)
    )
    names = sorted(p.relative_to(tmp_path / "b").as_posix() for p in written)
    assert "segmentation.seg.nrrd" in names and "report.html" in names
    assert not any("lesion" in n for n in names)
    assert "No tumor in the mask." in (tmp_path / "b" / "report.html").read_text()


@pytest.mark.slow
def test_export_on_the_real_lidc_case(tmp_path: Path) -> None:
    """The whole export on LIDC-IDRI-0001 with lungs segmented by lungspread.lungs."""
    if not LIDC1.is_dir():
        pytest.skip(f"real data not found at {LIDC1}")
    import slicerio
    import trimesh

    out = tmp_path / "lidc"
    code = main(
        [
            "export",
            str(LIDC1 / "nodules.nii.gz"),
            "--ct",
            str(LIDC1 / "ct.nii.gz"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    seg = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["Right lung", "Left lung", "L1 tumor 7.8 mL"]
    mesh = trimesh.load(out / "meshes" / "lesion_L1.stl", force="mesh")
    voxel_mm3 = 6282 * 0.703125**2 * 2.5
    assert mesh.is_watertight and abs(mesh.volume - voxel_mm3) / voxel_mm3 < 0.05
    html = (out / "report.html").read_text()
    assert "T2a" in html or "T-descriptor" in html
    run = json.loads((out / "run.json").read_text())
    assert run["lungs_source"] == "segmented"

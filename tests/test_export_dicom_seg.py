"""DICOM-SEG on the real LIDC-IDRI-0001 slices, read back with highdicom; no identifiers leak."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from export_fixtures import LIDC1, chest
from lungspread.errors import GeometryError, InputError
from lungspread.export import ExportOptions, write_exports
from lungspread.export.dicom_seg import write_dicom_seg
from lungspread.export.structures import build_structures
from lungspread.volume import Volume

hd = pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def dicom_case() -> tuple[Volume, Volume, Volume, list[pydicom.Dataset]]:
    """CT read from the 32 DICOM slices, the consensus nodule mask on that slab, crude lungs."""
    if not (LIDC1 / "dicom").is_dir():
        pytest.skip(f"real data not found at {LIDC1}")
    from lungspread.io import read_volume

    ct = read_volume(LIDC1 / "dicom")
    assert len(ct.meta["dicom"]["files"]) == 32
    nifti_mask = read_volume(LIDC1 / "nodules.nii.gz")
    # the slab of the NIfTI mask at the DICOM slices' positions (same in-plane grid)
    k0 = round(nifti_mask.world_to_index(ct.index_to_world([0, 0, 0]))[2])
    assert np.allclose(
        nifti_mask.index_to_world([0, 0, k0]), ct.index_to_world([0, 0, 0]), atol=1e-3
    )
    mask = np.asarray(nifti_mask.array)[:, :, k0 : k0 + ct.shape[2]]
    assert int(mask.sum()) == 6282  # the whole nodule lies within the 32 slices
    tumor = ct.with_array(mask.astype(np.uint8))
    air = np.asarray(ct.array) < -500
    x = ct.index_to_world(
        np.stack([np.arange(ct.shape[0]), np.zeros(ct.shape[0]), np.zeros(ct.shape[0])], axis=1)
    )[:, 0]
    lungs = np.zeros(ct.shape, np.uint8)
    lungs[air & (x > 0)[:, None, None]] = 1
    lungs[air & (x <= 0)[:, None, None]] = 2
    lungs[mask > 0] = 2  # the nodule is in the left lung
    sources = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in ct.meta["dicom"]["files"]]
    return ct, tumor, ct.with_array(lungs), sources


def test_seg_references_the_source_series_and_reads_back(
    tmp_path: Path, dicom_case: tuple[Volume, Volume, Volume, list[pydicom.Dataset]]
) -> None:
    ct, tumor, lungs, sources = dicom_case
    structures = build_structures(ct, tumor, lungs)
    path = write_dicom_seg(tmp_path / "segmentation.dcm", structures, ct)
    seg = hd.seg.segread(str(path))
    src = sources[0]
    # same patient and study, new series, CT's frame of reference
    assert seg.StudyInstanceUID == src.StudyInstanceUID
    assert seg.PatientID == src.PatientID == "LIDC-IDRI-0001"
    assert seg.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID
    assert seg.Modality == "SEG"
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    assert labels == ["Right lung", "Left lung", "L1 tumor 7.8 mL"]
    tumor_desc = seg.SegmentSequence[2]
    assert tumor_desc.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert tumor_desc.TrackingID == "L1"
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"
    # every source instance is referenced
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {d.SOPInstanceUID for d in sources}
    # frames: for each source slice and segment, the mask read back equals ours
    tumor_arr = np.asarray(tumor.array) > 0
    lung_arr = np.asarray(lungs.array)
    expected_frames = 0
    for k in range(ct.shape[2]):
        # the reader sorts slices by position: slice k of the volume is files[k]
        uid = pydicom.dcmread(
            str(ct.meta["dicom"]["files"][k]), stop_before_pixels=True
        ).SOPInstanceUID
        # segments do not overlap in the SEG: tumor voxels belong to the lesion only
        t = tumor_arr[:, :, k]
        truth = [(lung_arr[:, :, k] == 1) & ~t, (lung_arr[:, :, k] == 2) & ~t, t]
        expected_frames += sum(int(t.any()) for t in truth)
        if not any(t.any() for t in truth):
            continue
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[uid], segment_numbers=[1, 2, 3]
        )[0]  # (rows, columns, segments); rows run along j, columns along i
        for n in range(3):
            np.testing.assert_array_equal(pixels[:, :, n] > 0, truth[n].T)
    assert seg.NumberOfFrames == expected_frames  # empty frames omitted
    assert (
        int(
            seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[d.SOPInstanceUID for d in sources],
                segment_numbers=[3],
                ignore_spatial_locations=True,
            ).sum()
        )
        == 6282
    )


def test_same_input_same_uids(
    tmp_path: Path, dicom_case: tuple[Volume, Volume, Volume, list[pydicom.Dataset]]
) -> None:
    ct, tumor, _, _ = dicom_case
    structures = build_structures(ct, tumor)
    a = pydicom.dcmread(str(write_dicom_seg(tmp_path / "a.dcm", structures, ct)))
    b = pydicom.dcmread(str(write_dicom_seg(tmp_path / "b.dcm", structures, ct)))
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    manual = pydicom.dcmread(
        str(write_dicom_seg(tmp_path / "m.dcm", structures, ct, algorithm=None))
    )
    assert manual.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"


def test_not_dicom_or_off_grid_is_refused(
    dicom_case: tuple[Volume, Volume, Volume, list[pydicom.Dataset]], tmp_path: Path
) -> None:
    ct, tumor, _, _ = dicom_case
    c = chest()
    with pytest.raises(InputError, match="DICOM-SEG needs a CT read from a DICOM series"):
        write_dicom_seg(tmp_path / "x.dcm", build_structures(c.ct, c.tumor), c.ct)
    # the same files, but a grid shifted by half a voxel: frames cannot be matched
    aff = ct.affine.copy()
    aff[0, 3] += 0.35
    moved = Volume(np.asarray(ct.array), aff, ct.meta)
    with pytest.raises(GeometryError, match="does not match the DICOM slice"):
        write_dicom_seg(
            tmp_path / "y.dcm", build_structures(moved, moved.with_array(tumor.array)), moved
        )


def test_reports_carry_no_identifiers_unless_asked(
    tmp_path: Path, dicom_case: tuple[Volume, Volume, Volume, list[pydicom.Dataset]]
) -> None:
    ct, tumor, _, sources = dicom_case
    opts = ExportOptions(meshes=False, figures=False, slicer=False, html_slices=False)
    written = write_exports(tmp_path / "a", ct, tumor, None, None, opts)
    assert sorted(p.name for p in written) == ["report.html", "segmentation.dcm"]
    html = (tmp_path / "a" / "report.html").read_text()
    for secret in (
        "LIDC-IDRI-0001",
        sources[0].StudyInstanceUID,
        sources[0].AccessionNumber,
        str(LIDC1),
    ):
        assert secret not in html
    seg = pydicom.dcmread(str(tmp_path / "a" / "segmentation.dcm"))
    assert seg.PatientID == "LIDC-IDRI-0001"  # the SEG keeps them, as the standard requires

    keep = ExportOptions(
        meshes=False,
        figures=False,
        slicer=False,
        dicom_seg=False,
        html_slices=False,
        keep_identifiers=True,
    )
    write_exports(tmp_path / "b", ct, tumor, None, None, keep)
    html_kept = (tmp_path / "b" / "report.html").read_text()
    assert "LIDC-IDRI-0001" in html_kept and sources[0].StudyInstanceUID in html_kept


def test_export_command_on_a_dicom_folder(
    tmp_path: Path, dicom_case: tuple[Volume, Volume, Volume, list[pydicom.Dataset]]
) -> None:
    from lungspread.cli.app import main
    from lungspread.io import write_volume

    _ct, tumor, lungs, _ = dicom_case
    write_volume(tumor, tmp_path / "mask.nii.gz")
    write_volume(lungs, tmp_path / "lungs.nii.gz")
    out = tmp_path / "out"
    code = main(
        [
            "export",
            str(tmp_path / "mask.nii.gz"),
            "--ct",
            str(LIDC1 / "dicom"),
            "--lungs",
            str(tmp_path / "lungs.nii.gz"),
            "--out",
            str(out),
            "--no-meshes",
            "--no-figures",
            "--no-html",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "run.json",
        "segmentation.dcm",
        "segmentation.seg.nrrd",
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["inputs"]["ct"] == "dicom"  # the folder's name, not its path
    assert str(tmp_path) not in (out / "run.json").read_text()
    seg = hd.seg.segread(str(out / "segmentation.dcm"))
    assert [d.SegmentLabel for d in seg.SegmentSequence][-1] == "L1 tumor 7.8 mL"
    assert seg.SegmentSequence[-1].SegmentAlgorithmType == "MANUAL"  # a user's mask

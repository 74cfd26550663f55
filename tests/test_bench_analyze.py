"""The summaries that benchmarks/bench_analyze.py prints for its accuracy runs."""

from __future__ import annotations

from benchmark_modules import import_benchmark


def test_summarize_sets_counts_by_folder_and_sizes_the_misses() -> None:
    rows = [
        {"case": "lidc-idri-0001", "dice": 0.9, "lesion_dice": [0.9], "lesion_ml": [7.8],
         "found": 1, "false_positive_lesions": 2},
        {"case": "val/a", "dice": 0.8, "lesion_dice": [0.7, 0.0], "lesion_ml": [2.0, 0.3],
         "found": 1, "false_positive_lesions": 0},
        {"case": "val/b", "dice": 0.6, "lesion_dice": [0.0, 0.5, 0.9], "lesion_ml": [0.5, 0.2, 4.0],
         "found": 2, "false_positive_lesions": 1},
    ]  # fmt: skip
    sets = import_benchmark("bench_analyze").summarize_sets(rows)
    assert sets["lidc-idri-0001"] == {
        "cases": 1,
        "found": "1/1",
        "false_positive_lesions": 2,
        "mean_dice": 0.9,
        "largest_missed_ml": None,
        "smallest_found_ml": 7.8,
    }
    # by hand: 3 of 5 found, 1 FP, Dice (0.8 + 0.6) / 2; missed 0.3 and 0.5; found 2.0, 0.2, 4.0
    assert sets["val"] == {
        "cases": 2,
        "found": "3/5",
        "false_positive_lesions": 1,
        "mean_dice": 0.7,
        "largest_missed_ml": 0.5,
        "smallest_found_ml": 0.2,
    }


def test_real_slabs_are_the_slabs_that_dataset_slabs_cuts(shared_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from lungspread.data.msd import MSDCase, write_dataset_json
    from lungspread.data.slabs import cut_slabs
    from lungspread.io import read_volume

    bench = import_benchmark("bench_analyze")
    # the two scans as an MSD folder of links, 0001 first, cut by the CLI's own code
    src = tmp_path / "real"
    for sub in ("imagesTr", "labelsTr"):
        (src / sub).mkdir(parents=True)
    links = []
    for name in bench.REAL_SCANS:
        case_id = f"lidc_{name[-4:]}"
        img_link = src / "imagesTr" / f"{case_id}.nii.gz"
        lab_link = src / "labelsTr" / f"{case_id}.nii.gz"
        img_link.symlink_to(shared_data / name / "ct.nii.gz")
        lab_link.symlink_to(shared_data / name / "nodules.nii.gz")
        links.append(MSDCase(case_id, img_link, lab_link))
    labels = {"0": "background", "1": "tumor"}
    write_dataset_json(src, name="real", modality={"0": "CT"}, labels=labels, cases=links)
    folder = cut_slabs(src, tmp_path / "slabs", slab_mm=40.0, seed=1)
    cases = bench.real_slab_cases([40.0], [1])
    assert [c[0] for c in cases] == ["real_slab40_s1/lidc_0001", "real_slab40_s1/lidc_0002"]
    for (_, image, label), case in zip(cases, folder.cases, strict=True):
        assert case.label is not None
        cut_image, cut_label = read_volume(case.image), read_volume(case.label)
        assert image.shape == cut_image.shape and np.allclose(image.affine, cut_image.affine)
        assert np.array_equal(image.array, cut_image.array)
        assert np.array_equal(label.array, cut_label.array) and label.array.any()
    # 40 mm: 16 slices at 0001's 2.5 mm, 32 at 0002's 1.25 mm
    assert [c[1].shape[2] for c in cases] == [16, 32]

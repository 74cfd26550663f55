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

"""evaluate (metrics.json/csv, figures, cross-validation subset) and compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lungspread.errors import InputError, ModelError, OutputError
from training_fixtures import train_tiny_run, write_toy_dataset


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ev")
    data = write_toy_dataset(base / "Toy", n_cases=6, n_empty=1)
    return data, train_tiny_run(data, base / "run", epochs=1, fold="all")


def test_evaluate_val_subset_is_cross_validation(
    toy_run: tuple[Path, Path], tmp_path: Path
) -> None:
    from lungspread.evaluate import evaluate
    from lungspread.io import read_volume
    from lungspread.metrics import dice

    data, run = toy_run
    out = tmp_path / "ev"
    result = evaluate(run, data, out, subset="val", device="cpu", save_predictions=True)
    splits = json.loads((run / "splits.json").read_text())
    fold_of = {c: str(k) for k, s in enumerate(splits) for c in s["val"]}
    assert sorted(r["case"] for r in result["cases"]) == sorted(fold_of)
    for row in result["cases"]:
        assert row["fold"] == fold_of[row["case"]]  # each case by the model that never saw it
        pred = read_volume(out / "predictions" / f"{row['case']}.nii.gz").array
        truth = read_volume(data / "labelsTr" / f"{row['case']}.nii.gz").array
        d = dice(pred, truth)
        assert (np.isnan(d) and row["dice"] is not None and np.isnan(row["dice"])) or (
            d == pytest.approx(row["dice"])
        )
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved) >= {"cases", "aggregate"}
    for key in (
        "dice",
        "iou",
        "sensitivity",
        "precision",
        "fpr",
        "hd95_mm",
        "assd_mm",
        "nsd_2mm",
        "lesions_tp",
        "lesions_fp",
        "lesions_fn",
    ):
        assert key in saved["cases"][0]
        assert set(saved["aggregate"][key]) == {"mean", "ci95", "n"}
    assert "dice_global" in saved["aggregate"]
    empty = next(r for r in saved["cases"] if r["case"] == "toy_005")  # no tumor
    assert empty["sensitivity"] is None and "truth empty" in empty["null_reasons"]["sensitivity"]
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0]["case"] and "hd95_mm" in rows[0]
    # one column per aggregated metric, between the case/fold and the volumes
    from lungspread.metrics import METRIC_KEYS

    tail = ["truth_volume_ml", "pred_volume_ml", "null_reasons"]
    assert list(rows[0]) == ["case", "fold", *METRIC_KEYS, *tail]
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == "metric,mean,ci95_lo,ci95_hi,n" and any(
        r.startswith("dice_global,") for r in summary
    )
    assert (out / "run.json").is_file()


def test_figures_show_the_slices_with_most_tumor(
    toy_run: tuple[Path, Path], tmp_path: Path
) -> None:
    from PIL import Image

    from lungspread.evaluate import evaluate, top_slices

    truth = np.zeros((4, 4, 6), np.uint8)
    truth[:, :, 1] = 1
    truth[:2, :, 4] = 1
    truth[0, 0, 2] = 1
    assert top_slices(truth, truth, 2, n=2) == [1, 4]
    assert top_slices(np.zeros_like(truth), truth, 2, n=1) == [1]
    assert top_slices(np.zeros_like(truth), np.zeros_like(truth), 2) == [3]
    data, run = toy_run
    evaluate(run, data, tmp_path / "all", device="cpu")
    figs = sorted((tmp_path / "all" / "figures").glob("*.png"))
    assert len(figs) == 6
    with Image.open(figs[0]) as im:
        assert im.size[0] > 600 and im.size[1] >= 300


def test_evaluate_errors(toy_run: tuple[Path, Path], tmp_path: Path) -> None:
    from lungspread.evaluate import evaluate

    data, run = toy_run
    with pytest.raises(ModelError, match=r"model\.json"):
        evaluate(tmp_path, data, tmp_path / "o1", device="cpu")
    with pytest.raises(InputError, match="subset"):
        evaluate(run, data, tmp_path / "o2", subset="test", device="cpu")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(OutputError):
        evaluate(run, data, tmp_path / "full", device="cpu")


def test_compare_table_and_boxplots(toy_run: tuple[Path, Path], tmp_path: Path) -> None:
    from lungspread.cli.app import main

    data, run = toy_run
    assert (
        main(
            [
                "evaluate",
                str(run),
                str(data),
                "--out",
                str(tmp_path / "a"),
                "--subset",
                "val",
                "--device",
                "cpu",
                "--no-figures",
                "-q",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                str(run),
                str(data),
                "--out",
                str(tmp_path / "b"),
                "--device",
                "cpu",
                "--no-figures",
                "-q",
            ]
        )
        == 0
    )
    code = main(
        [
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--out",
            str(tmp_path / "cmp"),
            "--labels",
            "cv,chosen",
            "-q",
        ]
    )
    assert code == 0
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["aggregate"]["dice"]
    assert f"| cv | 6 | {a['mean']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]" in md
    assert "Paired Dice difference to cv" in md
    with open(tmp_path / "cmp" / "comparison.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    dice_rows = [r for r in rows if r["metric"] == "dice"]
    assert [r["run"] for r in dice_rows] == ["cv", "chosen"]
    assert float(dice_rows[0]["mean"]) == pytest.approx(a["mean"])
    assert (tmp_path / "cmp" / "boxplot_dice.png").stat().st_size > 1000
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "c2"), "-q"]) == 2


def test_radiological_display_orientation() -> None:
    from lungspread.evaluate import radiological

    # an RAS-stored axial slice: the indices grow towards Right (i) and Anterior (j)
    plane = np.zeros((4, 3))
    plane[3, 2] = 1  # largest i (most right), largest j (most anterior)
    shown = radiological(plane, ("R", "A"))
    assert shown.shape == (3, 4)
    assert shown[0, 0] == 1  # anterior at the top, patient's right on the viewer's left
    lps = np.zeros((4, 3))
    lps[0, 2] = 1  # smallest i in LPS is the most right; largest j the most posterior
    assert radiological(lps, ("L", "P"))[2, 0] == 1  # bottom (posterior) left (right side)

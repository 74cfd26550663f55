"""``lungspread evaluate``: a trained model's metrics on an MSD-format dataset, with figures.

For each labelled case the model predicts a tumor mask on the case's own grid
(:class:`lungspread.inference.predictor.Predictor`), and :func:`lungspread.metrics.case_metrics`
compares it with the label: Dice, IoU, sensitivity, precision, false-positive rate, HD95,
ASSD, NSD at 2 mm and lesion-wise TP/FP/FN; undefined values are null with a reason.
:func:`lungspread.metrics.aggregate` gives the means with 95% bootstrap intervals and the
pooled ``dice_global``.

``subset="all"`` runs the run's chosen model (``RUN/model.*``) over every case;
``subset="val"`` is cross-validation: each fold's model (``RUN/fold_K``) predicts only the
cases it was validated on (``RUN/splits.json``), so every case is predicted by a model that
never saw it (use it with the dataset the run was trained on).

Output folder: ``metrics.json`` (``{"cases": [...], "aggregate": {...}}``), ``metrics.csv``
(one row per case), ``summary.csv`` (one row per metric), ``figures/<case>.png`` (ground
truth against prediction on the slices with the most tumor), optionally
``predictions/<case>.nii.gz``, and ``run.json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError, ModelError
from lungspread.metrics import METRIC_KEYS
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: columns of metrics.csv, in order: the case, its fold, every per-case metric, volumes, reasons
CASE_COLUMNS: tuple[str, ...] = (
    "case",
    "fold",
    *METRIC_KEYS,
    "truth_volume_ml",
    "pred_volume_ml",
    "null_reasons",
)

Progress = Callable[[str, int, int], None]


def _fold_models(run: Path, subset: str) -> list[tuple[str, Path, list[str] | None]]:
    """[(fold name, model folder, case ids or None for all)] for the subset."""
    if subset == "all":
        if not (run / "model.json").is_file():
            raise ModelError("no model.json here; expected a training run or model folder", run)
        return [("", run, None)]
    if subset != "val":
        raise InputError(f"unknown subset {subset!r}; expected 'all' or 'val'")
    from lungspread.data.splits import load_splits

    splits_path = run / "splits.json"
    if not splits_path.is_file():
        raise ModelError("subset 'val' needs the run's splits.json; this is no training run", run)
    splits = load_splits(splits_path)
    out: list[tuple[str, Path, list[str] | None]] = []
    for k, split in enumerate(splits):
        folder = run / f"fold_{k}"
        if (folder / "model.json").is_file() and split["val"]:
            out.append((str(k), folder, list(split["val"])))
    if not out:
        raise ModelError("no trained fold (fold_K/model.json) with validation cases", run)
    return out


def evaluate(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    subset: str = "all",
    device: str = "auto",
    tta: bool = False,
    overwrite: bool = False,
    figures: bool = True,
    save_predictions: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate the model(s) of ``run`` on the dataset ``data``; write into ``out``.

    Returns the ``metrics.json`` content. ``progress(case_id, done, total)`` is called after
    each case.
    """
    from lungspread.data.msd import MSDDataset
    from lungspread.inference.predictor import Predictor
    from lungspread.metrics import aggregate, case_metrics
    from lungspread.outputs import RunRecord, output_dir, write_json

    run = Path(run)
    record = RunRecord(
        "evaluate",
        {"run": str(run.resolve()), "data": str(Path(data).resolve())},
        {"subset": subset, "device": device, "tta": tta},
    )
    dataset = MSDDataset.open(data)
    plan = _fold_models(run, subset)
    known = {c.id for c in dataset.cases}
    jobs: list[tuple[str, Path, str]] = []
    for fold, folder, ids in plan:
        for cid in ids if ids is not None else sorted(known):
            if cid in known:
                jobs.append((fold, folder, cid))
    jobs = [j for j in jobs if dataset.case(j[2]).label is not None]
    if not jobs:
        raise InputError(
            "no labelled case of this dataset is covered (wrong dataset for --subset val?)",
            Path(data),
        )
    with output_dir(out, overwrite) as stage:
        rows: list[dict[str, Any]] = []
        predictors: dict[Path, Predictor] = {}
        models: dict[str, str] = {}
        for n, (fold, folder, cid) in enumerate(jobs):
            if folder not in predictors:
                predictors.clear()
                predictors[folder] = Predictor.from_folder(folder, device=device)
            predictor = predictors[folder]
            models[fold or "all"] = predictor.spec.name
            image, label = dataset.load_case(cid)
            assert label is not None
            pred = predictor.predict(image, tta=tta)
            truth = (label.array > 0).astype(np.uint8)
            row = case_metrics(pred.array, truth, image.spacing, cid)
            if fold:
                row["fold"] = fold
            rows.append(row)
            if figures:
                (stage / "figures").mkdir(exist_ok=True)
                case_figure(image, truth, pred.array, stage / "figures" / f"{cid}.png", row)
            if save_predictions:
                from lungspread.io import write_volume

                (stage / "predictions").mkdir(exist_ok=True)
                write_volume(pred, stage / "predictions" / f"{cid}.nii.gz")
            if progress is not None:
                progress(cid, n + 1, len(jobs))
        record.stage("predict")
        agg = aggregate(rows)
        result = {
            "run": str(run),
            "data": str(data),
            "subset": subset,
            "models": models,
            "cases": rows,
            "aggregate": agg,
        }
        write_json(stage / "metrics.json", result)
        _write_case_csv(stage / "metrics.csv", rows)
        _write_summary_csv(stage / "summary.csv", agg)
        record.write(stage, outputs={"n_cases": len(rows)})
    return result


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not np.isfinite(v) else round(v, 6)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {r}" for k, r in v.items())
    return "" if v is None else v


def _write_case_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from lungspread.outputs import atomic_write_bytes

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CASE_COLUMNS), extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in CASE_COLUMNS})
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _write_summary_csv(path: Path, agg: dict[str, Any]) -> None:
    from lungspread.outputs import atomic_write_bytes

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["metric", "mean", "ci95_lo", "ci95_hi", "n"])
    for key, v in agg.items():
        if isinstance(v, dict) and "mean" in v:
            lo, hi = v.get("ci95", [None, None])
            w.writerow([key, _cell(v["mean"]), _cell(lo), _cell(hi), v.get("n", "")])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of an evaluate output folder."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise InputError("no metrics.json here; expected an output folder of evaluate", folder)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"metrics.json is not valid JSON ({exc})", path) from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise InputError("metrics.json has no 'cases' list", path)
    return data


# -- figures ----------------------------------------------------------------------------------
def top_slices(truth: np.ndarray, pred: np.ndarray, axis: int, n: int = 3) -> list[int]:
    """Up to ``n`` slices with the most tumor (truth; the prediction when the truth is empty)."""
    other = tuple(a for a in range(3) if a != axis)
    counts = np.asarray(truth, dtype=bool).sum(axis=other).astype(np.int64)
    if not counts.any():
        counts = np.asarray(pred, dtype=bool).sum(axis=other).astype(np.int64)
    if not counts.any():
        return [truth.shape[axis] // 2]
    order = np.argsort(-counts, kind="stable")
    return sorted(int(k) for k in order[:n] if counts[k] > 0)


def radiological(plane: np.ndarray, codes: tuple[str, str]) -> np.ndarray:
    """A slice ``plane[a, b]`` turned for display (``imshow``, origin upper) the radiological
    way: anterior up, the patient's right on the viewer's left. ``codes`` are the closest
    patient directions of the two in-plane axes (e.g. ``("L", "P")`` for LPS storage);
    slices that are not axial are shown with the first axis across, the second up."""
    lr = [n for n, c in enumerate(codes) if c in "LR"]
    ap = [n for n, c in enumerate(codes) if c in "AP"]
    if len(lr) != 1 or len(ap) != 1:
        return np.asarray(plane).T[::-1]
    out = np.asarray(plane)
    if codes[lr[0]] == "R":  # columns must run towards the patient's left
        out = np.flip(out, axis=lr[0])
    if codes[ap[0]] == "A":  # rows must run from anterior (top) to posterior
        out = np.flip(out, axis=ap[0])
    return out if ap[0] == 0 else out.T


def case_figure(
    image: Volume,
    truth: np.ndarray,
    pred: np.ndarray,
    path: Path,
    metrics: dict[str, Any] | None = None,
    n_slices: int = 3,
) -> None:
    """PNG: the CT on the slices with the most tumor, ground truth (green) vs prediction (red),
    shown the radiological way (anterior up, patient's right on the left)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from lungspread.outputs import atomic_write_bytes

    axis = image.slice_axis()
    all_codes = image.axis_codes()
    a0, a1 = (a for a in range(3) if a != axis)
    codes = (all_codes[a0], all_codes[a1])
    arr = np.asarray(image.array, dtype=np.float32)
    slices = top_slices(truth, pred, axis, n_slices)
    if float(arr.min()) < -500:  # HU: a lung window
        lo, hi = -1000.0, 400.0
    else:
        lo, hi = (float(v) for v in np.percentile(arr, [1, 99]))
    fig = Figure(figsize=(3.6 * len(slices), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    for n, k in enumerate(slices):
        ax = fig.add_subplot(1, len(slices), n + 1)
        sl = [slice(None)] * 3
        sl[axis] = slice(k, k + 1)
        img2 = radiological(np.squeeze(arr[tuple(sl)], axis=axis), codes)
        t2 = radiological(np.squeeze(truth[tuple(sl)], axis=axis), codes)
        p2 = radiological(np.squeeze(pred[tuple(sl)], axis=axis), codes)
        ax.imshow(img2, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if t2.any() and t2.min() != t2.max():
            ax.contour(t2, levels=[0.5], colors=["#00d000"], linewidths=1.2)
        if p2.any() and p2.min() != p2.max():
            ax.contour(p2, levels=[0.5], colors=["#ff3030"], linewidths=1.0, linestyles="--")
        ax.set_title(f"slice {k}: truth {int(t2.sum())}, pred {int(p2.sum())} vox", fontsize=8)
        ax.set_axis_off()
    case = (metrics or {}).get("case", image.meta.get("case", ""))
    dice = (metrics or {}).get("dice")
    dtxt = "n/a" if dice is None or not np.isfinite(dice) else f"{dice:.3f}"
    fig.suptitle(
        f"{case}   Dice {dtxt}   (green: ground truth, red dashed: prediction)", fontsize=9
    )
    fig.legend(
        handles=[Line2D([], [], color="#00d000"), Line2D([], [], color="#ff3030", ls="--")],
        labels=["ground truth", "prediction"],
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())

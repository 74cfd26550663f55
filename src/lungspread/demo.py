"""``lungspread demo``: the whole job on a synthetic chest CT, with nothing to download.

Makes a phantom chest CT with known tumors (:func:`lungspread.phantom.make_phantom`), runs
:func:`lungspread.analyze.analyze` on it with the bundled model, and compares the tumor mask
with the known truth (Dice, lesions found). The output folder holds the phantom CT
(``ct.nii.gz``), its true tumor mask (``truth_tumor.nii.gz``), everything analyze writes,
and ``demo.json`` with the comparison, so a user can open CT and masks side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.analyze import AnalysisResult, StageCallback
from lungspread.errors import OutputError

#: Default output folder (relative to the current directory).
DEFAULT_OUT = Path("lungspread-demo")

#: File names the demo writes (besides those of the exporters).
DEMO_FILES = frozenset(
    {
        "ct.nii.gz",
        "truth_tumor.nii.gz",
        "demo.json",
        "tumor.nii.gz",
        "lungs.nii.gz",
        "report.json",
        "run.json",
    }
)


@dataclass
class DemoResult:
    """The analysis of the phantom and how it compares with the phantom's truth."""

    out: Path
    result: AnalysisResult
    comparison: dict[str, Any]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two masks; NaN when both are empty (undefined, not 0 or 1)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(a & b)) / total


def compare_lesions(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Lesion-wise comparison (26-connected components): a true lesion is found when a
    predicted lesion overlaps it; a predicted lesion touching no true one is a false positive."""
    from scipy import ndimage

    s = np.ones((3, 3, 3), dtype=bool)
    t_lab, n_t = ndimage.label(np.asarray(truth) > 0, structure=s)
    p_lab, n_p = ndimage.label(np.asarray(pred) > 0, structure=s)
    both = (t_lab > 0) & (p_lab > 0)
    found = np.unique(t_lab[both]).size
    hit = np.unique(p_lab[both]).size
    per_lesion = []
    for idx in range(1, n_t + 1):
        lesion = t_lab == idx
        touched = np.unique(p_lab[lesion & (p_lab > 0)])
        matched = np.isin(p_lab, touched) if touched.size else np.zeros_like(lesion)
        per_lesion.append({"id": idx, "voxels": int(lesion.sum()), "dice": dice(lesion, matched)})
    return {
        "true_lesions": int(n_t),
        "found": int(found),
        "missed": int(n_t - found),
        "predicted_lesions": int(n_p),
        "false_positive_lesions": int(n_p - hit),
        "per_lesion": per_lesion,
    }


def _check_demo_out(out: Path) -> None:
    """Refuse a non-empty folder unless it holds a previous demo's output."""
    if out.exists() and not out.is_dir():
        raise OutputError("exists and is a file, expected an output folder", out)
    if not out.is_dir():
        return
    names = {p.name for p in out.iterdir()}
    if not names:
        return
    if "demo.json" in names or names <= DEMO_FILES:
        return
    raise OutputError(
        "folder is not empty and does not hold an earlier demo; choose another --out", out
    )


def run_demo(
    out: str | Path = DEFAULT_OUT,
    seed: int = 0,
    size: str = "medium",
    device: str = "cpu",
    model: str | Path | None = None,
    on_stage: StageCallback | None = None,
) -> DemoResult:
    """Make a phantom chest CT, analyze it, compare with the truth, write it all to ``out``.

    ``out`` must be empty, absent or an earlier demo's output (which is replaced).
    ``size`` is the phantom size: ``"medium"`` (192 x 192 x 128 at 1.8 x 1.8 x 2.5 mm, a
    CT-like resolution, seconds on a CPU), ``"small"`` (3.6 x 3.6 x 5 mm: coarser than clinical
    CT, vessels become nodule-sized blobs) or ``"full"`` (512 x 512).
    """
    import time

    out = Path(out)
    _check_demo_out(out)

    from lungspread.analyze import analyze
    from lungspread.phantom import make_phantom

    if on_stage is not None:
        on_stage("phantom", None)
    t0 = time.perf_counter()
    phantom = make_phantom(seed, size=size)
    if on_stage is not None:
        on_stage("phantom", time.perf_counter() - t0)
    result = analyze(phantom.ct, model=model, device=device, on_stage=on_stage)
    truth = np.asarray(phantom.tumor.array) > 0
    pred = result.tumor.array > 0
    voxel_ml = phantom.ct.voxel_volume_mm3 / 1000.0
    comparison: dict[str, Any] = {
        "seed": seed,
        "size": size,
        "dice": dice(truth, pred),
        "true_tumor_ml": float(truth.sum() * voxel_ml),
        "found_tumor_ml": float(pred.sum() * voxel_ml),
        "lesions": compare_lesions(truth, pred),
        "lung_dice": {
            "right": dice(np.asarray(phantom.lungs.array) == 1, result.lungs.array == 1),
            "left": dice(np.asarray(phantom.lungs.array) == 2, result.lungs.array == 2),
        },
    }
    result.run["inputs"] = {"ct": f"phantom(seed={seed}, size={size!r})"}
    result.run["demo"] = {k: v for k, v in comparison.items() if k != "lesions"}
    truth_vol = phantom.ct.with_array(truth.astype(np.uint8))
    result.write(
        out,
        overwrite=True,
        command="demo",
        also={"ct.nii.gz": phantom.ct, "truth_tumor.nii.gz": truth_vol, "demo.json": comparison},
    )
    return DemoResult(out=out, result=result, comparison=comparison)

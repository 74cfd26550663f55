"""Exploratory analysis of an MSD dataset: geometry, intensities, tumor sizes, class imbalance.

:func:`inspect_dataset` returns a JSON-ready dict; :func:`write_inspection` turns it into
``inspect.json``, PNG plots and ``summary.md``; :func:`run_inspect` does both into an output
folder with a ``run.json`` (the library call behind ``lungspread dataset inspect``).

Definitions:

* lesions are 26-connected components of the label (> 0);
* a lesion's ``equivalent_diameter_mm`` is that of the sphere of the same volume (the disc of
  the same area for single-slice cases); ``max_axial_diameter_mm`` is the largest in-plane
  Feret diameter over its slices (pixel corners included, RECIST-like);
* slices are taken along the voxel axis closest to the patient's head-foot axis;
* intensity distributions pool a random sample of up to 20,000 voxels per case (whole image)
  and up to 20,000 foreground voxels per case, so every case weighs the same.

A case that cannot be read is listed under ``failures`` with its reason; the others are used.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lungspread.errors import LungspreadError
from lungspread.volume import Volume

if TYPE_CHECKING:
    from lungspread.data.msd import MSDDataset

log = logging.getLogger(__name__)

SAMPLES_PER_CASE = 20_000
PLOTS = ("intensity_histogram.png", "geometry.png", "tumor_sizes.png", "class_balance.png")


def _feret_max_mm(mask2d: np.ndarray, spacing2d: tuple[float, float]) -> float:
    """Largest distance between two pixel corners of the region (mm)."""
    from scipy.ndimage import binary_erosion

    edge = mask2d & ~binary_erosion(mask2d)
    pts = np.argwhere(edge).astype(np.float64)
    if pts.size == 0:
        return 0.0
    corners = np.concatenate(
        [pts + np.array([dx, dy]) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)]
    ) * np.asarray(spacing2d)
    corners = np.unique(corners, axis=0)
    if len(corners) > 3:
        try:
            from scipy.spatial import ConvexHull

            corners = corners[ConvexHull(corners).vertices]
        except Exception:  # degenerate (collinear) sets: use all points
            pass
    if len(corners) > 2000:  # pragma: no cover - hulls are small
        corners = corners[:: len(corners) // 2000 + 1]
    d = corners[:, None, :] - corners[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def lesion_table(
    label: np.ndarray, spacing_mm: tuple[float, float, float], slice_axis: int
) -> list[dict[str, Any]]:
    """One row per 26-connected lesion: volume, diameters, extent, slices."""
    from scipy import ndimage

    mask = np.asarray(label) > 0
    if not mask.any():
        return []
    labels, _n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    voxel_mm3 = float(np.prod(spacing_mm))
    in_plane = tuple(a for a in range(3) if a != slice_axis)
    sp2 = (float(spacing_mm[in_plane[0]]), float(spacing_mm[in_plane[1]]))
    rows: list[dict[str, Any]] = []
    single_slice = mask.shape[slice_axis] == 1
    for idx, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == idx
        nvox = int(comp.sum())
        vol = nvox * voxel_mm3
        moved = np.moveaxis(comp, slice_axis, 0)
        areas = moved.reshape(moved.shape[0], -1).sum(1) * sp2[0] * sp2[1]
        ferets = [_feret_max_mm(moved[k], sp2) for k in range(moved.shape[0]) if moved[k].any()]
        area_max = float(areas.max())
        eq = (
            2.0 * math.sqrt(area_max / math.pi)
            if single_slice
            else (6.0 * vol / math.pi) ** (1.0 / 3.0)
        )
        rows.append(
            {
                "volume_ml": vol / 1000.0,
                "voxels": nvox,
                "equivalent_diameter_mm": eq,
                "max_axial_diameter_mm": max(ferets) if ferets else 0.0,
                "max_axial_area_mm2": area_max,
                "extent_mm": [float((s.stop - s.start) * spacing_mm[a]) for a, s in enumerate(sl)],
                "n_slices": int((areas > 0).sum()),
            }
        )
    rows.sort(key=lambda r: -r["volume_ml"])
    return rows


def _stats(values: list[float] | np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {
            "n": 0,
            "min": math.nan,
            "p5": math.nan,
            "median": math.nan,
            "mean": math.nan,
            "p95": math.nan,
            "max": math.nan,
        }
    return {
        "n": int(v.size),
        "min": float(v.min()),
        "p5": float(np.percentile(v, 5)),
        "median": float(np.median(v)),
        "mean": float(v.mean()),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
    }


def inspect_case(
    image: Volume, label: Volume | None, rng: np.random.Generator, samples: int = SAMPLES_PER_CASE
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Facts about one case, plus its intensity samples (whole image, foreground)."""
    arr = np.asarray(image.array)
    flat = arr.reshape(-1)
    n = flat.size
    whole = flat[rng.integers(0, n, size=min(samples, n))].astype(np.float32)
    sax = image.slice_axis()
    info: dict[str, Any] = {
        "shape": list(image.shape),
        "spacing_mm": [round(s, 6) for s in image.spacing],
        "slice_axis": sax,
        "axes": "".join(image.axis_codes()),
        "dtype": str(arr.dtype),
        "intensity": {
            "min": float(arr.min()),
            "max": float(arr.max()),
            "mean": float(arr.mean(dtype=np.float64)),
            "std": float(arr.std(dtype=np.float64)),
            "p0_5": float(np.percentile(whole, 0.5)),
            "p99_5": float(np.percentile(whole, 99.5)),
        },
    }
    fg_samples = np.zeros(0, np.float32)
    if label is None:
        info["labelled"] = False
        return info, whole, fg_samples
    lab = np.asarray(label.array) > 0
    nfg = int(lab.sum())
    n_slices = image.shape[sax]
    per_slice = np.moveaxis(lab, sax, 0).reshape(n_slices, -1).any(axis=1)
    info.update(
        labelled=True,
        foreground_voxels=nfg,
        foreground_fraction=nfg / n,
        tumor_volume_ml=nfg * image.voxel_volume_mm3 / 1000.0,
        n_slices=n_slices,
        slices_with_tumor=int(per_slice.sum()),
        fraction_slices_with_tumor=float(per_slice.mean()),
    )
    if nfg:
        fg = arr[lab]
        fg_samples = fg[rng.integers(0, nfg, size=min(samples, nfg))].astype(np.float32)
        info["foreground_intensity"] = {
            "mean": float(fg.mean(dtype=np.float64)),
            "std": float(fg.std(dtype=np.float64)),
            "p0_5": float(np.percentile(fg, 0.5)),
            "median": float(np.median(fg)),
            "p99_5": float(np.percentile(fg, 99.5)),
        }
        # lesion analysis on the tumor's bounding box (+1 voxel) only
        idx = np.argwhere(lab)
        lo = np.maximum(idx.min(0) - 1, 0)
        hi = np.minimum(idx.max(0) + 2, lab.shape)
        box = lab[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        info["lesions"] = lesion_table(box, image.spacing, sax)
    else:
        info["lesions"] = []
    info["n_lesions"] = len(info["lesions"])
    return info, whole, fg_samples


def histogram_edges(samples: np.ndarray, is_ct: bool, n_bins: int = 100) -> np.ndarray:
    """About ``n_bins`` bins over the 0.05-99.95 percentiles of ``samples`` (for CT within
    -1100 to 3000 HU, so that fill values such as -3024 do not squash the plot); bins of whole
    numbers of units for integer data (no comb artifacts)."""
    if samples.size == 0:
        return np.linspace(0.0, 1.0, n_bins + 1)
    lo, hi = (float(v) for v in np.percentile(samples, [0.05, 99.95]))
    if is_ct:
        lo, hi = max(lo, -1100.0), min(hi, 3000.0)
    if hi <= lo:
        hi = lo + 1.0
    if np.all(samples == np.round(samples)):
        step = max(1, math.ceil((hi - lo) / n_bins))
        return np.arange(math.floor(lo) - 0.5, math.ceil(hi) + step, step, dtype=np.float64)
    return np.linspace(lo, hi, n_bins + 1)


def inspect_dataset(
    dataset: MSDDataset, max_cases: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """The exploratory analysis of ``dataset`` as a JSON-ready dict (see module docstring)."""
    from lungspread.data.normalization import select_cases

    rng = np.random.default_rng(seed)
    chosen = [dataset.cases[i] for i in select_cases(len(dataset.cases), max_cases)]
    per_case: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    all_s: list[np.ndarray] = []
    fg_s: list[np.ndarray] = []
    for c in chosen:
        try:
            image, label = dataset.load_case(c)
        except LungspreadError as exc:
            failures.append({"case": c.id, "error": str(exc)})
            log.warning("skipping %s: %s", c.id, exc)
            continue
        info, w, f = inspect_case(image, label, rng)
        per_case[c.id] = info
        all_s.append(w)
        fg_s.append(f)
    whole = np.concatenate(all_s) if all_s else np.zeros(0, np.float32)
    fgs = np.concatenate(fg_s) if fg_s else np.zeros(0, np.float32)
    cases = list(per_case.values())
    labelled = [c for c in cases if c.get("labelled")]
    spacings = np.array([c["spacing_mm"] for c in cases]) if cases else np.zeros((0, 3))
    shapes = np.array([c["shape"] for c in cases]) if cases else np.zeros((0, 3))
    lesions = [les for c in labelled for les in c.get("lesions", [])]
    tot_vox = sum(int(np.prod(c["shape"])) for c in labelled)
    tot_fg = sum(c["foreground_voxels"] for c in labelled)
    tot_slices = sum(c["n_slices"] for c in labelled)
    tot_tumor_slices = sum(c["slices_with_tumor"] for c in labelled)
    edges = histogram_edges(np.concatenate([whole, fgs]), dataset.is_ct)
    h_all = np.histogram(whole, edges)[0]
    h_fg = np.histogram(fgs, edges)[0]

    def pct(x: np.ndarray) -> dict[str, float]:
        if x.size == 0:
            return {}
        q = np.percentile(x, [0.5, 5, 50, 95, 99.5])
        return {
            "p0_5": float(q[0]),
            "p5": float(q[1]),
            "median": float(q[2]),
            "p95": float(q[3]),
            "p99_5": float(q[4]),
            "mean": float(x.mean()),
            "std": float(x.std()),
        }

    report: dict[str, Any] = {
        "dataset": {
            "name": dataset.name,
            "root": str(dataset.root),
            "modality": dataset.modality,
            "labels": dataset.labels,
            "n_cases_listed": len(dataset.cases),
            "n_cases_inspected": len(cases),
            "n_labelled": len(labelled),
            "is_2d": bool(dataset.is_2d),
        },
        "geometry": {
            "shape": {ax: _stats(shapes[:, i]) for i, ax in enumerate("ijk")} if cases else {},
            "spacing_mm": {ax: _stats(spacings[:, i]) for i, ax in enumerate("ijk")}
            if cases
            else {},
        },
        "intensity": {
            "sampled_voxels_per_case": SAMPLES_PER_CASE,
            "whole": pct(whole),
            "foreground": pct(fgs),
            "histogram": {
                "edges": edges.tolist(),
                "whole": h_all.tolist(),
                "foreground": h_fg.tolist(),
                "outside_range_whole": int(whole.size - h_all.sum()),
                "outside_range_foreground": int(fgs.size - h_fg.sum()),
            },
        },
        "class_balance": {
            "foreground_fraction_pooled": tot_fg / tot_vox if tot_vox else math.nan,
            "background_to_foreground": (tot_vox - tot_fg) / tot_fg if tot_fg else math.nan,
            "foreground_fraction_per_case": _stats([c["foreground_fraction"] for c in labelled]),
            "cases_without_tumor": sum(1 for c in labelled if c["foreground_voxels"] == 0),
        },
        "slices": {
            "total": tot_slices,
            "with_tumor": tot_tumor_slices,
            "fraction_with_tumor_pooled": tot_tumor_slices / tot_slices if tot_slices else math.nan,
            "fraction_with_tumor_per_case": _stats(
                [c["fraction_slices_with_tumor"] for c in labelled]
            ),
        },
        "tumors": {
            "volume_ml_per_case": _stats(
                [c["tumor_volume_ml"] for c in labelled if c["foreground_voxels"]]
            ),
            "lesions_per_case": _stats([c["n_lesions"] for c in labelled]),
            "n_lesions": len(lesions),
            "lesion_volume_ml": _stats([les["volume_ml"] for les in lesions]),
            "lesion_equivalent_diameter_mm": _stats(
                [les["equivalent_diameter_mm"] for les in lesions]
            ),
            "lesion_max_axial_diameter_mm": _stats(
                [les["max_axial_diameter_mm"] for les in lesions]
            ),
        },
        "cases": per_case,
        "failures": failures,
    }
    return report


def write_inspection(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``inspect.json``, the PNG plots and ``summary.md`` into ``out_dir``."""
    from lungspread.outputs import write_json

    out = Path(out_dir)
    write_json(out / "inspect.json", report)
    paths = [out / "inspect.json", *_plots(report, out)]
    summary = out / "summary.md"
    summary.write_text(summary_markdown(report), encoding="utf-8")
    paths.append(summary)
    return paths


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = report["cases"]
    labelled = {k: c for k, c in cases.items() if c.get("labelled")}
    name = report["dataset"]["name"]
    unit = (
        "HU" if str(report["dataset"]["modality"].get("0", "")).casefold() == "ct" else "intensity"
    )
    written: list[Path] = []

    # 1. intensity distributions
    h = report["intensity"]["histogram"]
    edges = np.asarray(h["edges"])
    centers = 0.5 * (edges[1:] + edges[:-1])
    width = float(edges[1] - edges[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    whole = np.asarray(h["whole"], float)
    fgh = np.asarray(h["foreground"], float)
    axes[0].bar(centers, whole, width=width, color="0.5")
    axes[0].set_yscale("log")
    axes[0].set_title("Whole image (sampled voxels)")
    axes[0].set_xlabel(unit)
    axes[0].set_ylabel("voxels (log)")
    if whole.sum():
        axes[1].step(
            centers, whole / whole.sum() / width, where="mid", color="0.4", label="whole image"
        )
    if fgh.sum():
        axes[1].step(
            centers,
            fgh / fgh.sum() / width,
            where="mid",
            color="tab:red",
            label="tumor (label > 0)",
        )
    axes[1].set_title("Tumor vs whole image (density)")
    axes[1].set_xlabel(unit)
    axes[1].legend()
    fig.suptitle(f"{name}: intensity distributions")
    fig.tight_layout()
    written.append(_save(fig, out / PLOTS[0]))

    # 2. geometry
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if cases:
        sp = np.array([c["spacing_mm"] for c in cases.values()])
        sh = np.array([c["shape"] for c in cases.values()])
        sax = np.array([c["slice_axis"] for c in cases.values()])
        inplane = np.array(
            [np.mean([s[a] for a in range(3) if a != k]) for s, k in zip(sp, sax, strict=True)]
        )
        thick = np.array([s[k] for s, k in zip(sp, sax, strict=True)])
        nsl = np.array([s[k] for s, k in zip(sh, sax, strict=True)])
        inplane_n = np.array(
            [np.mean([s[a] for a in range(3) if a != k]) for s, k in zip(sh, sax, strict=True)]
        )
        axes[0].scatter(inplane, thick, c="tab:blue", alpha=0.7)
        axes[0].set_xlabel("in-plane spacing (mm)")
        axes[0].set_ylabel("slice spacing (mm)")
        axes[0].set_title("Voxel spacing per case")
        axes[1].scatter(inplane_n, nsl, c="tab:green", alpha=0.7)
        axes[1].set_xlabel("in-plane size (voxels, mean of the two axes)")
        axes[1].set_ylabel("slices")
        axes[1].set_title("Image size per case")
    fig.suptitle(f"{name}: geometry ({len(cases)} cases)")
    fig.tight_layout()
    written.append(_save(fig, out / PLOTS[1]))

    # 3. tumor sizes
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    vols = np.array([c["tumor_volume_ml"] for c in labelled.values() if c["tumor_volume_ml"] > 0])
    diam = np.array(
        [les["max_axial_diameter_mm"] for c in labelled.values() for les in c.get("lesions", [])]
    )
    eqd = np.array(
        [les["equivalent_diameter_mm"] for c in labelled.values() for les in c.get("lesions", [])]
    )
    if vols.size:
        bins = np.logspace(np.log10(max(vols.min(), 1e-4)) - 0.1, np.log10(vols.max()) + 0.1, 20)
        axes[0].hist(vols, bins=bins, color="tab:red", alpha=0.8)
        axes[0].set_xscale("log")
    axes[0].set_xlabel("tumor volume per case (mL, log)")
    axes[0].set_ylabel("cases")
    axes[0].set_title("Tumor burden per case")
    if diam.size:
        top = max(float(diam.max()), float(eqd.max())) * 1.05 + 1
        bins_d = np.linspace(0, top, 25)
        axes[1].hist(diam, bins=bins_d, alpha=0.7, label="max axial diameter", color="tab:purple")
        axes[1].hist(eqd, bins=bins_d, alpha=0.5, label="equivalent diameter", color="tab:orange")
        axes[1].axvline(10, color="k", ls="--", lw=1, label="10 mm")
        axes[1].legend()
    axes[1].set_xlabel("lesion diameter (mm)")
    axes[1].set_ylabel("lesions")
    axes[1].set_title(f"Lesion sizes ({diam.size} lesions)")
    fig.suptitle(f"{name}: tumor sizes")
    fig.tight_layout()
    written.append(_save(fig, out / PLOTS[2]))

    # 4. class balance
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ids = list(labelled)
    frac = np.array([labelled[k]["foreground_fraction"] * 100 for k in ids])
    sl = np.array([labelled[k]["fraction_slices_with_tumor"] * 100 for k in ids])
    if ids:
        order = np.argsort(frac)
        axes[0].bar(range(len(ids)), frac[order], color="tab:red")
        axes[0].set_yscale("log" if np.any(frac > 0) else "linear")
        axes[0].set_xlabel("cases (sorted)")
        axes[0].set_ylabel("tumor voxels (% of image, log)")
        pooled = report["class_balance"]["foreground_fraction_pooled"] * 100
        axes[0].set_title(f"Foreground fraction (pooled {pooled:.3g}%)")
        axes[1].hist(sl, bins=np.linspace(0, 100, 21), color="tab:blue")
        axes[1].set_xlabel("slices with tumor (% of the case's slices)")
        axes[1].set_ylabel("cases")
        pooled_sl = report["slices"]["fraction_with_tumor_pooled"] * 100
        axes[1].set_title(f"Slices with tumor (pooled {pooled_sl:.3g}%)")
    fig.suptitle(f"{name}: class imbalance")
    fig.tight_layout()
    written.append(_save(fig, out / PLOTS[3]))
    return written


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{nd}g}"


def summary_markdown(report: dict[str, Any]) -> str:
    """A short human summary of an inspection report."""
    d = report["dataset"]
    g = report["geometry"]
    cb = report["class_balance"]
    s = report["slices"]
    t = report["tumors"]
    it = report["intensity"]
    lines = [
        f"# Dataset inspection: {d['name']}",
        "",
        f"- Folder: `{d['root']}`",
        f"- Modality: {', '.join(f'{k}: {v}' for k, v in d['modality'].items())}; labels: "
        + ", ".join(f"{k}: {v}" for k, v in d["labels"].items()),
        f"- Cases: {d['n_cases_inspected']} inspected of {d['n_cases_listed']} listed "
        f"({d['n_labelled']} labelled); {'2D (single-slice)' if d['is_2d'] else '3D'} cases",
    ]
    if report["failures"]:
        lines.append(f"- **{len(report['failures'])} case(s) could not be read:**")
        lines += [f"  - `{f['case']}`: {f['error']}" for f in report["failures"]]
    lines += [
        "",
        "## Geometry",
        "",
        "| axis | shape min | median | max | spacing min (mm) | median | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for ax in "ijk":
        if ax in g.get("shape", {}):
            a, b = g["shape"][ax], g["spacing_mm"][ax]
            lines.append(
                f"| {ax} | {_f(a['min'])} | {_f(a['median'])} | {_f(a['max'])} | "
                f"{_f(b['min'])} | {_f(b['median'])} | {_f(b['max'])} |"
            )
    w, fg = it.get("whole", {}), it.get("foreground", {})

    def row(title: str, q: dict[str, float]) -> str:
        keys = ("p0_5", "median", "p99_5", "mean", "std")
        return f"| {title} | " + " | ".join(_f(q.get(k)) for k in keys) + " |"

    def pct(v: Any) -> Any:
        return v * 100 if isinstance(v, (int, float)) and math.isfinite(v) else None

    vol, les = t["volume_ml_per_case"], t["lesion_volume_ml"]
    dia, per = t["lesion_max_axial_diameter_mm"], t["lesions_per_case"]
    fpc = cb["foreground_fraction_per_case"]
    lines += [
        "",
        "## Intensities (sampled voxels)",
        "",
        "| | p0.5 | median | p99.5 | mean | std |",
        "|---|---|---|---|---|---|",
        row("whole image", w),
        row("tumor", fg),
        "",
        "## Class imbalance",
        "",
        f"- Tumor voxels: {_f(pct(cb['foreground_fraction_pooled']))} % of all voxels "
        f"(background : tumor = {_f(cb['background_to_foreground'], 4)} : 1); per case "
        f"median {_f(pct(fpc['median']))} %",
        f"- Cases without tumor: {cb['cases_without_tumor']}",
        f"- Slices with tumor: {s['with_tumor']} of {s['total']} "
        f"({_f(pct(s['fraction_with_tumor_pooled']))} %)",
        "",
        "## Tumor sizes",
        "",
        f"- Tumor volume per case with tumor (mL): median {_f(vol['median'])}, "
        f"range {_f(vol['min'])}-{_f(vol['max'])}",
        f"- Lesions (26-connected): {t['n_lesions']}; per case median "
        f"{_f(per['median'])}, max {_f(per['max'])}",
        f"- Lesion volume (mL): median {_f(les['median'])} "
        f"(5-95%: {_f(les['p5'])}-{_f(les['p95'])})",
        f"- Lesion max axial diameter (mm): median {_f(dia['median'])} "
        f"(5-95%: {_f(dia['p5'])}-{_f(dia['p95'])})",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{p}]({p})" for p in PLOTS]
    return "\n".join(lines) + "\n"


def run_inspect(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    max_cases: int | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Open, inspect and write the report into ``out_dir`` (staged; with ``run.json``)."""
    from lungspread.data.msd import MSDDataset
    from lungspread.outputs import RunRecord, output_dir

    record = RunRecord(
        "dataset inspect",
        inputs={"dataset": str(dataset_dir)},
        options={"max_cases": max_cases, "seed": seed},
    )
    with output_dir(out_dir, overwrite=overwrite) as stage:
        ds = MSDDataset.open(dataset_dir)
        record.stage("open")
        report = inspect_dataset(ds, max_cases=max_cases, seed=seed)
        record.stage("inspect")
        write_inspection(report, stage)
        record.stage("write")
        record.write(stage, outputs=["inspect.json", *PLOTS, "summary.md"])
    return report

"""Speed, memory and accuracy of ``lungspread analyze`` (issue 4, sections 2 and 4).

Speed (default)::

    .venv/bin/python benchmarks/bench_analyze.py

runs analyze end to end (read -> lungs -> model -> postprocess -> report, as the CLI does,
minus writing files) on ``../shared/data/lidc-idri-0002/ct.nii.gz`` (512x512x261) with the
bundled model, and in the same process the time of one forward pass of nnU-Net's Task06
3d_fullres network (registry ``nnunet-task06-3d``: PlainConvUNet, 6 stages, 32-320
features, patch 80x192x160, float32 on the CPU as nnU-Net runs it there), then prints the
ratio analyze / forward (the issue asks for <= 5, aims at 1.5) and analyze's peak resident
memory (VmHWM from /proc, < 3 GB asked). ``--ablation`` also times the predict stage in
float32, and with nnU-Net-style tiling (training-size windows, 50% overlap) to show what
made the difference.

Accuracy (``--accuracy``): Dice and lesion counts on the two real LIDC scans (their
``nodules.nii.gz``), on the 32-slice DICOM excerpt of LIDC-IDRI-0001 (an 80 mm slab around
the nodule; the readers' mask resampled onto it), and on held-out phantoms with real LIDC
nodules from held-out patients (``--phantoms DIR [DIR ...]``: folders written by
``scripts/build_trainset.py --split val``, or their slabs, ``lungspread dataset slabs``, for
scans that cover only part of the chest). ``--real-slabs 40 20`` also cuts the two real scans
to slabs of those thicknesses around their nodule (``--slab-seeds``, three placements by
default; the same slabs as ``lungspread dataset slabs --slab-mm MM --seed S`` on an MSD
folder of the two scans, 0001 first), in memory: scans only a few centimetres thick.
``--sweep`` also tries the post-processing settings of :data:`SWEEP` on the same probability
maps and names the one that the bundled model's rule picks on the phantoms: most lesions
found, then fewest false positives, then the highest mean Dice.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lungspread.volume import Volume

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: the two whole real scans with the readers' nodule masks (``DATA/NAME/ct.nii.gz``)
REAL_SCANS = ("lidc-idri-0001", "lidc-idri-0002")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB), from /proc (VmHWM) or getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0: write 5 to /proc/self/clear_refs); False if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def time_analyze(ct: Path, model: Path | None, **kw: Any) -> tuple[float, dict[str, Any]]:
    from lungspread.analyze import analyze

    t0 = time.perf_counter()
    result = analyze(ct, model=model, device="cpu", **kw)
    dt = time.perf_counter() - t0
    return dt, {"run": result.run, "summary": result.summary(), "tumor": result.tumor}


def time_nnunet_forward(repeats: int = 1) -> tuple[float, str]:
    """Seconds of one forward pass of nnU-Net's Task06 3d_fullres network (after a warm-up)."""
    import torch

    from lungspread.models import available_models, build_model

    if "nnunet-task06-3d" in available_models():
        net = build_model("nnunet-task06-3d")
        patch = (160, 192, 80)  # nnU-Net's 80x192x160 (z, y, x) in lungspread's (i, j, k)
        what = "registry nnunet-task06-3d"
    else:  # pragma: no cover - the training package registers it
        from monai.networks.nets import DynUNet

        kernels = [[3, 3, 1], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [2, 2, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
        net = DynUNet(
            3,
            1,
            2,
            kernels,
            strides,
            strides[1:],
            filters=[32, 64, 128, 256, 320, 320],
            norm_name="instance",
            act_name=("leakyrelu", {"negative_slope": 0.01}),
        )
        patch = (160, 192, 80)
        what = "MONAI DynUNet built like nnU-Net's Task06 plan"
    net.eval()
    x = torch.randn(1, 1, *patch)
    times = []
    with torch.inference_mode():
        net(x)  # warm-up: oneDNN picks its kernels on the first call
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)), what


def speed(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    ct = Path(args.ct)
    if not ct.exists():
        sys.exit(f"error: {ct} not found (the real data lives in ../shared/data)")
    out: dict[str, Any] = {"ct": str(ct), "threads": torch.get_num_threads()}
    reset_peak_rss()
    cold, info = time_analyze(ct, args.model)
    out["analyze_cold_s"] = round(cold, 2)
    out["peak_rss_mb"] = round(peak_rss_mb(), 0)
    warm, info = time_analyze(ct, args.model)
    out["analyze_warm_s"] = round(warm, 2)
    out["stages_s"] = info["run"]["timings_s"]
    out["precision"] = info["run"]["precision"]
    out["lesions"] = info["summary"]["lesion_count"]
    base_tumor = info["tumor"].array
    if args.ablation:
        dt32, info32 = time_analyze(ct, args.model, precision="float32")
        a, b = base_tumor > 0, info32["tumor"].array > 0
        denom = int(a.sum() + b.sum())
        out["ablation"] = {
            "float32_total_s": round(dt32, 2),
            "float32_predict_s": info32["run"]["timings_s"]["predict"],
            "dice_bf16_vs_fp32": (2 * int((a & b).sum()) / denom) if denom else None,
        }
    fwd, what = time_nnunet_forward(args.repeats)
    out["nnunet_forward_s"] = round(fwd, 2)
    out["nnunet_network"] = what
    out["ratio_cold"] = round(cold / fwd, 2)
    out["ratio_warm"] = round(warm / fwd, 2)
    return out


def real_slab_cases(slab_mms: list[float], seeds: list[int]) -> list[tuple[str, Volume, Volume]]:
    """The two real LIDC scans cut to slabs of each thickness around their nodule, one set per
    thickness and seed (named ``real_slab{MM}_s{SEED}``), as ``lungspread dataset slabs``
    cuts them (one random stream per set, 0001 first)."""
    from lungspread.data.slabs import cut_slab
    from lungspread.io import read_volume

    scans = [
        (name, read_volume(DATA / name / "ct.nii.gz"), read_volume(DATA / name / "nodules.nii.gz"))
        for name in REAL_SCANS
    ]
    cases = []
    for mm in slab_mms:
        for seed in seeds:
            rng = np.random.default_rng(seed)
            for name, image, label in scans:
                slab_image, slab_label, _, _ = cut_slab(image, label, mm, rng)
                case = f"real_slab{mm:g}_s{seed}/lidc_{name[-4:]}"
                cases.append((case, slab_image, slab_label))
    return cases


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    from lungspread.analyze import analyze
    from lungspread.data.msd import case_id_from_path
    from lungspread.demo import compare_lesions, dice
    from lungspread.io import read_volume
    from lungspread.resample import resample_like
    from lungspread.volume import Volume

    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, Path | Volume, Path | Volume]] = []
    for name in REAL_SCANS:
        cases.append((name, DATA / name / "ct.nii.gz", DATA / name / "nodules.nii.gz"))
    # the 32-slice DICOM excerpt of 0001 (an 80 mm slab around the nodule), scored against
    # the readers' mask resampled onto its grid
    slab = DATA / "lidc-idri-0001"
    cases.append(("lidc-idri-0001-dicom-slab", slab / "dicom", slab / "nodules.nii.gz"))
    for folder in args.phantoms or []:
        ds = json.loads((folder / "dataset.json").read_text())
        for entry in ds["training"][: args.max_phantoms]:
            img = folder / entry["image"]
            lab = folder / entry["label"]
            name = case_id_from_path(img)
            cases.append((name if len(args.phantoms) == 1 else f"{folder.name}/{name}", img, lab))
    if args.real_slabs:
        cases.extend(real_slab_cases(args.real_slabs, args.slab_seeds))
    sweep: dict[str, list[dict[str, Any]]] = {}
    for name, img, lab in cases:
        t0 = time.perf_counter()
        res = analyze(img, model=args.model, device="cpu", tta=args.tta, keep_probability=True)
        dt = time.perf_counter() - t0
        truth_vol = lab if isinstance(lab, Volume) else read_volume(lab)
        if not truth_vol.same_grid(res.tumor):
            truth_vol = resample_like(truth_vol, res.tumor, order=0)
        truth = truth_vol.array > 0
        pred = res.tumor.array > 0
        les = compare_lesions(truth, pred)
        voxel_ml = float(np.prod(truth_vol.spacing)) / 1000.0
        rows.append(
            {
                "case": name,
                "dice": round(dice(truth, pred), 4),
                "lesion_dice": [round(x["dice"], 3) for x in les["per_lesion"]],
                "lesion_ml": [round(x["voxels"] * voxel_ml, 3) for x in les["per_lesion"]],
                "true_lesions": les["true_lesions"],
                "found": les["found"],
                "false_positive_lesions": les["false_positive_lesions"],
                "seconds": round(dt, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        if args.sweep:
            sweep[name] = sweep_postprocess(res, truth)
    out: dict[str, Any] = {"cases": rows, "sets": summarize_sets(rows)}
    if args.sweep:
        out["sweep"] = summarize_sweep(sweep)
        out["sweep_choice"] = choose_setting(out["sweep"])
        print("chosen on the phantoms:", json.dumps(out["sweep_choice"]), flush=True)
    return out


def summarize_sets(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per set (a phantom folder, or a LIDC scan on its own): cases, lesions found of the true
    ones, false-positive lesions, mean scan Dice, the largest missed and the smallest found
    true lesion (mL; a lesion is found when the mask touches it)."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        sets.setdefault(row["case"].split("/")[0], []).append(row)
    out = {}
    for name, members in sets.items():
        pairs = [
            (ml, d) for r in members for ml, d in zip(r["lesion_ml"], r["lesion_dice"], strict=True)
        ]
        missed = [ml for ml, d in pairs if d == 0]
        found = [ml for ml, d in pairs if d > 0]
        out[name] = {
            "cases": len(members),
            "found": f"{sum(r['found'] for r in members)}/{len(pairs)}",
            "false_positive_lesions": sum(r["false_positive_lesions"] for r in members),
            "mean_dice": round(float(np.mean([r["dice"] for r in members])), 3),
            "largest_missed_ml": max(missed) if missed else None,
            "smallest_found_ml": min(found) if found else None,
        }
    return out


#: Post-processing settings tried by ``--sweep`` (threshold, min lesion mm^3, min peak).
SWEEP = [
    (t, v, pk)
    for t in (0.3, 0.4, 0.5, 0.6)
    for v in (30.0, 100.0, 300.0)
    for pk in (0.6, 0.8, 0.9)
    if pk >= t
]


def sweep_postprocess(res: Any, truth: np.ndarray) -> list[dict[str, Any]]:
    """Dice and lesion counts of one case for every setting in :data:`SWEEP`."""
    from lungspread.demo import compare_lesions, dice
    from lungspread.inference.postprocess import PostprocessOptions, postprocess

    box = tuple(
        slice(a, b) for a, b in zip(res.run["crop"]["start"], res.run["crop"]["stop"], strict=True)
    )
    prob = res.probability.array[box]
    lungs = res.lungs.array[box]
    t = truth[box]
    outside = int(truth.sum()) - int(t.sum())
    rows = []
    for thr, vol, peak in SWEEP:
        opts = PostprocessOptions(threshold=thr, min_lesion_mm3=vol, min_peak_probability=peak)
        mask = postprocess(prob, res.ct.spacing, lungs, opts).mask > 0
        les = compare_lesions(t, mask)
        rows.append(
            {
                "setting": [thr, vol, peak],
                "dice": dice(t, mask) if outside == 0 else float("nan"),
                "found": les["found"],
                "true": les["true_lesions"],
                "fp": les["false_positive_lesions"],
            }
        )
    return rows


def summarize_sweep(sweep: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per setting: mean Dice, lesions found / true and false positives, per case group."""
    out = []
    for i, setting in enumerate(SWEEP):
        groups: dict[str, list[dict[str, Any]]] = {"lidc": [], "phantom": []}
        for name, rows in sweep.items():
            groups["lidc" if name.startswith("lidc") else "phantom"].append(rows[i])
        entry: dict[str, Any] = {"setting": list(setting)}
        for g, rows in groups.items():
            if not rows:
                continue
            entry[g] = {
                "dice": round(float(np.nanmean([r["dice"] for r in rows])), 3),
                "found": f"{sum(r['found'] for r in rows)}/{sum(r['true'] for r in rows)}",
                "fp": sum(r["fp"] for r in rows),
            }
        out.append(entry)
        print(json.dumps(entry), flush=True)
    return out


def choose_setting(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row of :func:`summarize_sweep` with the most phantom lesions found, then the
    fewest phantom false positives, then the highest phantom mean Dice (None without
    phantoms). The real scans play no part in the choice."""
    scored = [r for r in rows if "phantom" in r]
    if not scored:
        return None

    def key(r: dict[str, Any]) -> tuple[int, int, float]:
        p = r["phantom"]
        return (-int(p["found"].split("/")[0]), int(p["fp"]), -float(p["dice"]))

    return min(scored, key=key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", default=str(DATA / "lidc-idri-0002" / "ct.nii.gz"))
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: bundled)")
    ap.add_argument("--repeats", type=int, default=1, help="timed nnU-Net forward passes")
    ap.add_argument("--ablation", action="store_true", help="also time float32")
    ap.add_argument("--accuracy", action="store_true", help="accuracy instead of speed")
    ap.add_argument(
        "--phantoms", type=Path, nargs="+", default=None, help="held-out phantom datasets"
    )
    ap.add_argument("--max-phantoms", type=int, default=10, help="cases per phantom dataset")
    ap.add_argument(
        "--real-slabs", type=float, nargs="+", default=None, metavar="MM",
        help="also score the two real scans cut to slabs of these thicknesses (mm)",
    )  # fmt: skip
    ap.add_argument("--slab-seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S")
    ap.add_argument("--tta", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="try post-processing settings")
    args = ap.parse_args()
    result = accuracy(args) if args.accuracy else speed(args)
    print(json.dumps(result, indent=2))
    for name, st in result.get("sets", {}).items():
        print(
            f"{name}: {st['cases']} case(s), {st['found']} lesions found, "
            f"{st['false_positive_lesions']} false positive(s), mean Dice {st['mean_dice']:.3f}, "
            f"largest missed {st['largest_missed_ml']} mL, smallest found "
            f"{st['smallest_found_ml']} mL"
        )
    if not args.accuracy:
        print(
            f"\nanalyze {result['analyze_cold_s']:.1f} s (first run; "
            f"{result['analyze_warm_s']:.1f} s warm), nnU-Net Task06 forward pass "
            f"{result['nnunet_forward_s']:.1f} s -> ratio "
            f"{result['ratio_cold']:.2f} (warm {result['ratio_warm']:.2f}); peak memory "
            f"{result['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()

"""Dataset fingerprint and plan (nnU-Net style), and a preprocessed-case cache.

``plan_dataset(dataset)`` reads every case's header (shape, spacing) and fits the intensity
normalization; the **target spacing** is nnU-Net v2's 3d_fullres rule: the per-axis median
spacing, except when the coarsest axis is more than 3x coarser than the others *and* has fewer
than a third of their voxels: that axis then gets the 10th percentile of its spacings (at least
the finest other spacing). For 2D datasets (single-slice cases) the slice axis is never resampled.

``preprocess_dataset(dataset, plan, cache_dir, crop, denoise)`` writes, per case,
``<cache_dir>/<dataset>_<key>/<case>.npz`` (``image`` float16 normalized, ``label`` uint8,
``fg_coords`` int32 up to 10,000 foreground voxel indices for foreground oversampling) and
``<case>.json`` (geometry and provenance). ``key`` is a hash of everything that changes the
arrays (target spacing, normalization, resampling orders, crop, denoise, format version), so a
changed plan or option writes to a new folder; a case is recomputed when its source files
change (size or modification time). Order of operations: crop (on the original grid) ->
resample -> denoise (raw intensities) -> normalize.

Crops: ``"body"``: for CT, the bounding box of the largest connected region above -500 HU;
for other modalities, the box of the non-zero voxels (nnU-Net's crop-to-nonzero); ``"lungs"``:
the box of :func:`lungspread.lungs.segment_lungs` plus a 10 mm margin; ``"none"``. The box is
always widened to include every labelled voxel, so a crop never loses tumor.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lungspread.errors import InputError, MissingDependencyError
from lungspread.volume import Volume

if TYPE_CHECKING:
    from lungspread.data.msd import MSDDataset

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
ANISOTROPY_THRESHOLD = 3.0
BODY_THRESHOLD_HU = -500.0
LUNG_MARGIN_MM = 10.0
FG_COORDS_MAX = 10_000
CROPS = ("body", "lungs", "none")


# -- plan --------------------------------------------------------------------------------------
def target_spacing_nnunet(
    spacings: np.ndarray, shapes: np.ndarray, threshold: float = ANISOTROPY_THRESHOLD
) -> tuple[list[float], bool]:
    """nnU-Net v2's ``determine_fullres_target_spacing``: (target spacing, anisotropic?)."""
    sp = np.asarray(spacings, dtype=np.float64).reshape(-1, 3)
    sh = np.asarray(shapes, dtype=np.float64).reshape(-1, 3)
    target = np.percentile(sp, 50, axis=0)
    target_size = np.percentile(sh, 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(3) if i != worst]
    other_sp = [target[i] for i in others]
    other_size = [target_size[i] for i in others]
    aniso_spacing = target[worst] > threshold * max(other_sp)
    aniso_voxels = target_size[worst] * threshold < min(other_size)
    anisotropic = bool(aniso_spacing and aniso_voxels)
    if anisotropic:
        t = float(np.percentile(sp[:, worst], 10))
        if t < max(other_sp):
            t = max(max(other_sp), t) + 1e-5
        target[worst] = t
    return [float(v) for v in target], anisotropic


def plan_dataset(
    dataset: MSDDataset,
    max_cases: int | None = None,
    intensity_samples: int | None = None,
) -> dict[str, Any]:
    """The dataset fingerprint and preprocessing plan (a JSON-ready dict).

    ``max_cases`` limits the cases *read for intensity statistics* (headers are always read
    for all); ``intensity_samples`` overrides nnU-Net's 10^8 foreground samples (less memory).
    """
    from lungspread.data.msd import header_grid
    from lungspread.data.normalization import (
        NNUNET_FOREGROUND_SAMPLES,
        ct_params_from_stats,
        fit_foreground_intensities,
    )

    per_case: dict[str, dict[str, Any]] = {}
    for c in dataset.cases:
        shape, affine = header_grid(c.image)
        spacing = [float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)]
        per_case[c.id] = {"shape": list(shape), "spacing_mm": spacing}
    spacings = np.array([v["spacing_mm"] for v in per_case.values()])
    shapes = np.array([v["shape"] for v in per_case.values()])
    is_2d = bool(np.all(shapes[:, 2] == 1))
    if is_2d:
        target = [float(v) for v in np.median(spacings, axis=0)]
        anisotropic = False
    else:
        target, anisotropic = target_spacing_nnunet(spacings, shapes)
    intensity: dict[str, float] | None = None
    if dataset.is_ct:
        intensity = fit_foreground_intensities(
            dataset,
            max_cases=max_cases,
            total_samples=intensity_samples or NNUNET_FOREGROUND_SAMPLES,
        )
        normalization = ct_params_from_stats(intensity)
    else:
        normalization = {"scheme": "zscore"}
    return {
        "plan_version": CACHE_FORMAT_VERSION,
        "dataset": dataset.name,
        "modality": dict(dataset.modality),
        "labels": dict(dataset.labels),
        "n_cases": len(dataset.cases),
        "is_2d": is_2d,
        "cases": per_case,
        "median_spacing_mm": [float(v) for v in np.median(spacings, axis=0)],
        "median_shape": [float(v) for v in np.median(shapes, axis=0)],
        "min_spacing_mm": [float(v) for v in spacings.min(axis=0)],
        "max_spacing_mm": [float(v) for v in spacings.max(axis=0)],
        "target_spacing_mm": target,
        "anisotropic": anisotropic,
        "resample_slice_axis": not is_2d,
        "foreground_intensity": intensity,
        "normalization": normalization,
        "resampling": {"image_order": 3, "label_order": 1},
    }


def cache_key(plan: dict[str, Any], crop: str, denoise: str | None) -> str:
    """Hash (12 hex digits) of everything in the plan and options that changes the arrays."""
    relevant = {
        "format": CACHE_FORMAT_VERSION,
        "target_spacing_mm": [round(float(v), 6) for v in plan["target_spacing_mm"]],
        "resample_slice_axis": bool(plan.get("resample_slice_axis", True)),
        "normalization": plan["normalization"],
        "resampling": plan.get("resampling", {}),
        "labels": plan.get("labels", {}),
        "crop": crop,
        "denoise": denoise,
    }
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- geometry helpers ------------------------------------------------------------------------
def _bbox(mask: np.ndarray) -> list[list[int]] | None:
    if not mask.any():
        return None
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append([int(idx[0]), int(idx[-1]) + 1])
    return out


def _union(a: list[list[int]] | None, b: list[list[int]] | None) -> list[list[int]] | None:
    if a is None:
        return b
    if b is None:
        return a
    return [[min(x[0], y[0]), max(x[1], y[1])] for x, y in zip(a, b, strict=True)]


def body_bbox(volume: Volume, is_ct: bool) -> list[list[int]] | None:
    """Box of the body: largest connected region above -500 HU (CT) or the non-zero voxels."""
    from scipy import ndimage

    arr = volume.array
    if not is_ct:
        return _bbox(arr != 0)
    mask = arr > BODY_THRESHOLD_HU
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return _bbox(labels == int(np.argmax(sizes)))


def lung_bbox(volume: Volume) -> list[list[int]] | None:
    """Box of the lungs from :func:`lungspread.lungs.segment_lungs`, widened by 10 mm."""
    try:
        mod = importlib.import_module("lungspread.lungs")
        segment = mod.segment_lungs
    except (ImportError, AttributeError) as exc:
        raise MissingDependencyError(
            "crop='lungs' needs lungspread.lungs.segment_lungs, which this installation lacks; "
            "use crop='body'"
        ) from exc
    try:
        result = segment(volume)
    except InputError as exc:  # e.g. no lung-like air found
        log.warning("lung segmentation failed (%s)", exc)
        return None
    mask = _as_mask(result)
    if mask is None or mask.shape != volume.shape:
        raise InputError(
            "segment_lungs returned no usable mask for crop='lungs'", volume.meta.get("source")
        )
    box = _bbox(mask)
    if box is None:
        return None
    margin = [int(np.ceil(LUNG_MARGIN_MM / s)) for s in volume.spacing]
    return [
        [max(0, lo - m), min(n, hi + m)]
        for (lo, hi), m, n in zip(box, margin, volume.shape, strict=True)
    ]


def _as_mask(result: Any) -> np.ndarray | None:
    """Accept a Volume, an array, or an object/dict holding one (``mask``/``lungs``)."""
    if isinstance(result, Volume):
        return np.asarray(result.array) > 0
    if isinstance(result, np.ndarray):
        return result > 0
    for name in ("mask", "lungs", "lung_mask", "labels"):
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if value is not None:
            return _as_mask(value)
    if isinstance(result, tuple) and result:
        return _as_mask(result[0])
    return None


def crop_volume(volume: Volume, box: list[list[int]]) -> Volume:
    """Sub-volume ``array[box]`` with its affine moved to the box's first voxel."""
    sl = tuple(slice(lo, hi) for lo, hi in box)
    affine = volume.affine.copy()
    affine[:3, 3] = volume.index_to_world([lo for lo, _ in box])
    return Volume(volume.array[sl], affine, dict(volume.meta))


def resample_volume(volume: Volume, spacing_mm: list[float], order: int) -> Volume:
    """Resample to ``spacing_mm`` with ``lungspread.resample.resample_to_spacing`` when it
    exists, else ``scipy.ndimage.zoom`` (grid-aligned: voxel boxes cover the same extent)."""
    if np.allclose(volume.spacing, spacing_mm, rtol=1e-4, atol=1e-6):
        return volume
    try:
        mod = importlib.import_module("lungspread.resample")
        fn = mod.resample_to_spacing
    except (ImportError, AttributeError):
        fn = None
    if fn is not None:
        out = fn(volume, tuple(float(s) for s in spacing_mm), order)
        if isinstance(out, Volume):
            return out
    return _zoom_resample(volume, spacing_mm, order)


def _zoom_resample(volume: Volume, spacing_mm: list[float], order: int) -> Volume:
    from scipy import ndimage

    old = np.asarray(volume.spacing)
    new_shape = np.maximum(1, np.round(np.asarray(volume.shape) * old / np.asarray(spacing_mm)))
    new_shape = new_shape.astype(int)
    factors = new_shape / np.asarray(volume.shape)
    arr = np.asarray(volume.array, dtype=np.float32)
    out = ndimage.zoom(
        arr, factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1
    )
    f = np.asarray(volume.shape) / new_shape  # old voxels per new voxel
    scale = np.eye(4)
    scale[:3, :3] = np.diag(f)
    scale[:3, 3] = 0.5 * f - 0.5
    return Volume(out, volume.affine @ scale, dict(volume.meta))


def _resample_label(
    label: Volume, spacing_mm: list[float], order: int, values: list[int]
) -> Volume:
    """Resample a label map: each class's indicator with ``order`` (>= 0.5 wins, like nnU-Net's
    one-hot resampling); order 0 resamples the indices directly."""
    if np.allclose(label.spacing, spacing_mm, rtol=1e-4, atol=1e-6):
        return label
    if order == 0:
        out = resample_volume(label.with_array(label.array.astype(np.float32)), spacing_mm, 0)
        return out.with_array(np.rint(out.array).astype(np.uint8))
    result: np.ndarray | None = None
    ref: Volume | None = None
    for v in values:
        if v == 0:
            continue
        ind = label.with_array((label.array == v).astype(np.float32))
        r = resample_volume(ind, spacing_mm, order)
        if result is None:
            result = np.zeros(r.shape, np.uint8)
            ref = r
        result[r.array >= 0.5] = v
    if result is None or ref is None:
        r = resample_volume(label.with_array(np.zeros(label.shape, np.float32)), spacing_mm, 0)
        return r.with_array(np.zeros(r.shape, np.uint8))
    return ref.with_array(result)


# -- cache -----------------------------------------------------------------------------------
def _stat(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


def _atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def preprocess_case(
    dataset: MSDDataset,
    case_id: str,
    plan: dict[str, Any],
    crop: str = "body",
    denoise: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Preprocess one case in memory: (image float32 normalized, label uint8, meta)."""
    from lungspread.data.denoise import denoise as run_denoise
    from lungspread.data.normalization import normalize

    if crop not in CROPS:
        raise InputError(f"unknown crop {crop!r}; known: {', '.join(CROPS)}")
    case = dataset.case(case_id)
    image, label = dataset.load_case(case)
    box: list[list[int]] | None = None
    if crop == "body":
        box = body_bbox(image, dataset.is_ct)
    elif crop == "lungs":
        box = lung_bbox(image)
        if box is None:
            log.warning("%s: no lungs found; cropping to the body instead", case_id)
            box = body_bbox(image, dataset.is_ct)
    if crop != "none" and label is not None:
        box = _union(box, _bbox(label.array > 0))
    if box is None:
        box = [[0, n] for n in image.shape]
    cropped = crop_volume(image, box)
    cropped_label = crop_volume(label, box) if label is not None else None
    target = [float(v) for v in plan["target_spacing_mm"]]
    if not plan.get("resample_slice_axis", True) or cropped.shape[2] == 1:
        target[2] = cropped.spacing[2]
    orders = plan.get("resampling", {})
    res = resample_volume(cropped, target, int(orders.get("image_order", 3)))
    if cropped_label is not None:
        values = sorted({int(v) for v in plan.get("labels", {"0": "", "1": ""})})
        res_label = _resample_label(
            cropped_label, target, int(orders.get("label_order", 1)), values
        )
        lab = res_label.array.astype(np.uint8)
        if lab.shape != res.shape:  # pragma: no cover - both go through the same resampler
            raise InputError(f"{case_id}: resampled label shape {lab.shape} != image {res.shape}")
    else:
        lab = np.zeros(res.shape, np.uint8)
    arr = np.asarray(res.array, dtype=np.float32)
    if denoise:
        arr = run_denoise(arr, res.spacing, denoise)
    arr = normalize(arr, plan["normalization"])
    meta: dict[str, Any] = {
        "case": case_id,
        "source_image": str(case.image),
        "source_label": None if case.label is None else str(case.label),
        "original_shape": list(image.shape),
        "original_spacing_mm": list(image.spacing),
        "original_affine": image.affine.tolist(),
        "crop": crop,
        "crop_box": box,
        "denoise": denoise,
        "shape": list(arr.shape),
        "spacing_mm": list(res.spacing),
        "affine": res.affine.tolist(),
        "normalization": plan["normalization"],
        "foreground_voxels": int(np.count_nonzero(lab)),
        "has_label": label is not None,
    }
    return arr, lab, meta


def preprocess_dataset(
    dataset: MSDDataset,
    plan: dict[str, Any],
    cache_dir: str | Path,
    crop: str = "body",
    denoise: str | None = None,
    cases: list[str] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Preprocess every case (or the ids in ``cases``) into the cache; return the ``.npz`` paths.

    Cases already in the cache for this plan key, with unchanged source files, are not redone.
    """
    if crop not in CROPS:
        raise InputError(f"unknown crop {crop!r}; known: {', '.join(CROPS)}")
    if denoise:
        from lungspread.data.denoise import parse_method

        parse_method(denoise)
    key = cache_key(plan, crop, denoise)
    safe_name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in dataset.name)
    folder = Path(cache_dir) / f"{safe_name}_{key}"
    folder.mkdir(parents=True, exist_ok=True)
    from lungspread.outputs import write_json

    plan_path = folder / "plan.json"
    if not plan_path.is_file():
        write_json(plan_path, {"key": key, "crop": crop, "denoise": denoise, "plan": plan})
    ids = [c.id for c in dataset.cases] if cases is None else list(cases)
    paths: list[Path] = []
    rng = np.random.default_rng(seed)
    for cid in ids:
        case = dataset.case(cid)
        npz = folder / f"{cid}.npz"
        side = folder / f"{cid}.json"
        stats = {"image": _stat(case.image), "label": _stat(case.label)}
        if npz.is_file() and side.is_file():
            try:
                old = json.loads(side.read_text(encoding="utf-8"))
                if old.get("cache_key") == key and old.get("source_stat") == stats:
                    paths.append(npz)
                    continue
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                pass
        arr, lab, meta = preprocess_case(dataset, cid, plan, crop, denoise)
        fg = np.argwhere(lab > 0)
        if len(fg) > FG_COORDS_MAX:
            fg = fg[np.sort(rng.choice(len(fg), FG_COORDS_MAX, replace=False))]
        big = float(np.max(np.abs(arr))) if arr.size else 0.0
        stored = arr.astype(np.float16) if big < 60000 else arr
        meta.update(cache_key=key, source_stat=stats, image_dtype=str(stored.dtype))
        _atomic_save_npz(
            npz, image=stored, label=lab.astype(np.uint8), fg_coords=fg.astype(np.int32)
        )
        write_json(side, meta)
        paths.append(npz)
    return paths


def load_preprocessed(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(image float32, label uint8, meta) of a cached case (``.npz`` or its ``.json``).

    ``meta`` is the sidecar JSON plus ``fg_coords`` (int32 array (N, 3) of foreground voxel
    indices, a random subset of at most 10,000).
    """
    p = Path(path)
    npz = p.with_suffix(".npz")
    side = p.with_suffix(".json")
    if not npz.is_file() or not side.is_file():
        raise InputError("preprocessed case not found (expected .npz and .json)", npz)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        with np.load(npz, allow_pickle=False) as z:
            image = z["image"].astype(np.float32)
            label = z["label"].astype(np.uint8)
            fg = z["fg_coords"].astype(np.int32) if "fg_coords" in z else np.zeros((0, 3), np.int32)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(
            f"preprocessed case is corrupt ({exc}); delete it to recompute", npz
        ) from exc
    meta["fg_coords"] = fg
    return image, label, meta

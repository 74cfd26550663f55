"""The training set of the bundled default model: realistic phantoms with real nodules.

What goes in, and why (see also ``lungspread/weights/MODEL_CARD.md``):

* **Phantom chests** (:func:`lungspread.phantom.make_phantom`, full size): whole-chest
  anatomy with vessels, airways, chest wall and mediastinum and synthetic tumors of every kind
  (solid, part-solid, ground-glass; central, juxtavascular, juxtapleural) with exact masks.
  They are what teaches the network what is *not* a tumor, which the real crops cannot.
* **Real LIDC-IDRI nodules** (``../shared/data/lidc-nodule-vois``: 991 crops in HU with
  masks) pasted into the phantoms' lungs (:func:`lungspread.phantom.insert_nodule`), so the
  network sees real nodule texture, margins and surrounding lung. Crops are split by
  patient (:func:`split_patients`); patients ``LIDC-IDRI-0001`` and ``LIDC-IDRI-0002`` are
  never used (they are the real test scans). Ground-glass and part-solid nodules (90th
  percentile of HU inside the mask below :data:`SUBSOLID_P90_HU`: 140 of the 838 training
  crops) are drawn about twice as often as their share, because they are the hardest for a
  model and one of the two real test lesions is one. ``subsolid_share``,
  ``subsolid_scale`` and ``subsolid_contrast`` make sets of sub-solid nodules only, larger
  and fainter than the crops (few real crops are large faint ground glass).
* **Not used**: the MSD Task06 2D slices and 2D patches (a 3D network cannot learn from
  single slices without inventing the third dimension, and stacking a slice into a volume
  turns vessels into plates), and the two whole LIDC scans (held out for testing; they are
  the only real whole scans here, so no real tumor-free scan is available for negatives).

Each case is written at the model's spacing, cropped to the lungs plus a margin (what
analyze shows the model), as an MSD folder: ``dataset.json`` (with each case's ``patient``),
``imagesTr/``, ``labelsTr/``. Reproduce with ``scripts/build_trainset.py``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.data.msd import MSDCase, case_id_from_path, write_dataset_json
from lungspread.errors import InputError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: The real test scans: their nodules are never used for training.
TEST_PATIENTS = ("LIDC-IDRI-0001", "LIDC-IDRI-0002")

#: 90th percentile of HU inside a nodule's mask below which it counts as sub-solid
#: (ground-glass or part-solid) when drawing nodules; the mean would call most small solid
#: nodules sub-solid because of the partial volume at their edge.
SUBSOLID_P90_HU = -200.0
#: Default chance that a pasted nodule is sub-solid (about twice their share of the crops).
SUBSOLID_SHARE = 0.35
#: Default size factors of pasted nodules, and contrasts (1 = as scanned).
SCALE_RANGE = (0.85, 1.25)
CONTRAST_RANGE = (1.0, 1.0)


@dataclass(frozen=True)
class NoduleCrop:
    """One LIDC nodule crop: ``case`` (file stem), ``patient``, image and mask paths."""

    case: str
    patient: str
    image: Path
    mask: Path
    diameter_mm: float
    volume_ml: float


def lidc_crops(root: str | Path) -> list[NoduleCrop]:
    """The crops listed in ``root/index.csv`` whose image and mask files exist."""
    root = Path(root)
    index = root / "index.csv"
    if not index.is_file():
        raise InputError("no index.csv; expected the lidc-nodule-vois folder", root)
    crops = []
    with index.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            image = root / "image" / f"{row['case']}.nii.gz"
            mask = root / "mask" / f"{row['case']}.nii.gz"
            if not (image.is_file() and mask.is_file()):
                continue
            crops.append(
                NoduleCrop(
                    case=row["case"],
                    patient=row["patient"],
                    image=image,
                    mask=mask,
                    diameter_mm=float(row["diameter_mm"]),
                    volume_ml=float(row["mask_ml"]),
                )
            )
    if not crops:
        raise InputError("index.csv lists no crop whose image and mask exist", index)
    return crops


def split_patients(
    crops: list[NoduleCrop], val_fraction: float = 0.15, seed: int = 0
) -> dict[str, list[NoduleCrop]]:
    """``{"train": [...], "val": [...]}`` by patient (never by crop), test patients removed.

    Deterministic for a seed: the sorted patient list is shuffled with
    ``numpy.random.default_rng(seed)`` and the first ``val_fraction`` goes to ``"val"``.
    """
    patients = sorted({c.patient for c in crops} - set(TEST_PATIENTS))
    order = np.random.default_rng(seed).permutation(len(patients))
    n_val = round(val_fraction * len(patients))
    val = {patients[i] for i in order[:n_val]}
    return {
        "train": [c for c in crops if c.patient not in val and c.patient not in TEST_PATIENTS],
        "val": [c for c in crops if c.patient in val],
    }


def load_crop(crop: NoduleCrop) -> tuple[Volume, Volume]:
    """(image in HU, float32; mask uint8) of a crop."""
    from lungspread.io import read_volume

    img = read_volume(crop.image)
    mask = read_volume(crop.mask)
    return (
        img.with_array(np.asarray(img.array, dtype=np.float32)),
        mask.with_array((np.asarray(mask.array) > 0).astype(np.uint8)),
    )


def crop_p90_hu(crop: NoduleCrop) -> float:
    """90th percentile of the HU inside the nodule's mask."""
    img, mask = load_crop(crop)
    inside = img.array[mask.array > 0]
    return float(np.percentile(inside, 90)) if inside.size else float("nan")


def draw_crops(
    crops: list[NoduleCrop],
    n: int,
    rng: np.random.Generator,
    subsolid: set[str],
    subsolid_share: float = SUBSOLID_SHARE,
    max_diameter_mm: float = 40.0,
) -> list[NoduleCrop]:
    """``n`` crops drawn with replacement, sub-solid ones with probability ``subsolid_share``."""
    pool = [c for c in crops if c.diameter_mm <= max_diameter_mm]
    soft = [c for c in pool if c.case in subsolid]
    solid = [c for c in pool if c.case not in subsolid]
    out = []
    for _ in range(n):
        src = soft if (soft and rng.random() < subsolid_share) or not solid else solid
        out.append(src[int(rng.integers(len(src)))])
    return out


def _coarse_lungs(lungs: Volume, step: tuple[int, int, int] = (4, 4, 2)) -> Volume:
    """Every ``step``-th voxel of the lung label (for fast placement of nodules)."""
    arr = np.ascontiguousarray(np.asarray(lungs.array)[:: step[0], :: step[1], :: step[2]])
    affine = lungs.affine.copy()
    affine[:3, :3] = affine[:3, :3] * np.asarray(step, dtype=np.float64)[None, :]
    return Volume(arr, affine)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random turn about the patient's z axis with random left-right / front-back flips
    (crops keep their slice axis: their masks are coarser across slices)."""
    theta = float(rng.uniform(0.0, 2.0 * np.pi))
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    flips = np.diag([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0]), 1.0])
    out: np.ndarray = rot @ flips
    return out


def paste_crop(
    ct: Volume,
    tumor: Volume,
    lungs: Volume,
    crop: NoduleCrop,
    rng: np.random.Generator,
    juxtapleural_share: float = 0.25,
    coarse: Volume | None = None,
    scale_range: tuple[float, float] = SCALE_RANGE,
    contrast_range: tuple[float, float] = CONTRAST_RANGE,
) -> tuple[Volume, Volume] | None:
    """Blend one real nodule into the lungs (:func:`lungspread.phantom.insert_nodule`) at a
    random site: deep enough for the nodule to fit, or (``juxtapleural_share`` of the time)
    against the lung's boundary, turned and flipped at random, scaled by a factor drawn from
    ``scale_range`` and faded by a contrast drawn from ``contrast_range`` (1 = as scanned).
    Returns the new (CT, tumor mask), or None when no site fits."""
    from lungspread.errors import GeometryError
    from lungspread.phantom.insert import insert_nodule, lung_site

    img, mask = load_crop(crop)
    radius_mm = (3.0 * crop.volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    depth = 1.0 if rng.random() < juxtapleural_share else max(3.0, 0.8 * radius_mm)
    try:
        center = lung_site(coarse if coarse is not None else _coarse_lungs(lungs), rng, depth)
        # drawn in this order so that sets built before the ranges existed come out the same
        rotation = random_rotation(rng)
        scale = float(rng.uniform(*scale_range))
        contrast = (
            1.0 if tuple(contrast_range) == (1.0, 1.0) else float(rng.uniform(*contrast_range))
        )
        new_ct, new_tumor = insert_nodule(
            ct,
            tumor,
            img.array,
            mask.array,
            img.spacing,
            [float(v) for v in center],
            lungs=lungs,
            rotation=rotation,
            scale=scale,
            contrast=contrast,
        )
    except (InputError, GeometryError) as exc:
        log.info("%s not pasted: %s", crop.case, exc)
        return None
    return new_ct, new_tumor


def to_model_grid(
    ct: Volume,
    tumor: Volume,
    lungs: Volume,
    spacing_mm: tuple[float, float, float],
    margin_mm: float,
) -> tuple[Volume, Volume]:
    """(CT int16, tumor uint8) as the model sees them in analyze: cropped to the lungs'
    bounding box plus ``margin_mm`` (:func:`lungspread.analyze.lung_crop_box`) on the native
    grid, then resized to ``spacing_mm`` with the predictor's own resampling
    (:func:`lungspread.inference.predictor.prepare_array`'s trilinear resize; the label
    linearly, then >= 0.5). The affine records ``spacing_mm`` exactly, so that training needs
    no second resampling (the crop's true extent differs by less than one voxel)."""
    from lungspread.analyze import crop_volume, lung_crop_box
    from lungspread.inference.predictor import prepare_label, resampled_shape, resize_array

    box = lung_crop_box(lungs, margin_mm)
    if box is None:
        raise InputError("the phantom has no lungs")
    region = crop_volume(ct, box)
    shape = resampled_shape(region.shape, region.spacing, spacing_mm, 3)
    img = np.round(resize_array(np.asarray(region.array, np.float32), shape, order=1))
    lab = prepare_label(np.asarray(tumor.array)[box], shape)
    affine = region.affine.copy()
    affine[:3, :3] = region.direction * np.asarray(spacing_mm)[None, :]
    # align_corners=False: new voxel 0's centre sits (f - 1) / 2 old voxels in, f = old/new
    f = np.asarray(region.shape, np.float64) / np.asarray(shape, np.float64)
    affine[:3, 3] = region.index_to_world((f - 1.0) / 2.0)
    return (
        Volume(img.astype(np.int16), affine),
        Volume(lab.astype(np.uint8), affine.copy()),
    )


def _written_entries(out: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Entries of ``out/dataset.json`` whose image and label files exist, by case id, when
    ``out/trainset.json`` holds the same build ``settings`` (any ``n_cases``); an earlier
    build with other settings is an error, not something to mix with."""
    try:
        before = json.loads((out / "trainset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(before, dict):
        return {}
    # folders built before these options existed
    before.setdefault("subsolid_share", SUBSOLID_SHARE)
    before.setdefault("subsolid_scale", list(SCALE_RANGE))
    before.setdefault("subsolid_contrast", list(CONTRAST_RANGE))
    changed = sorted(k for k, v in settings.items() if k != "n_cases" and before.get(k) != v)
    if changed:
        raise InputError(
            f"folder holds a training set built with other settings ({', '.join(changed)}); "
            "choose a new folder",
            out,
        )
    try:
        data = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
        training = data["training"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    found = {}
    for entry in training:
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            continue
        if (out / entry["image"]).is_file() and (out / entry["label"]).is_file():
            found[case_id_from_path(entry["image"])] = entry
    return found


def build_trainset(
    out: str | Path,
    n_cases: int,
    seed: int = 0,
    split: str = "train",
    lidc_root: str | Path | None = None,
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    nodules_per_case: tuple[int, int] = (1, 4),
    margin_mm: float = 15.0,
    size: str = "full",
    on_case: Callable[[int, str], None] | None = None,
    subsolid_share: float = SUBSOLID_SHARE,
    subsolid_scale: tuple[float, float] = SCALE_RANGE,
    subsolid_contrast: tuple[float, float] = CONTRAST_RANGE,
    mimics: tuple[int, int] = (0, 0),
) -> Path:
    """Write ``n_cases`` phantom chests with pasted real nodules as an MSD folder ``out``.

    ``split`` ("train" or "val") picks the LIDC patients whose nodules are pasted (see
    :func:`split_patients`, seed 0) and offsets the phantom seeds (val phantoms are other
    patients than train phantoms for the same ``seed``). Case ``i`` uses phantom seed
    ``seed * 100_000 + (0 if train else 50_000) + i``, so every case is reproducible alone,
    and a folder built with the same settings is extended: its cases are kept, not rebuilt.
    ``subsolid_share`` is the chance that a pasted nodule is a sub-solid one (see
    :func:`draw_crops`; 1.0 pastes only ground-glass and part-solid nodules);
    ``subsolid_scale`` and ``subsolid_contrast`` are the ranges that those nodules' size
    factor and contrast are drawn from (:func:`paste_crop`; a contrast below 1 makes fainter
    ground glass than any crop has, with real texture). Solid nodules keep the defaults.
    ``mimics`` (lo, hi): each chest gets between lo and hi non-tumor opacities (dependent and
    plate-like atelectasis, :mod:`lungspread.phantom.mimics`), unlabelled: negatives that look
    like faint tumors. The count comes from a stream of its own, so the nodules pasted do
    not change with it.
    """
    from lungspread.io import write_volume
    from lungspread.phantom import make_phantom

    if split not in ("train", "val"):
        raise InputError(f"split must be 'train' or 'val', got {split!r}")
    if not 0.0 <= subsolid_share <= 1.0:
        raise InputError(f"subsolid_share must be between 0 and 1, got {subsolid_share}")
    for name, (lo, hi), bounds in (
        ("subsolid_scale", subsolid_scale, (0.2, 5.0)),
        ("subsolid_contrast", subsolid_contrast, (0.0, 1.0)),
    ):
        if not bounds[0] < lo <= hi <= bounds[1]:
            raise InputError(
                f"{name} must be a range lo <= hi within ({bounds[0]}, {bounds[1]}], got {lo}, {hi}"
            )
    from lungspread.phantom.mimics import MAX_PER_CASE

    lo_m, hi_m = mimics
    if not 0 <= lo_m <= hi_m <= MAX_PER_CASE:
        raise InputError(
            f"mimics must be a range 0 <= lo <= hi <= {MAX_PER_CASE}, got {lo_m}, {hi_m}"
        )
    out = Path(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    crops: list[NoduleCrop] = []
    subsolid: set[str] = set()
    if lidc_root is not None:
        crops = split_patients(lidc_crops(lidc_root))[split]
        subsolid = {c.case for c in crops if crop_p90_hu(c) < SUBSOLID_P90_HU}
        log.info("%d %s crops, %d sub-solid", len(crops), split, len(subsolid))
    entries: list[dict[str, Any]] = []
    base = seed * 100_000 + (0 if split == "train" else 50_000)
    settings = {
        "n_cases": n_cases,
        "seed": seed,
        "split": split,
        "spacing_mm": list(spacing_mm),
        "nodules_per_case": list(nodules_per_case),
        "margin_mm": margin_mm,
        "size": size,
        "lidc_root": None if lidc_root is None else str(lidc_root),
        "subsolid_share": subsolid_share,
        "subsolid_scale": [float(v) for v in subsolid_scale],
        "subsolid_contrast": [float(v) for v in subsolid_contrast],
    }
    if hi_m > 0:  # only then, so that folders built before mimics existed are still resumed
        settings["mimics"] = [int(lo_m), int(hi_m)]
    written = _written_entries(out, settings)
    for i in range(n_cases):
        case_seed = base + i
        cid = f"ls_{split}_{i:04d}"
        if cid in written:  # built before (same seed, same case): kept, so a build resumes
            entries.append(written[cid])
            if on_case is not None:
                on_case(i, cid)
            continue
        rng = np.random.default_rng(case_seed)
        n_mimics = int(np.random.default_rng((case_seed, 7)).integers(lo_m, hi_m + 1))
        ph = make_phantom(case_seed, size=size, mimics=n_mimics)
        ct, tumor, lungs = ph.ct, ph.tumor, ph.lungs
        pasted: list[str] = []
        if crops:
            k = int(rng.integers(nodules_per_case[0], nodules_per_case[1] + 1))
            coarse = _coarse_lungs(lungs)
            for crop in draw_crops(crops, k, rng, subsolid, subsolid_share):
                soft = crop.case in subsolid
                result = paste_crop(
                    ct,
                    tumor,
                    lungs,
                    crop,
                    rng,
                    coarse=coarse,
                    scale_range=subsolid_scale if soft else SCALE_RANGE,
                    contrast_range=subsolid_contrast if soft else CONTRAST_RANGE,
                )
                if result is not None:
                    ct, tumor = result
                    pasted.append(crop.case)
        img_vol, lab_vol = to_model_grid(ct, tumor, lungs, spacing_mm, margin_mm)
        write_volume(img_vol, out / "imagesTr" / f"{cid}.nii.gz")
        write_volume(lab_vol, out / "labelsTr" / f"{cid}.nii.gz")
        entries.append(
            {
                "image": f"./imagesTr/{cid}.nii.gz",
                "label": f"./labelsTr/{cid}.nii.gz",
                "patient": f"phantom-{case_seed}",
                "lidc_nodules": pasted,
            }
        )
        if hi_m > 0:
            entries[-1]["mimics"] = [m["kind"] for m in ph.meta["mimics"]]
        if on_case is not None:
            on_case(i, cid)
    fields = ("image", "label", "patient")
    write_dataset_json(
        out,
        cases=[
            MSDCase(
                case_id_from_path(e["image"]), out / e["image"], out / e["label"], e.get("patient")
            )
            for e in entries
        ],
        entry_fields=[{k: v for k, v in e.items() if k not in fields} for e in entries],
        modality={"0": "CT"},
        labels={"0": "background", "1": "tumor"},
        name=f"lungspread-bundled-{split}",
        description=(
            f"{n_cases} phantom chests (seed {seed}, {split}) with real LIDC-IDRI nodules "
            f"pasted into the lungs, at {spacing_mm} mm, cropped to the lungs + {margin_mm} mm"
        ),
    )
    (out / "trainset.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return out

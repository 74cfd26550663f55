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
  never used (they are the real test scans). Ground-glass and part-solid nodules (mean HU
  inside the mask below :data:`SUBSOLID_MEAN_HU`) are drawn more often than their share,
  because they are rare in LIDC (about 1 in 8) and the hardest for a model.
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

from lungspread.errors import InputError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

#: The real test scans: their nodules are never used for training.
TEST_PATIENTS = ("LIDC-IDRI-0001", "LIDC-IDRI-0002")

#: Mean HU inside a nodule's mask below which it counts as sub-solid (ground-glass or
#: part-solid) when drawing nodules.
SUBSOLID_MEAN_HU = -300.0


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


def crop_mean_hu(crop: NoduleCrop) -> float:
    img, mask = load_crop(crop)
    inside = img.array[mask.array > 0]
    return float(inside.mean()) if inside.size else float("nan")


def draw_crops(
    crops: list[NoduleCrop],
    n: int,
    rng: np.random.Generator,
    subsolid: set[str],
    subsolid_share: float = 0.35,
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


def _resample_to(vol: Volume, spacing_mm: tuple[float, float, float]) -> Volume:
    """``vol`` on an axis-aligned grid with ``spacing_mm`` covering the same box (trilinear)."""
    from lungspread.resample import resample_to_spacing

    out: Volume = resample_to_spacing(vol, spacing_mm)
    return out


def _lung_box(lungs: np.ndarray, spacing: tuple[float, ...], margin_mm: float) -> tuple[slice, ...]:
    nz = np.nonzero(lungs)
    box = []
    for axis in range(3):
        pad = int(np.ceil(margin_mm / spacing[axis]))
        lo, hi = int(nz[axis].min()), int(nz[axis].max()) + 1
        box.append(slice(max(0, lo - pad), min(lungs.shape[axis], hi + pad)))
    return tuple(box)


def write_msd_dataset(
    out: Path,
    cases: list[dict[str, Any]],
    name: str,
    description: str,
) -> None:
    """``dataset.json`` for the cases written by :func:`build_trainset`."""
    from lungspread.outputs import write_json

    meta = {
        "name": name,
        "description": description,
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "tumor"},
        "numTraining": len(cases),
        "training": cases,
    }
    write_json(out / "dataset.json", meta)


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
) -> Path:
    """Write ``n_cases`` phantom chests with pasted real nodules as an MSD folder ``out``.

    ``split`` ("train" or "val") picks the LIDC patients whose nodules are pasted (see
    :func:`split_patients`, seed 0) and offsets the phantom seeds (val phantoms are other
    patients than train phantoms for the same ``seed``). Case ``i`` uses phantom seed
    ``seed * 100_000 + (0 if train else 50_000) + i``, so every case is reproducible alone.
    """
    from lungspread.io import write_volume
    from lungspread.phantom import insert_nodule, make_phantom

    if split not in ("train", "val"):
        raise InputError(f"split must be 'train' or 'val', got {split!r}")
    out = Path(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    crops: list[NoduleCrop] = []
    subsolid: set[str] = set()
    if lidc_root is not None:
        crops = split_patients(lidc_crops(lidc_root))[split]
        subsolid = {c.case for c in crops if crop_mean_hu(c) < SUBSOLID_MEAN_HU}
        log.info("%d %s crops, %d sub-solid", len(crops), split, len(subsolid))
    entries: list[dict[str, Any]] = []
    base = seed * 100_000 + (0 if split == "train" else 50_000)
    for i in range(n_cases):
        case_seed = base + i
        rng = np.random.default_rng(case_seed)
        ph = make_phantom(case_seed, size=size)
        ct, tumor, lungs = ph.ct, ph.tumor, ph.lungs
        pasted: list[str] = []
        if crops:
            k = int(rng.integers(nodules_per_case[0], nodules_per_case[1] + 1))
            for crop in draw_crops(crops, k, rng, subsolid):
                img, mask = load_crop(crop)
                res = insert_nodule(ct, tumor, lungs, img, mask, rng)
                if res is not None:
                    ct, tumor = res[0], res[1]
                    pasted.append(crop.case)
        ct_r = _resample_to(ct.with_array(np.asarray(ct.array, np.float32)), spacing_mm)
        tumor_r = _resample_to(tumor.with_array(np.asarray(tumor.array, np.float32)), spacing_mm)
        lungs_r = _resample_to(
            lungs.with_array((np.asarray(lungs.array) > 0).astype(np.float32)), spacing_mm
        )
        box = _lung_box(lungs_r.array > 0.5, spacing_mm, margin_mm)
        cid = f"ls_{split}_{i:04d}"
        img_arr = np.round(ct_r.array[box]).astype(np.int16)
        lab_arr = (tumor_r.array[box] >= 0.5).astype(np.uint8)
        origin = ct_r.index_to_world([b.start for b in box])
        aff = ct_r.affine.copy()
        aff[:3, 3] = origin
        write_volume(Volume(img_arr, aff), out / "imagesTr" / f"{cid}.nii.gz")
        write_volume(Volume(lab_arr, aff.copy()), out / "labelsTr" / f"{cid}.nii.gz")
        entries.append(
            {
                "image": f"./imagesTr/{cid}.nii.gz",
                "label": f"./labelsTr/{cid}.nii.gz",
                "patient": f"phantom-{case_seed}",
                "lidc_nodules": pasted,
            }
        )
        if on_case is not None:
            on_case(i, cid)
    write_msd_dataset(
        out,
        entries,
        name=f"lungspread-bundled-{split}",
        description=(
            f"{n_cases} phantom chests (seed {seed}, {split}) with real LIDC-IDRI nodules "
            f"pasted into the lungs, at {spacing_mm} mm, cropped to the lungs + {margin_mm} mm"
        ),
    )
    (out / "trainset.json").write_text(
        json.dumps(
            {
                "n_cases": n_cases,
                "seed": seed,
                "split": split,
                "spacing_mm": list(spacing_mm),
                "nodules_per_case": list(nodules_per_case),
                "margin_mm": margin_mm,
                "size": size,
                "lidc_root": None if lidc_root is None else str(lidc_root),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return out

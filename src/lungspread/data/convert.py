"""Turn the real 2D Task06 derivatives in ``../shared/data`` into MSD folders of one-slice NIfTIs.

* :func:`slices_png_to_msd` - ``msd-lung-slices-2d`` (61 subjects, 1,930 axial PNG slices with
  masks). The PNGs are 8-bit and not HU, so the modality is declared ``"CT-8bit"`` (anything but
  ``"CT"`` means per-image z-score). No spacing is recorded: 1.5 mm in-plane is assumed
  (512-pixel scans of ~0.75 mm shown at 256), slice thickness 1.5 mm (unknown; it only scales
  volumes). Pixel ``[r, c]`` of the PNG becomes voxel ``[i=r, j=c, 0]`` (the PNGs show the NIfTI
  arrays as nibabel orders them). Masks: > 127 is tumor. Case ids are
  ``<subject>_s<slice:04d>`` (e.g. ``Subject_0_s0304``); each case's ``patient`` is the subject,
  and its ``source_split`` (``train``/``val``) is kept in ``dataset.json``.
* :func:`patches_h5_to_msd` - ``msd-lung-patches/val_patches.h5`` (130 patches, 48x48 at 2 mm,
  intensities windowed to [0, 1]). Converted to approximate HU, ``round(1100 * v - 1000)``
  (int16; v = 0 -> -1000 HU, v = 1 -> +100 HU, the README's window), so the modality is ``"CT"``
  and the CT normalization applies. Spacing 2 x 2 x 2 mm. The file does not say which patch
  came from which of the 13 patients, but the patches come in 13 runs of 10 from the same
  tumor: the tumor area varies 9x less within a run than across runs (within-run variance is
  11% of the total; 1,000 random groupings of the same sizes give 69% or more), so patches
  ``10g..10g+9`` get ``patient`` ``patch_group_<g>`` (an inference, recorded in dataset.json).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.volume import Volume

log = logging.getLogger(__name__)

SLICES_SPACING_MM = 1.5
SLICES_THICKNESS_MM = 1.5
PATCH_SPACING_MM = 2.0
PATCHES_PER_GROUP = 10
TASK06_LABELS = {"0": "background", "1": "cancer"}


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def slices_png_to_msd(
    src: str | Path,
    out: str | Path,
    spacing_mm: float = SLICES_SPACING_MM,
    slice_thickness_mm: float = SLICES_THICKNESS_MM,
) -> dict[str, Any]:
    """Convert ``msd-lung-slices-2d`` into the MSD folder ``out`` (which must be empty/new).

    Writes straight into ``out``; call through :func:`convert_to_folder` for a staged write.
    Returns a summary (cases, patients, slices with tumor).
    """
    from PIL import Image

    from lungspread.data.msd import MSDCase, write_case, write_dataset_json

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError("no such folder; expected msd-lung-slices-2d (train/, val/)", src)
    splits = [s for s in ("train", "val") if (src / s / "images").is_dir()]
    if not splits:
        raise InputError("expected train/images/<Subject>/<n>.png (and masks/) here", src)
    affine = np.diag([spacing_mm, spacing_mm, slice_thickness_mm, 1.0])
    cases: list[MSDCase] = []
    split_of: dict[str, str] = {}
    n_tumor = 0
    for split in splits:
        for subj_dir in sorted(
            (src / split / "images").iterdir(), key=lambda p: _natural_key(p.name)
        ):
            if not subj_dir.is_dir():
                continue
            for png in sorted(subj_dir.glob("*.png"), key=lambda p: _natural_key(p.name)):
                mask_png = src / split / "masks" / subj_dir.name / png.name
                if not mask_png.is_file():
                    raise InputError(f"no mask for this slice (expected {mask_png})", png)
                try:
                    img = np.asarray(Image.open(png).convert("L"), dtype=np.uint8)
                    msk = np.asarray(Image.open(mask_png).convert("L"), dtype=np.uint8)
                except OSError as exc:
                    raise InputError(f"not a readable PNG ({exc})", png) from exc
                if img.shape != msk.shape:
                    raise InputError(
                        f"mask shape {msk.shape} differs from image {img.shape}", mask_png
                    )
                stem = png.stem
                cid = (
                    f"{subj_dir.name}_s{int(stem):04d}"
                    if stem.isdigit()
                    else f"{subj_dir.name}_{stem}"
                )
                lab = (msk > 127).astype(np.uint8)
                n_tumor += int(lab.any())
                case = write_case(
                    out,
                    cid,
                    Volume(img[:, :, None], affine),
                    Volume(lab[:, :, None], affine),
                    patient=subj_dir.name,
                )
                cases.append(case)
                split_of[cid] = split
    if not cases:
        raise InputError("no PNG slices found", src)
    write_dataset_json(
        out,
        name="MSD-Task06-slices-2d",
        description=(
            "Axial slices of MSD Task06_Lung (CC-BY-SA 4.0) exported as 8-bit PNGs by a third "
            f"party, converted by lungspread; spacing assumed {spacing_mm} mm in-plane, "
            f"{slice_thickness_mm} mm thick; intensities are 8-bit, not HU"
        ),
        modality={"0": "CT-8bit"},
        labels=TASK06_LABELS,
        cases=cases,
        licence="CC-BY-SA 4.0",
        reference="Medical Segmentation Decathlon (Antonelli et al. 2022; Simpson et al. 2019)",
        source=str(src),
        assumed_spacing_mm=[spacing_mm, spacing_mm, slice_thickness_mm],
        source_split=split_of,
    )
    patients = sorted({c.patient or c.id for c in cases})
    return {"n_cases": len(cases), "n_patients": len(patients), "n_with_tumor": n_tumor}


def patches_h5_to_msd(
    src: str | Path,
    out: str | Path,
    spacing_mm: float = PATCH_SPACING_MM,
    patches_per_group: int = PATCHES_PER_GROUP,
) -> dict[str, Any]:
    """Convert ``val_patches.h5`` into the MSD folder ``out`` (approximate HU, modality CT)."""
    import h5py

    from lungspread.data.msd import MSDCase, write_case, write_dataset_json

    src, out = Path(src), Path(out)
    if not src.is_file():
        raise InputError("no such file; expected msd-lung-patches/val_patches.h5", src)
    try:
        with h5py.File(src, "r") as f:
            if "images" not in f or "labels" not in f:
                raise InputError(f"expected datasets 'images' and 'labels', found {sorted(f)}", src)
            images = np.asarray(f["images"][...], dtype=np.float32)
            labels = np.asarray(f["labels"][...])
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", src) from exc
    if images.ndim == 4 and images.shape[1] == 1:
        images, labels = images[:, 0], labels[:, 0]
    if images.ndim != 3 or labels.shape != images.shape:
        raise InputError(
            f"expected images and labels of shape (N, 1, H, W), found {images.shape} and "
            f"{labels.shape}",
            src,
        )
    if not np.all(np.isfinite(images)):
        raise InputError("images hold NaN or infinite values", src)
    uniq = np.unique(labels)
    if not set(uniq.tolist()) <= {0, 1}:
        raise InputError(f"labels hold values {uniq[:10].tolist()}, expected 0/1", src)
    hu = np.round(1100.0 * images - 1000.0).astype(np.int16)
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    n = images.shape[0]
    grouped = n % patches_per_group == 0
    if not grouped:
        log.warning(
            "%d patches is not a multiple of %d: each patch is its own group", n, patches_per_group
        )
    cases: list[MSDCase] = []
    for i in range(n):
        group = f"patch_group_{i // patches_per_group:02d}" if grouped else f"patch_{i:03d}"
        cases.append(
            write_case(
                out,
                f"patch_{i:03d}",
                Volume(hu[i][:, :, None], affine),
                Volume(labels[i].astype(np.uint8)[:, :, None], affine),
                patient=group,
            )
        )
    write_dataset_json(
        out,
        name="MSD-Task06-patches-2mm",
        description=(
            "130 axial 48x48 tumor patches at 2 mm from 13 MSD Task06_Lung patients (CC-BY-SA "
            "4.0, third-party derivative), converted by lungspread to approximate HU = "
            "1100 * v - 1000; patient groups inferred as runs of 10 consecutive patches"
        ),
        modality={"0": "CT"},
        labels=TASK06_LABELS,
        cases=cases,
        licence="CC-BY-SA 4.0",
        reference="Medical Segmentation Decathlon (Antonelli et al. 2022; Simpson et al. 2019)",
        source=str(src),
        intensity_conversion="HU = round(1100 * value - 1000)",
        patient_groups="inferred: runs of 10 consecutive patches share one tumor"
        if grouped
        else "none",
    )
    return {
        "n_cases": n,
        "n_patients": len({c.patient for c in cases}),
        "n_with_tumor": int(np.count_nonzero(labels.reshape(n, -1).any(axis=1))),
    }


CONVERTERS = {"msd-slices": slices_png_to_msd, "msd-patches": patches_h5_to_msd}


def convert_to_folder(
    kind: str, src: str | Path, out: str | Path, overwrite: bool = False
) -> dict[str, Any]:
    """Run a converter (``"msd-slices"`` or ``"msd-patches"``) into ``out``, staged, with
    ``run.json``; then open the result to check it. Returns the converter's summary."""
    from lungspread.data.msd import MSDDataset
    from lungspread.outputs import RunRecord, output_dir

    if kind not in CONVERTERS:
        raise InputError(f"unknown conversion {kind!r}; known: {', '.join(sorted(CONVERTERS))}")
    record = RunRecord(f"dataset convert {kind}", inputs={"source": str(src)}, options={})
    with output_dir(out, overwrite=overwrite) as stage:
        summary = CONVERTERS[kind](src, stage)
        record.stage("convert")
        MSDDataset.open(stage)
        record.write(stage, summary=summary)
    return summary

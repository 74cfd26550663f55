"""Cut the cases of an MSD folder to slabs (``lungspread dataset slabs``).

Real chest CTs do not always cover the whole chest: a follow-up limited to a nodule, a thin
DICOM excerpt, a scan stopped early. A model trained on whole chests meets the end of the
image there at levels where it never met it in training (across the hilum, through the
heart), and can fire on what it sees at that edge. This module makes test sets for that:
every case of a source folder cut along the body axis to a slab of ``slab_mm`` around one of
its tumors (drawn at random, the slab's centre moved up to a quarter of its depth off the
tumor's centre so that the tumor does not always sit in the middle); a case without tumor
gets a slab at a random level of its middle half. The image and label keep their voxels
and their position in space (the affine moves with the slab's first slice), so a model's
output on the slab can be compared with the whole case's.

The folder is written under a temporary name and renamed at the end, as ``merge`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lungspread.data.msd import (
    MSDCase,
    MSDDataset,
    check_same_grid_headers,
    file_ending,
    staged_dataset,
    write_dataset_json,
)
from lungspread.data.preprocess import crop_volume
from lungspread.errors import InputError
from lungspread.volume import Volume


def slab_range(
    label: np.ndarray, axis: int, spacing_mm: float, slab_mm: float, rng: np.random.Generator
) -> tuple[int, int]:
    """The slices ``[lo, hi)`` along ``axis`` of a slab of ``slab_mm`` (at least one slice;
    the whole axis when it is shorter), around a tumor of ``label`` drawn at random."""
    n = label.shape[axis]
    depth = min(n, max(1, round(slab_mm / spacing_mm)))
    components, count = ndimage.label(label > 0)
    if count:
        pick = int(rng.integers(1, count + 1))
        along = np.nonzero(components == pick)[axis]
        centre = 0.5 * (float(along.min()) + float(along.max()))
        centre += float(rng.uniform(-0.25, 0.25)) * depth
    else:
        centre = float(rng.uniform(0.25, 0.75)) * (n - 1)
    lo = round(centre - (depth - 1) / 2)
    lo = min(max(lo, 0), n - depth)
    return lo, lo + depth


def cut_slab(
    image: Volume, label: Volume, slab_mm: float, rng: np.random.Generator
) -> tuple[Volume, Volume, int, tuple[int, int]]:
    """``image`` and ``label`` (one grid) cut along the image's slice axis to a slab of
    ``slab_mm`` around one of the label's tumors (:func:`slab_range`); returns the two slabs,
    the axis and the slices ``(lo, hi)`` kept. The slabs keep their position in space."""
    axis = image.slice_axis()
    lo, hi = slab_range(label.array, axis, image.spacing[axis], slab_mm, rng)
    box = [[0, n] for n in image.shape]
    box[axis] = [lo, hi]
    return crop_volume(image, box), crop_volume(label, box), axis, (lo, hi)


def cut_slabs(src: str | Path, out: str | Path, slab_mm: float, seed: int = 0) -> MSDDataset:
    """Write the MSD folder ``out``: every labelled case of ``src`` cut to a slab of
    ``slab_mm`` (see the module); returns it, opened. ``out`` must not exist yet."""
    from lungspread.io import read_volume, write_volume

    out = Path(out)
    if not slab_mm > 0:
        raise InputError(f"the slab must be thicker than 0 mm, got {slab_mm}")
    if out.exists():
        raise InputError("the output folder exists already; choose a new one", out)
    source = MSDDataset.open(src)
    labelled = [c for c in source.cases if c.label is not None]
    if not labelled:
        raise InputError("no case with a label to cut a slab around", source.root)
    rng = np.random.default_rng(seed)
    cases: list[MSDCase] = []
    fields: list[dict[str, Any]] = []
    with staged_dataset(out) as tmp:
        for case in labelled:
            assert case.label is not None
            check_same_grid_headers(case.image, case.label)
            image, label, axis, (lo, hi) = cut_slab(
                read_volume(case.image), read_volume(case.label), slab_mm, rng
            )
            img_path = tmp / "imagesTr" / f"{case.id}{file_ending(case.image)}"
            lab_path = tmp / "labelsTr" / f"{case.id}{file_ending(case.label)}"
            write_volume(image, img_path)
            write_volume(label, lab_path)
            cases.append(MSDCase(case.id, img_path, lab_path, case.patient))
            fields.append({"slab_slices": [lo, hi], "slab_axis": axis})
        write_dataset_json(
            tmp,
            name=f"{source.name}-slabs",
            modality=source.modality,
            labels=source.labels,
            cases=cases,
            description=f"{source.name} cut to {slab_mm:g} mm slabs around a tumor (seed {seed})",
            entry_fields=fields,
            tensorImageSize=source.json_data.get("tensorImageSize", "3D"),
            slabs_of=str(source.root.resolve()),
            slab_mm=slab_mm,
        )
    return MSDDataset.open(out)

"""Combine several MSD folders into one (``lungspread dataset merge``).

Every case of every source goes into ``OUT/imagesTr`` and ``OUT/labelsTr`` with its id
prefixed by its source folder's name (``trainset_ggo_ls_train_0000``), so that ids from two
sources never collide; its ``dataset.json`` entry keeps every other field (``patient`` and
provenance). The sources must declare the same modality and labels. Files are hard-linked
where the file system allows it (no extra disk) and copied otherwise. The folder is written
under a temporary name and renamed at the end: an interrupted merge leaves no half-written
dataset behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lungspread.data.msd import (
    DATASET_JSON,
    MSDCase,
    MSDDataset,
    file_ending,
    staged_dataset,
    write_dataset_json,
)
from lungspread.errors import InputError


def _place(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copy2(src, dst)


def merge_datasets(
    out: str | Path, sources: list[str | Path], name: str | None = None, link: bool = True
) -> MSDDataset:
    """Write the MSD folder ``out`` holding every case of ``sources``; returns it, opened.

    ``out`` must not exist yet. ``name`` is the new dataset's name (default: the first
    source's). Raises :class:`~lungspread.errors.InputError` for fewer than two sources, two
    sources with one folder name, or sources whose modality or labels differ.
    """
    out = Path(out)
    if len(sources) < 2:
        raise InputError(f"expected at least two source folders to merge, got {len(sources)}")
    if out.exists():
        raise InputError("the output folder exists already; choose a new one", out)
    datasets = [MSDDataset.open(s) for s in sources]
    names = [d.root.resolve().name for d in datasets]
    if len(set(names)) != len(names):
        raise InputError(
            "two source folders share a name, so their case ids would collide: "
            + ", ".join(str(d.root) for d in datasets)
        )
    first = datasets[0]
    for d in datasets[1:]:
        for what, mine, theirs in (
            ("modality", d.modality, first.modality),
            ("labels", d.labels, first.labels),
        ):
            if mine != theirs:
                raise InputError(
                    f"{what} {mine} differs from {theirs} in {first.root / DATASET_JSON}",
                    d.root / DATASET_JSON,
                )
    cases: list[MSDCase] = []
    fields: list[dict[str, Any]] = []
    with staged_dataset(out) as tmp:
        for d, prefix in zip(datasets, names, strict=True):
            raw = d.json_data.get("training")
            extras = raw if isinstance(raw, list) and len(raw) == len(d.cases) else None
            for n, case in enumerate(d.cases):
                new_id = f"{prefix}_{case.id}"
                image = tmp / "imagesTr" / f"{new_id}{file_ending(case.image)}"
                _place(case.image, image, link)
                label = None
                if case.label is not None:
                    label = tmp / "labelsTr" / f"{new_id}{file_ending(case.label)}"
                    _place(case.label, label, link)
                cases.append(MSDCase(new_id, image, label, case.patient))
                fields.append(dict(extras[n]) if extras is not None else {})
        write_dataset_json(
            tmp,
            name=name or first.name,
            modality=first.modality,
            labels=first.labels,
            cases=cases,
            description="merged from "
            + "; ".join(
                f"{n}: {d.description or d.name}" for n, d in zip(names, datasets, strict=True)
            ),
            entry_fields=fields,
            tensorImageSize=first.json_data.get("tensorImageSize", "3D"),
            merged_from=[str(d.root.resolve()) for d in datasets],
        )
    return MSDDataset.open(out)

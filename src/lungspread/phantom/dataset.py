"""A folder of phantoms in the Medical Segmentation Decathlon layout (like Task06_Lung).

::

    OUT/
      dataset.json            name, modality {"0": "CT"}, labels, numTraining, training[...]
      imagesTr/phantom_000.nii.gz   int16 HU
      labelsTr/phantom_000.nii.gz   uint8 tumor 0/1
      lungsTr/phantom_000.nii.gz    uint8 lungs 0/1 right/2 left
      metaTr/phantom_000.json       lesions and generation parameters of the case
      run.json

Case ``n`` is ``make_phantom(seed + n, ...)``, so any case can be regenerated on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lungspread.errors import InputError
from lungspread.outputs import RunRecord, output_dir, write_json

log = logging.getLogger(__name__)


def write_phantom_dataset(
    out: str | Path,
    cases: int,
    seed: int,
    size: str | tuple[int, int, int] = "small",
    overwrite: bool = False,
    tumors: int | None = None,
    mimics: int = 0,
    on_case: Callable[[int, dict[str, Any]], None] | None = None,
) -> Path:
    """Write ``cases`` phantoms (seeds ``seed``, ``seed + 1``, ...) as an MSD dataset in ``out``.

    Refuses a non-empty ``out`` unless ``overwrite``; writes everything or nothing (the files
    are staged and moved into place at the end). ``on_case(n, summary)`` is called after each
    case (for progress display). ``mimics``: non-tumor opacities per case (see
    :func:`~lungspread.phantom.make_phantom`). Returns ``out``.
    """
    from lungspread.io import write_volume
    from lungspread.phantom.make import make_phantom

    if isinstance(cases, bool) or not isinstance(cases, int) or cases < 1:
        raise InputError(f"cases must be a positive integer, got {cases!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    record = RunRecord(
        "phantom",
        inputs={},
        options={"cases": cases, "seed": seed, "size": size, "tumors": tumors, "mimics": mimics},
    )
    training: list[dict[str, str]] = []
    with output_dir(out, overwrite) as stage:
        for sub in ("imagesTr", "labelsTr", "lungsTr", "metaTr"):
            (stage / sub).mkdir()
        cases_info = []
        for n in range(cases):
            name = f"phantom_{n:03d}"
            ph = make_phantom(seed + n, size=size, tumors=tumors, mimics=mimics)
            write_volume(ph.ct, stage / "imagesTr" / f"{name}.nii.gz")
            write_volume(ph.tumor, stage / "labelsTr" / f"{name}.nii.gz")
            write_volume(ph.lungs, stage / "lungsTr" / f"{name}.nii.gz")
            vox_ml = ph.ct.voxel_volume_mm3 / 1000.0
            lungs = ph.lungs.array
            summary = {
                "case": name,
                "seed": seed + n,
                "lesions": ph.lesions,
                "lung_volumes_ml": {
                    "right_ml": float((lungs == 1).sum() * vox_ml),
                    "left_ml": float((lungs == 2).sum() * vox_ml),
                },
                "tumor_volume_ml": float(ph.tumor.array.sum(dtype="int64") * vox_ml),
                "meta": ph.meta,
            }
            write_json(stage / "metaTr" / f"{name}.json", summary)
            training.append(
                {
                    "image": f"./imagesTr/{name}.nii.gz",
                    "label": f"./labelsTr/{name}.nii.gz",
                    "lungs": f"./lungsTr/{name}.nii.gz",
                }
            )
            cases_info.append({"case": name, "lesions": len(ph.lesions)})
            record.stage(name)
            if on_case is not None:
                on_case(n, summary)
        dataset = {
            "name": "lungspread-phantoms",
            "description": "Synthetic chest CT phantoms with exact tumor and lung masks "
            f"(lungspread.phantom, seeds {seed}..{seed + cases - 1}, size {size!r})",
            "reference": "lungspread",
            "licence": "CC0 (synthetic)",
            "tensorImageSize": "3D",
            "modality": {"0": "CT"},
            "labels": {"0": "background", "1": "tumor"},
            "lung_labels": {"0": "background", "1": "right lung", "2": "left lung"},
            "numTraining": cases,
            "numTest": 0,
            "training": training,
            "test": [],
        }
        write_json(stage / "dataset.json", dataset)
        record.write(stage, outputs={"cases": cases_info})
    return out

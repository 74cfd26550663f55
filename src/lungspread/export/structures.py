"""The structures every export shows: right lung, left lung and each lesion, named and coloured.

All writers (3D Slicer segmentation, meshes, DICOM-SEG, figures, HTML) take the same list of
:class:`Structure` so that a lesion has the same name, id and colour everywhere.

Lesions are the connected components of the tumor mask (26-connectivity, largest first, as in
:mod:`lungspread.spread`). When a report is given, each component takes the id and the
measures of the report lesion whose centroid is nearest to its own; otherwise lesions are
numbered ``L1``, ``L2``, ... by decreasing volume.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from lungspread.errors import GeometryError, InputError
from lungspread.volume import LPS_TO_RAS, Volume

RGB = tuple[float, float, float]

#: Colours (RGB in 0..1) used in every output.
RIGHT_LUNG_COLOR: RGB = (0.447, 0.667, 0.878)
LEFT_LUNG_COLOR: RGB = (0.525, 0.796, 0.561)
#: Lesion colours, in order L1, L2, ...; saturated and distinct from the lung colours.
LESION_COLORS: tuple[RGB, ...] = (
    (0.902, 0.125, 0.125),  # red
    (1.000, 0.549, 0.000),  # orange
    (0.871, 0.176, 0.773),  # magenta
    (0.961, 0.855, 0.118),  # yellow
    (0.569, 0.267, 0.902),  # violet
    (0.647, 0.333, 0.102),  # brown
    (1.000, 0.412, 0.620),  # pink
    (0.800, 0.600, 0.200),  # ochre
)

#: 3D Slicer terminology entries (``Segment{N}_Tags`` -> ``TerminologyEntry``), SNOMED CT codes.
SLICER_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
SCT_ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")
SCT_ALTERED_STRUCTURE = ("SCT", "49755003", "Morphologically Altered Structure")
SCT_LUNG = ("SCT", "39607008", "Lung")
SCT_NEOPLASM = ("SCT", "108369006", "Neoplasm")
SCT_RIGHT = ("SCT", "24028007", "Right")
SCT_LEFT = ("SCT", "7771000", "Left")

_CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True, eq=False)
class Structure:
    """One segment: a lung or a lesion, with its voxels (cropped), name and colour.

    ``crop`` is the boolean mask inside ``bbox`` (a tuple of slices into the full grid).
    """

    key: str
    name: str
    kind: str  # "lung" or "lesion"
    color: RGB
    bbox: tuple[slice, slice, slice]
    crop: np.ndarray
    voxel_count: int
    volume_ml: float
    side: str | None = None
    lesion_id: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def full_mask(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The structure as a boolean mask on the full grid."""
        out = np.zeros(shape, dtype=bool)
        out[self.bbox] = self.crop
        return out

    @property
    def color_hex(self) -> str:
        return "#" + "".join(f"{round(c * 255):02x}" for c in self.color)

    @property
    def file_stem(self) -> str:
        """A safe file name stem: ``right_lung``, ``lesion_L1``."""
        return safe_name(self.key)

    def terminology(self) -> dict[str, list[str] | str]:
        """3D Slicer terminology entry (as slicerio represents it)."""
        side_code = SCT_RIGHT if self.side == "right" else SCT_LEFT if self.side == "left" else None
        if self.kind == "lung":
            term: dict[str, list[str] | str] = {
                "contextName": SLICER_CONTEXT,
                "category": list(SCT_ANATOMICAL_STRUCTURE),
                "type": list(SCT_LUNG),
            }
            if side_code is not None:
                term["typeModifier"] = list(side_code)
            return term
        term = {
            "contextName": SLICER_CONTEXT,
            "category": list(SCT_ALTERED_STRUCTURE),
            "type": list(SCT_NEOPLASM),
            "anatomicContextName": ANATOMIC_CONTEXT,
            "anatomicRegion": list(SCT_LUNG),
        }
        if side_code is not None:
            term["anatomicRegionModifier"] = list(side_code)
        return term


def safe_name(text: str) -> str:
    """Letters, digits, ``_`` and ``-`` only (for file names built from lesion ids)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return cleaned or "unnamed"


def lesion_label(lesion_id: Any) -> str:
    """Display id of a lesion: ``1`` -> ``L1``; strings are kept."""
    if isinstance(lesion_id, (int, np.integer)) and not isinstance(lesion_id, bool):
        return f"L{int(lesion_id)}"
    text = str(lesion_id).strip()
    return text if text else "L?"


def format_ml(volume_ml: float) -> str:
    """``7.8 mL``; small volumes keep two significant decimals (``0.05 mL``)."""
    if not math.isfinite(volume_ml):
        return "n/a"
    if volume_ml >= 100:
        return f"{volume_ml:.0f} mL"
    if volume_ml >= 0.1:
        return f"{volume_ml:.1f} mL"
    return f"{volume_ml:.2f} mL"


def lesion_color(index: int) -> RGB:
    return LESION_COLORS[index % len(LESION_COLORS)]


def _bbox(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    idx = np.nonzero(mask)
    if idx[0].size == 0:
        return None
    lo = [int(a.min()) for a in idx]
    hi = [int(a.max()) + 1 for a in idx]
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def _report_centroid_ras(lesion: dict[str, Any]) -> np.ndarray | None:
    c = lesion.get("centroid_mm")
    if c is None:
        return None
    try:
        xyz = np.asarray(c, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(xyz)):
        return None
    system = str(lesion.get("coordinate_system", "RAS")).upper()
    if system == "LPS":
        xyz = (LPS_TO_RAS[:3, :3] @ xyz).astype(np.float64)
    return xyz


def _check_grid(ref: Volume, other: Volume, what: str) -> None:
    if not ref.same_grid(other, atol_mm=1e-2):
        raise GeometryError(
            f"the {what} mask must be on the CT's grid: CT {ref.shape} with affine "
            f"{np.array2string(ref.affine[:3].ravel(), precision=3)}, {what} {other.shape} with "
            f"affine {np.array2string(other.affine[:3].ravel(), precision=3)}",
            other.meta.get("source"),
        )


def build_structures(
    ct: Volume,
    tumor: Volume,
    lungs: Volume | None = None,
    report: dict[str, Any] | None = None,
) -> list[Structure]:
    """Right lung, left lung (when ``lungs`` is given, labels 1 right / 2 left) and each lesion.

    ``tumor`` is a 0/1 (or any nonzero) mask on the CT grid. Raises :class:`GeometryError` when a
    mask is on another grid and :class:`InputError` when the lung mask has unknown labels.
    """
    _check_grid(ct, tumor, "tumor")
    structures: list[Structure] = []
    voxel_ml = ct.voxel_volume_mm3 / 1000.0
    if lungs is not None:
        _check_grid(ct, lungs, "lung")
        lung_arr = np.asarray(lungs.array)
        values = np.unique(lung_arr)
        unknown = [v for v in values.tolist() if v not in (0, 1, 2)]
        if unknown:
            raise InputError(
                f"lung mask labels must be 0, 1 (right) and 2 (left), found {unknown[:5]}",
                lungs.meta.get("source"),
            )
        for label, key, name, side, color in (
            (1, "right_lung", "Right lung", "right", RIGHT_LUNG_COLOR),
            (2, "left_lung", "Left lung", "left", LEFT_LUNG_COLOR),
        ):
            mask = lung_arr == label
            box = _bbox(mask)
            if box is None:
                continue
            count = int(mask[box].sum())
            structures.append(
                Structure(
                    key=key,
                    name=name,
                    kind="lung",
                    color=color,
                    bbox=box,
                    crop=mask[box].copy(),
                    voxel_count=count,
                    volume_ml=count * voxel_ml,
                    side=side,
                )
            )
    structures.extend(_lesions(ct, np.asarray(tumor.array) > 0, report))
    return structures


def _lesions(ct: Volume, tumor: np.ndarray, report: dict[str, Any] | None) -> list[Structure]:
    outer = _bbox(tumor)
    if outer is None:
        return []
    labels, n = ndimage.label(tumor[outer], structure=_CONNECTIVITY_26)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    # boxes in the full grid; ``labels`` is indexed relative to ``outer``
    local_boxes = ndimage.find_objects(labels)
    shift = [s.start for s in outer]
    order = sorted(range(n), key=lambda i: (-int(counts[i]), i))
    voxel_ml = ct.voxel_volume_mm3 / 1000.0
    centroids = []
    for i in order:
        box = local_boxes[i]
        assert box is not None
        idx = np.argwhere(labels[box] == i + 1) + [s.start for s in box] + shift
        centroids.append(ct.index_to_world(idx.mean(axis=0)))
    report_lesions = _report_lesions(report)
    assigned = _match(centroids, report_lesions)
    out: list[Structure] = []
    for rank, i in enumerate(order):
        box = local_boxes[i]
        assert box is not None
        crop = labels[box] == i + 1
        full_box = tuple(slice(b.start + o, b.stop + o) for b, o in zip(box, shift, strict=True))
        match = assigned[rank]
        entry = report_lesions[match] if match is not None else {}
        lid = lesion_label(entry["id"]) if "id" in entry else f"L{rank + 1}"
        volume_ml = int(counts[i]) * voxel_ml
        side = entry.get("side") if isinstance(entry.get("side"), str) else None
        out.append(
            Structure(
                key=f"lesion_{lid}",
                name=f"{lid} tumor {format_ml(volume_ml)}",
                kind="lesion",
                color=lesion_color(rank),
                bbox=(full_box[0], full_box[1], full_box[2]),
                crop=crop,
                voxel_count=int(counts[i]),
                volume_ml=volume_ml,
                side=side if side in ("right", "left") else None,
                lesion_id=lid,
                report=dict(entry),
            )
        )
    return out


def _report_lesions(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not report:
        return []
    lesions = report.get("lesions")
    if not isinstance(lesions, Sequence) or isinstance(lesions, (str, bytes)):
        return []
    return [dict(x) for x in lesions if isinstance(x, dict)]


def _match_tolerance_mm(lesion: dict[str, Any]) -> float:
    """A report lesion matches a component whose centroid lies within this distance."""
    diameter = lesion.get("max_diameter_mm")
    if isinstance(diameter, (int, float)) and math.isfinite(diameter):
        return max(10.0, 0.5 * float(diameter))
    return 10.0


def _match(centroids: list[np.ndarray], lesions: list[dict[str, Any]]) -> list[int | None]:
    """Greedy nearest-centroid matching of components (largest first) to report lesions."""
    result: list[int | None] = [None] * len(centroids)
    if not lesions:
        return result
    report_c = [_report_centroid_ras(x) for x in lesions]
    if any(c is None for c in report_c):
        # No usable centroids: both lists are largest-first, match by rank.
        for k in range(min(len(centroids), len(lesions))):
            result[k] = k
        return result
    pairs = sorted(
        (float(np.linalg.norm(c - rc)), ci, ri)
        for ci, c in enumerate(centroids)
        for ri, rc in enumerate(report_c)
    )
    used_c: set[int] = set()
    used_r: set[int] = set()
    for dist, ci, ri in pairs:
        if ci in used_c or ri in used_r or dist > _match_tolerance_mm(lesions[ri]):
            continue
        result[ci] = ri
        used_c.add(ci)
        used_r.add(ri)
    return result

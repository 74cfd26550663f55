"""Follow-up: match the lesions of two spread reports of one patient and grade the response.

Alignment. The two scans are put in one frame on the lungs: a follow-up point ``x`` maps to
``c_b + S (x - c_f)``, where ``c_b`` and ``c_f`` are the centroids of both lungs together in
the baseline and follow-up scans (RAS mm) and ``S`` is a diagonal scaling, per RAS axis, by
the ratio of the lungs' bounding-box extents (baseline / follow-up), clamped to 0.75-1.33.
This undoes a different table position and most of a different breath hold; it does not
undo rotation or local deformation. Without lung geometry in both reports (and no lung maps
given) the scans are compared in their own RAS coordinates, with a note.

Matching. Lesion centroids are compared after alignment; a baseline and a follow-up lesion
may match when their centroids are at most ``gate_margin_mm`` (default 10 mm) plus half the
sum of their longest diameters apart (their spheres would touch, with 10 mm to spare), or,
when both tumor masks are given, when the aligned follow-up lesion overlaps the baseline
lesion. The pairing that minimises the total centroid distance (Hungarian algorithm) wins.
Unmatched follow-up lesions are *new*, unmatched baseline lesions *disappeared*.

Response. RECIST 1.1 on the baseline report's target lesions, see :mod:`.recist`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.spread import recist
from lungspread.spread.involvement import mask_bbox_mm, mask_centroid_mm
from lungspread.spread.lesions import Lesion, find_lesions, tumor_array
from lungspread.volume import Volume

REPORT_TYPE = "lungspread.follow_up"
REPORT_VERSION = 1
SCALE_LIMITS = (0.75, 4.0 / 3.0)
GATE_MARGIN_MM = 10.0


def load_report(src: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A spread report from a dict, a ``report.json`` path, or a folder holding one."""
    if isinstance(src, dict):
        report = src
        where: Path | None = None
    else:
        where = Path(src)
        if where.is_dir():
            where = where / "report.json"
        if not where.is_file():
            raise InputError("no spread report here (expected report.json)", where)
        try:
            report = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"report.json is not readable JSON ({exc})", where) from exc
    if not isinstance(report, dict) or not isinstance(report.get("lesions"), list):
        raise InputError("not a spread report: expected a JSON object with a 'lesions' list", where)
    for les in report["lesions"]:
        if not isinstance(les, dict) or "id" not in les or "centroid_mm" not in les:
            raise InputError("spread report lesions need 'id' and 'centroid_mm'", where)
    return report


@dataclass(frozen=True)
class LungGeometry:
    """Centroid and bounding box (RAS mm) of both lungs together."""

    centroid_mm: np.ndarray
    bbox_min_mm: np.ndarray
    bbox_max_mm: np.ndarray

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> LungGeometry | None:
        lungs = report.get("lungs") or {}
        vals = [lungs.get(k) for k in ("centroid_mm", "bbox_min_mm", "bbox_max_mm")]
        if any(v is None or len(v) != 3 or any(x is None for x in v) for v in vals):
            return None
        arrs = [np.asarray(v, dtype=np.float64) for v in vals]
        return cls(arrs[0], arrs[1], arrs[2])

    @classmethod
    def from_volume(cls, lungs: Volume) -> LungGeometry | None:
        mask = np.asarray(lungs.array) > 0
        if not mask.any():
            return None
        lo, hi = mask_bbox_mm(mask, lungs.affine)
        return cls(mask_centroid_mm(mask, lungs.affine), lo, hi)


@dataclass(frozen=True)
class Alignment:
    """Follow-up RAS -> baseline RAS: ``c_b + scale * (x - c_f)``."""

    baseline_centre_mm: np.ndarray
    followup_centre_mm: np.ndarray
    scale: np.ndarray
    method: str

    def apply(self, pts: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.baseline_centre_mm + self.scale * (
            np.asarray(pts, dtype=np.float64) - self.followup_centre_mm
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "baseline_lung_centroid_mm": [round(float(v), 3) for v in self.baseline_centre_mm],
            "followup_lung_centroid_mm": [round(float(v), 3) for v in self.followup_centre_mm],
            "translation_mm": [
                round(float(v), 3) for v in self.baseline_centre_mm - self.followup_centre_mm
            ],
            "scale": [round(float(v), 5) for v in self.scale],
        }


def align_on_lungs(
    base: LungGeometry | None, fu: LungGeometry | None, notes: list[str]
) -> Alignment:
    """The lung-based alignment (identity when either side has no lung geometry)."""
    if base is None or fu is None:
        notes.append(
            "scans not aligned (lung geometry missing in "
            + ("both reports" if base is None and fu is None else "one report")
            + "): lesions were compared in their own RAS coordinates"
        )
        zero = np.zeros(3)
        return Alignment(zero, zero, np.ones(3), "none (RAS coordinates as stored)")
    ext_b = base.bbox_max_mm - base.bbox_min_mm
    ext_f = fu.bbox_max_mm - fu.bbox_min_mm
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(ext_f > 0, ext_b / ext_f, 1.0)
    scale = np.clip(raw, *SCALE_LIMITS)
    if not np.allclose(scale, raw):
        notes.append(
            f"lung extents differ a lot between the scans (ratios {np.round(raw, 3).tolist()}); "
            f"scaling clamped to {SCALE_LIMITS[0]:.2f}-{SCALE_LIMITS[1]:.2f}"
        )
    return Alignment(
        base.centroid_mm,
        fu.centroid_mm,
        scale,
        "lung centroid translation + per-axis scaling by lung bounding-box extents",
    )


def _overlap_matrix(
    base_lesions: list[Lesion],
    base_affine: np.ndarray,
    base_shape: tuple[int, int, int],
    fu_lesions: list[Lesion],
    fu_affine: np.ndarray,
    alignment: Alignment,
    max_points: int = 4000,
) -> np.ndarray:
    """Share of each follow-up lesion's voxels (sampled) that land in each baseline lesion."""
    out = np.zeros((len(base_lesions), len(fu_lesions)))
    inv = np.linalg.inv(base_affine)
    for j, fl in enumerate(fu_lesions):
        idx = fl.indices()
        if len(idx) > max_points:
            idx = idx[:: math.ceil(len(idx) / max_points)]
        world = alignment.apply(idx @ fu_affine[:3, :3].T + fu_affine[:3, 3])
        bidx = np.rint(world @ inv[:3, :3].T + inv[:3, 3]).astype(np.int64)
        for i, bl in enumerate(base_lesions):
            lo, hi = bl.offset, bl.offset + np.array(bl.mask.shape)
            sel = np.all((bidx >= lo) & (bidx < hi), axis=1)
            if not sel.any():
                continue
            loc = bidx[sel] - lo
            out[i, j] = float(np.count_nonzero(bl.mask[loc[:, 0], loc[:, 1], loc[:, 2]])) / len(idx)
    del base_shape
    return out


def _lesions_of(tumor: Volume, report: dict[str, Any]) -> list[Lesion] | None:
    """The report's lesions recomputed from its mask; None when they do not agree."""
    bool_mask, _ = tumor_array(tumor)
    conn = int(report.get("settings", {}).get("connectivity", 26))
    lesions = find_lesions(bool_mask, conn)
    counts = [les.get("voxel_count") for les in report["lesions"]]
    if len(lesions) != len(counts) or any(
        c is not None and c != les.voxel_count for c, les in zip(counts, lesions, strict=True)
    ):
        return None
    return lesions


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return round(100.0 * (new - old) / old, 2)


def _diff(new: float | None, old: float | None) -> float | None:
    if new is None or old is None:
        return None
    return round(new - old, 3)


def follow_up(
    baseline: dict[str, Any] | str | Path,
    followup: dict[str, Any] | str | Path,
    baseline_tumor: Volume | None = None,
    followup_tumor: Volume | None = None,
    baseline_lungs: Volume | None = None,
    followup_lungs: Volume | None = None,
    *,
    gate_margin_mm: float = GATE_MARGIN_MM,
) -> dict[str, Any]:
    """Compare two spread reports of one patient: matched lesions, changes, RECIST 1.1 response.

    ``baseline`` and ``followup`` are report dicts, ``report.json`` paths or output folders.
    Lung maps, when given, replace the reports' lung geometry for the alignment; tumor masks,
    when given for both scans (the masks the reports were made from), let overlapping lesions
    match even when their centroids moved far. Returns the content of ``followup.json``.
    """
    from scipy.optimize import linear_sum_assignment

    notes: list[str] = []
    null_reasons: dict[str, str] = {}
    base = load_report(baseline)
    fu = load_report(followup)
    geo_b = (
        LungGeometry.from_volume(baseline_lungs)
        if baseline_lungs is not None
        else LungGeometry.from_report(base)
    )
    geo_f = (
        LungGeometry.from_volume(followup_lungs)
        if followup_lungs is not None
        else LungGeometry.from_report(fu)
    )
    alignment = align_on_lungs(geo_b, geo_f, notes)
    bl, fl = base["lesions"], fu["lesions"]
    cb = np.array([les["centroid_mm"] for les in bl], dtype=np.float64).reshape(-1, 3)
    cf = alignment.apply(
        np.array([les["centroid_mm"] for les in fl], dtype=np.float64).reshape(-1, 3)
    )
    dist = (
        np.linalg.norm(cb[:, None, :] - cf[None, :, :], axis=2)
        if len(bl) and len(fl)
        else np.zeros((len(bl), len(fl)))
    )
    db = np.array([float(les.get("max_diameter_mm") or 0.0) for les in bl])
    df = np.array([float(les.get("max_diameter_mm") or 0.0) for les in fl])
    gate = gate_margin_mm + 0.5 * (db[:, None] + df[None, :])
    allowed = dist <= gate
    overlap = np.zeros_like(dist)
    masks_used = False
    if baseline_tumor is not None and followup_tumor is not None and len(bl) and len(fl):
        les_b = _lesions_of(baseline_tumor, base)
        les_f = _lesions_of(followup_tumor, fu)
        if les_b is None or les_f is None:
            notes.append(
                "a tumor mask does not give the lesions of its report (different voxel counts); "
                "masks were not used for matching"
            )
        else:
            overlap = _overlap_matrix(
                les_b,
                baseline_tumor.affine,
                baseline_tumor.shape,
                les_f,
                followup_tumor.affine,
                alignment,
            )
            allowed |= overlap > 0
            masks_used = True
    elif baseline_tumor is not None or followup_tumor is not None:
        notes.append("only one tumor mask given; matching used centroids only")
    pairs: list[tuple[int, int]] = []
    if len(bl) and len(fl):
        big = 1e9
        cost = np.where(allowed, dist, big)
        rows, cols = linear_sum_assignment(cost)
        pairs = [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if allowed[i, j]]
    matched_b = {i for i, _ in pairs}
    matched_f = {j for _, j in pairs}

    matches = []
    for i, j in sorted(pairs):
        b, f = bl[i], fl[j]
        matches.append(
            {
                "baseline_id": b["id"],
                "followup_id": f["id"],
                "distance_after_alignment_mm": round(float(dist[i, j]), 2),
                "overlap_fraction": round(float(overlap[i, j]), 4),
                "baseline_volume_ml": b.get("volume_ml"),
                "followup_volume_ml": f.get("volume_ml"),
                "volume_change_pct": _pct(f.get("volume_ml"), b.get("volume_ml")),
                "baseline_recist_diameter_mm": b.get("recist_diameter_mm"),
                "followup_recist_diameter_mm": f.get("recist_diameter_mm"),
                "recist_diameter_change_mm": _diff(
                    f.get("recist_diameter_mm"), b.get("recist_diameter_mm")
                ),
                "short_axis_change_mm": _diff(f.get("short_axis_mm"), b.get("short_axis_mm")),
                "max_diameter_change_mm": _diff(f.get("max_diameter_mm"), b.get("max_diameter_mm")),
                "baseline_side": b.get("side"),
                "followup_side": f.get("side"),
            }
        )
    new = [
        {
            "id": fl[j]["id"],
            "volume_ml": fl[j].get("volume_ml"),
            "recist_diameter_mm": fl[j].get("recist_diameter_mm"),
            "side": fl[j].get("side"),
            "centroid_mm": fl[j]["centroid_mm"],
        }
        for j in range(len(fl))
        if j not in matched_f
    ]
    gone = [
        {
            "id": bl[i]["id"],
            "volume_ml": bl[i].get("volume_ml"),
            "recist_diameter_mm": bl[i].get("recist_diameter_mm"),
            "side": bl[i].get("side"),
        }
        for i in range(len(bl))
        if i not in matched_b
    ]

    # RECIST 1.1 on the baseline targets.
    base_totals = base.get("totals") or {}
    if "recist_targets" in base_totals:
        targets = base_totals["recist_targets"]
    else:
        spacing = (base.get("image") or {}).get("spacing_mm") or [0, 0, 0]
        axis = (base.get("image") or {}).get("slice_axis", 2)
        targets = recist.select_targets(bl, float(spacing[axis]))["recist_targets"]
        notes.append("baseline report lists no RECIST targets; they were chosen here")
    fu_of = {bl[i]["id"]: fl[j] for i, j in pairs}
    target_rows = []
    for t in targets:
        f = fu_of.get(t["id"])
        d_f = float(f.get("recist_diameter_mm") or 0.0) if f is not None else 0.0
        target_rows.append(
            {
                "baseline_id": t["id"],
                "followup_id": None if f is None else f["id"],
                "baseline_diameter_mm": t["recist_diameter_mm"],
                "followup_diameter_mm": round(d_f, 2),
            }
        )
    sum_b = float(sum(float(t["recist_diameter_mm"]) for t in targets))
    sum_f = float(sum(r["followup_diameter_mm"] for r in target_rows))
    target_ids = {t["id"] for t in targets}
    t_resp = recist.target_response(sum_b, sum_f, len(targets))
    others_remaining = sum(1 for i, _ in pairs if bl[i]["id"] not in target_ids)
    overall, rule = recist.overall_response(t_resp, len(new), others_remaining, len(bl))
    change_pct = _pct(sum_f, sum_b)
    if change_pct is None:
        null_reasons["recist.sum_change_pct"] = "no target lesions at baseline"

    vb = (base.get("totals") or {}).get("tumor_volume_ml")
    vf = (fu.get("totals") or {}).get("tumor_volume_ml")
    return {
        "report_type": REPORT_TYPE,
        "report_version": REPORT_VERSION,
        "coordinate_system": "RAS (baseline scan)",
        "units": {"volume": "mL", "length": "mm", "change": "percent"},
        "alignment": alignment.to_json(),
        "matching": {
            "gate": f"centroid distance <= {gate_margin_mm:g} mm + half the sum of the two "
            "longest diameters, or overlapping masks",
            "gate_margin_mm": gate_margin_mm,
            "masks_used": masks_used,
        },
        "matches": matches,
        "new_lesions": new,
        "disappeared_lesions": gone,
        "totals": {
            "baseline_lesion_count": len(bl),
            "followup_lesion_count": len(fl),
            "baseline_tumor_volume_ml": vb,
            "followup_tumor_volume_ml": vf,
            "tumor_volume_change_pct": _pct(vf, vb),
        },
        "recist": {
            "targets": target_rows,
            "baseline_sum_mm": round(sum_b, 2),
            "followup_sum_mm": round(sum_f, 2),
            "sum_change_mm": round(sum_f - sum_b, 2),
            "sum_change_pct": change_pct,
            "target_response": t_resp,
            "new_lesion_ids": [n["id"] for n in new],
            "overall_response": overall,
            "rule": rule,
            "reference": "RECIST 1.1 (Eisenhauer et al. 2009); baseline sum is the reference "
            "for PR and, with two time points, the nadir for PD",
        },
        "response": overall,
        "notes": notes,
        "null_reasons": null_reasons,
    }

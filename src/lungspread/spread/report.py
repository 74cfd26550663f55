"""``spread_report``: a tumor mask (plus CT and lungs when given) -> the spread report dict.

The dict is exactly what ``lungspread spread`` writes to ``report.json``. Every value that
cannot be computed is ``None`` (``null``) and its reason sits in the nearest ``null_reasons``
dict: the report's own for top-level keys, each lesion's for that lesion's keys, the
t_descriptor's for its keys. See docs/spread.md for what each number means and its limits.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from lungspread.errors import InputError
from lungspread.spread import involvement as inv
from lungspread.spread.lesions import Lesion, find_lesions, tumor_array
from lungspread.spread.measures import (
    max_diameter_mm,
    recist_axes,
    sphericity,
    surface_area_mm2,
    to_world,
    volume_ml,
)
from lungspread.spread.recist import select_targets
from lungspread.spread.tdescriptor import MIN_SEPARATE_NODULE_MM, t_descriptor
from lungspread.volume import Volume

log = logging.getLogger(__name__)

REPORT_TYPE = "lungspread.spread"
REPORT_VERSION = 1
#: Voxels above this CT value (HU) count as solid; ground glass lies below (about -700 to -300).
SOLID_THRESHOLD_HU = -300.0
#: A lesion at most this far (mm) from the lung surface counts as touching the pleura: where
#: two mask edges lie is uncertain by about a voxel each (partial volume), about 1.5 mm in all.
PLEURAL_CONTACT_MM = 1.5
UNITS = {
    "volume": "mL",
    "length": "mm",
    "area": "mm2",
    "intensity": "HU",
    "involvement": "percent of lung volume",
    "fraction": "0-1",
}


def _r(x: float | None, nd: int) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def _pt(p: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in p]


def _lung_context(
    tumor: Volume,
    ct: Volume | None,
    lungs: Volume | None,
    lobes: Volume | None,
    zones: Volume | None,
    notes: list[str],
) -> tuple[inv.LungContext | None, str | None]:
    """Lung maps on the tumor grid, or None and the reason."""
    lobe_arr = inv.lobe_labels(lobes) if lobes is not None else None
    if lungs is not None:
        labels, more = inv.lung_labels(lungs)
        notes.extend(more)
        source = "given"
    elif lobe_arr is not None:
        labels = inv.lungs_from_lobes(lobe_arr)
        source = "derived from the lobe map"
    elif ct is not None:
        try:
            from lungspread.lungs import segment_lungs  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            return (
                None,
                "no lung mask given and lung segmentation (lungspread.lungs) is unavailable",
            )
        seg = segment_lungs(ct)
        inv.check_same_grid(ct, seg, "CT", "segmented lung mask")
        labels, more = inv.lung_labels(seg)
        notes.extend(more)
        source = "segmented from the CT (lungspread.lungs.segment_lungs)"
        notes.append("lungs were segmented from the CT")
    else:
        return None, "no lung mask, lobe map or CT given"
    if not (labels > 0).any():
        raise InputError(
            "lung mask holds no lung voxels", (lungs or lobes or ct or tumor).meta.get("source")
        )
    zone_arr: np.ndarray | None = None
    zone_source = "thirds of each lung's height (world z), computed in lungspread.spread"
    if zones is not None:
        zone_arr = np.asarray(zones.array)
        if inv.label_counts(zone_arr, 3) is None:
            bad = sorted(set(np.unique(zone_arr).tolist()) - {0, 1, 2, 3})
            raise InputError(
                f"zone map must hold 0-3 (1 upper, 2 middle, 3 lower); found {bad[:6]}",
                zones.meta.get("source"),
            )
        zone_arr = zone_arr.astype(np.uint8, copy=False)
        zone_source = "given"
    else:
        try:
            from lungspread.lungs import lung_zones  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            pass
        else:
            zone_vol = lung_zones(Volume(labels, tumor.affine.copy(), {}))
            zone_arr = np.asarray(zone_vol.array).astype(np.uint8, copy=False)
            zone_source = "lungspread.lungs.lung_zones (thirds of each lung's height)"
    ctx = inv.LungContext(
        labels=labels,
        affine=tumor.affine,
        source=source,
        lobes=lobe_arr,
        zones=zone_arr,
        zone_source=zone_source,
    )
    return ctx, None


def _majority(codes: np.ndarray, names: dict[int, str]) -> str | None:
    codes = codes[codes > 0]
    if codes.size == 0:
        return None
    counts = np.bincount(codes, minlength=max(names) + 1)
    return names.get(int(np.argmax(counts)))


def _lesion_entry(
    les: Lesion,
    tumor: Volume,
    tumor_bool: np.ndarray,
    ct: Volume | None,
    ctx: inv.LungContext | None,
    no_lung_reason: str | None,
    solid_threshold_hu: float,
    pleural_contact_mm: float,
) -> dict[str, Any]:
    affine = tumor.affine
    reasons: dict[str, str] = {}
    idx = les.indices()
    n = len(idx)
    vol = volume_ml(n, affine)
    centroid = to_world(idx.mean(axis=0)[None, :], affine)[0]
    axes = recist_axes(les.mask, les.offset, affine, tumor.slice_axis())
    dmax, p3, q3 = max_diameter_mm(les.mask, les.offset, affine)
    area = surface_area_mm2(les.mask, affine)
    sph = sphericity(vol * 1000.0, area)
    edges = image_edges(les, tumor.shape)
    entry: dict[str, Any] = {
        "id": les.id,
        "voxel_count": n,
        "volume_ml": _r(vol, 4),
        "recist_diameter_mm": _r(axes.long_mm, 2),
        "short_axis_mm": _r(axes.short_mm, 2),
        "max_diameter_mm": _r(dmax, 2),
        "centroid_mm": _pt(centroid),
        "coordinate_system": "RAS",
        "side": None,
        "zone": None,
        "lobe": None,
        "lung_fractions": None,
        "fraction_in_lung": None,
        "pleural_contact": None,
        "distance_to_pleura_mm": None,
        "mean_hu": None,
        "solid_fraction": None,
        "surface_area_mm2": _r(area, 2),
        "sphericity": _r(sph, 4),
        "recist_axes": {
            "slice_axis": axes.slice_axis,
            "slice_index": axes.slice_index,
            "long_axis_ends_mm": [_pt(axes.long_ends_mm[0]), _pt(axes.long_ends_mm[1])],
            "short_axis_ends_mm": [_pt(axes.short_ends_mm[0]), _pt(axes.short_ends_mm[1])],
            "max_diameter_ends_mm": [_pt(p3), _pt(q3)],
        },
        "bbox_voxels": [[s.start, s.stop - 1] for s in les.slices],
        "touches_image_edge": bool(edges),
        "image_edges": edges,
        "null_reasons": reasons,
    }
    if entry["sphericity"] is None:
        reasons["sphericity"] = "surface area is zero"
    if ctx is None:
        why = no_lung_reason or "no lungs"
        for key in (
            "side",
            "zone",
            "lung_fractions",
            "fraction_in_lung",
            "pleural_contact",
            "distance_to_pleura_mm",
        ):
            reasons[key] = why
    else:
        lab = ctx.labels[idx[:, 0], idx[:, 1], idx[:, 2]]
        n_right = int(np.count_nonzero(lab == 1))
        n_left = int(np.count_nonzero(lab == 2))
        n_out = n - n_right - n_left
        # Majority; ties go to right, then left, then outside.
        side = max(
            (("right", n_right), ("left", n_left), ("outside_lungs", n_out)),
            key=lambda kv: kv[1],
        )[0]
        entry["side"] = side
        entry["lung_fractions"] = {"right": _r(n_right / n, 4), "left": _r(n_left / n, 4)}
        entry["fraction_in_lung"] = _r((n_right + n_left) / n, 4)
        entry["_in_lung_voxels"] = {"right": n_right, "left": n_left}
        zone = _majority(ctx.zone_codes(idx), inv.ZONE_NAMES)
        entry["zone"] = zone
        if zone is None:
            reasons["zone"] = "no voxel of the lesion lies inside the lungs"
        labels = ctx.labels
        if side == "outside_lungs":

            def target(region: tuple[slice, slice, slice]) -> np.ndarray:
                out: np.ndarray = labels[region] > 0
                return out
        else:

            def target(region: tuple[slice, slice, slice]) -> np.ndarray:
                out: np.ndarray = (labels[region] == 0) & ~tumor_bool[region]
                return out

        gap = inv.gap_mm(les, target, tumor.shape, tumor.spacing)
        if gap is None:
            reasons["distance_to_pleura_mm"] = "the lung mask has no surface inside the image"
            reasons["pleural_contact"] = reasons["distance_to_pleura_mm"]
        else:
            entry["distance_to_pleura_mm"] = _r(gap, 2)
            entry["pleural_contact"] = gap <= pleural_contact_mm
    if ctx is not None and ctx.lobes is not None:
        entry["lobe"] = _majority(ctx.lobes[idx[:, 0], idx[:, 1], idx[:, 2]], inv.LOBE_NAMES)
        if entry["lobe"] is None:
            reasons["lobe"] = "no voxel of the lesion lies inside a lobe"
    else:
        reasons["lobe"] = "no lobe map given"
    if ct is None:
        reasons["mean_hu"] = "no CT given"
        reasons["solid_fraction"] = "no CT given"
    else:
        values = np.asarray(ct.array[les.slices])[les.mask].astype(np.float64)
        entry["mean_hu"] = _r(float(values.mean()), 1)
        entry["solid_fraction"] = _r(float(np.mean(values > solid_threshold_hu)), 4)
    return entry


def image_edges(les: Lesion, shape: tuple[int, ...]) -> list[str]:
    """The faces of the image that the lesion reaches: ``"axis K first"`` (index 0 along array
    axis K) or ``"axis K last"``. A lesion there may go on outside the image (a scan that ends
    inside it), so its volume and diameters are lower bounds."""
    out = []
    for axis, (sl, n) in enumerate(zip(les.slices, shape, strict=True)):
        if sl.start == 0:
            out.append(f"axis {axis} first")
        if sl.stop == n:
            out.append(f"axis {axis} last")
    return out


def _edge_note(entries: list[dict[str, Any]], slice_axis: int) -> str | None:
    at_edge = [e for e in entries if e["touches_image_edge"]]
    if not at_edge:
        return None
    where = "; ".join(f"{e['id']}: {', '.join(e['image_edges'])}" for e in at_edge)
    return (
        f"{len(at_edge)} lesion(s) reach the edge of the image ({where}; axis {slice_axis} is "
        "the slice axis): they may go on outside the scan, so their volumes and diameters are "
        "lower bounds"
    )


def _count(lesions: list[dict[str, Any]], key: str, names: list[str]) -> dict[str, int]:
    return {name: sum(1 for les in lesions if les.get(key) == name) for name in names}


def compute_spread(
    tumor: Volume,
    ct: Volume | None = None,
    lungs: Volume | None = None,
    lobes: Volume | None = None,
    zones: Volume | None = None,
    *,
    connectivity: int = 26,
    solid_threshold_hu: float = SOLID_THRESHOLD_HU,
    pleural_contact_mm: float = PLEURAL_CONTACT_MM,
    min_separate_nodule_mm: float = MIN_SEPARATE_NODULE_MM,
) -> tuple[dict[str, Any], Volume | None]:
    """The spread report and the lung map it used (1 right, 2 left; None without lungs).

    Use this instead of :func:`spread_report` to keep lungs segmented from the CT.
    """
    notes: list[str] = []
    null_reasons: dict[str, str] = {}
    if ct is not None:
        inv.check_same_grid(ct, tumor, "CT", "tumor mask")
        if ct.array.dtype.kind == "f" and not np.all(np.isfinite(ct.array)):
            raise InputError(
                "CT holds NaN or infinite voxels; expected finite HU values",
                ct.meta.get("source"),
            )
    for vol, name in ((lungs, "lung mask"), (lobes, "lobe map"), (zones, "zone map")):
        if vol is not None:
            inv.check_same_grid(tumor, vol, "tumor mask", name)
    tumor_bool, more = tumor_array(tumor)
    notes.extend(more)
    ctx, no_lung_reason = _lung_context(tumor, ct, lungs, lobes, zones, notes)
    if ctx is None and zones is not None:
        notes.append("the zone map was not used: zones need a lung mask, lobe map or CT")
    lesions = find_lesions(tumor_bool, connectivity)
    log.info("spread: %d lesion(s)", len(lesions))
    entries = [
        _lesion_entry(
            les, tumor, tumor_bool, ct, ctx, no_lung_reason, solid_threshold_hu, pleural_contact_mm
        )
        for les in lesions
    ]
    vox_ml = tumor.voxel_volume_mm3 / 1000.0
    slice_axis = tumor.slice_axis()
    slice_spacing = tumor.spacing[slice_axis]
    edge_note = _edge_note(entries, slice_axis)
    if edge_note:
        notes.append(edge_note)

    # lungs
    if ctx is None:
        lungs_out: dict[str, Any] = {"right_ml": None, "left_ml": None, "total_ml": None}
        null_reasons["lungs"] = no_lung_reason or "no lungs"
    else:
        summary = ctx.summary()
        lungs_out = {k: (_r(v, 3) if isinstance(v, float) else v) for k, v in summary.items()}
        for key in ("centroid_mm", "bbox_min_mm", "bbox_max_mm"):
            lungs_out[key] = [round(float(v), 3) for v in summary[key]]  # type: ignore[attr-defined]

    # totals
    in_right = sum(e.get("_in_lung_voxels", {}).get("right", 0) for e in entries)
    in_left = sum(e.get("_in_lung_voxels", {}).get("left", 0) for e in entries)
    totals: dict[str, Any] = {
        "tumor_volume_ml": _r(sum(e["voxel_count"] for e in entries) * vox_ml, 4),
        "lesion_count": len(entries),
    }
    if ctx is None:
        for key in (
            "tumor_volume_in_lungs_ml",
            "lesions_per_side",
            "lesions_per_zone",
            "lesions_per_lung_zone",
            "lung_involvement_pct",
            "bilateral",
        ):
            totals[key] = None
            null_reasons[f"totals.{key}"] = no_lung_reason or "no lungs"
    else:
        zones_names = list(inv.ZONE_NAMES.values())
        totals["tumor_volume_in_lungs_ml"] = _r((in_right + in_left) * vox_ml, 4)
        totals["lesions_per_side"] = _count(entries, "side", ["right", "left", "outside_lungs"])
        totals["lesions_per_zone"] = _count(entries, "zone", zones_names)
        totals["lesions_per_lung_zone"] = {
            side: _count([e for e in entries if e["side"] == side], "zone", zones_names)
            for side in ("right", "left")
        }
        nr, nl = ctx.counts[1], ctx.counts[2]
        pct = {
            "total": _r(100.0 * (in_right + in_left) / (nr + nl), 4),
            "right": _r(100.0 * in_right / nr, 4) if nr else None,
            "left": _r(100.0 * in_left / nl, 4) if nl else None,
        }
        for side, count in (("right", nr), ("left", nl)):
            if not count:
                null_reasons[f"totals.lung_involvement_pct.{side}"] = (
                    f"the lung mask has no {side} lung"
                )
        totals["lung_involvement_pct"] = pct
        totals["bilateral"] = bool(in_right > 0 and in_left > 0)
    totals.update(select_targets(entries, slice_spacing))
    if ctx is None and totals["recist_targets"]:
        notes.append("no lung mask: every lesion was taken to be in the lung for RECIST targets")

    tdesc = t_descriptor(
        entries,
        have_lungs=ctx is not None,
        have_lobes=lobes is not None,
        min_separate_nodule_mm=min_separate_nodule_mm,
    )
    for e in entries:
        e.pop("_in_lung_voxels", None)
    report: dict[str, Any] = {
        "report_type": REPORT_TYPE,
        "report_version": REPORT_VERSION,
        "coordinate_system": "RAS",
        "units": dict(UNITS),
        "image": {
            "shape": list(tumor.shape),
            "spacing_mm": [round(s, 5) for s in tumor.spacing],
            "slice_axis": tumor.slice_axis(),
            "oblique": tumor.is_oblique,
            "voxel_volume_mm3": round(tumor.voxel_volume_mm3, 6),
        },
        "settings": {
            "connectivity": connectivity,
            "solid_threshold_hu": solid_threshold_hu,
            "pleural_contact_mm": pleural_contact_mm,
            "min_separate_nodule_mm": min_separate_nodule_mm,
            "lesion_order": "largest voxel count first; ids L1, L2, ...",
        },
        "inputs_used": {
            "ct": ct is not None,
            "lungs": None if ctx is None else ctx.source,
            "lobes": lobes is not None,
            "zones": None if ctx is None else ctx.zone_source,
        },
        "lungs": lungs_out,
        "lesions": entries,
        "totals": totals,
        "t_descriptor": tdesc,
        "notes": notes,
        "null_reasons": null_reasons,
    }
    lung_vol = (
        None
        if ctx is None
        else Volume(ctx.labels, tumor.affine.copy(), {"labels": "1 right, 2 left"})
    )
    return report, lung_vol


def spread_report(
    tumor: Volume,
    ct: Volume | None = None,
    lungs: Volume | None = None,
    lobes: Volume | None = None,
    zones: Volume | None = None,
    *,
    connectivity: int = 26,
    solid_threshold_hu: float = SOLID_THRESHOLD_HU,
    pleural_contact_mm: float = PLEURAL_CONTACT_MM,
    min_separate_nodule_mm: float = MIN_SEPARATE_NODULE_MM,
) -> dict[str, Any]:
    """Measure every lesion of a tumor mask and how far the tumor has spread.

    Parameters
    ----------
    tumor:
        Tumor mask; nonzero voxels are tumor (a label map is merged, with a note).
    ct:
        The CT in HU on the same grid: enables ``mean_hu`` and ``solid_fraction``, and, without
        ``lungs`` or ``lobes``, lung segmentation (``lungspread.lungs.segment_lungs``).
    lungs:
        Lung label map on the same grid: 1 right, 2 left (a 0/1 map is split at its centroid).
    lobes:
        Lobe map (1 LUL, 2 LLL, 3 RUL, 4 RML, 5 RLL, lungmask convention): gives ``lobe`` per
        lesion, real lobes for the T-descriptor, and the lungs when ``lungs`` is missing.
    zones:
        Zone map (1 upper, 2 middle, 3 lower); by default thirds of each lung's height.
    connectivity:
        6, 18 or 26 (default): which neighbours join voxels into one lesion.
    solid_threshold_hu:
        Voxels above this value count as solid for ``solid_fraction`` (default -300 HU).
    pleural_contact_mm:
        ``pleural_contact`` is true when ``distance_to_pleura_mm`` is at most this (1.5 mm).
    min_separate_nodule_mm:
        Separate nodules with a shorter longest diameter do not change the T-descriptor
        estimate (6 mm; 0 counts every nodule).

    Returns
    -------
    dict
        The content of ``report.json``: ``lungs``, ``lesions`` (largest first, ids ``"L1"``,
        ``"L2"``, ...), ``totals``, ``t_descriptor``, ``coordinate_system`` ("RAS"), ``units``,
        ``notes`` and ``null_reasons``.

    Raises
    ------
    GeometryError
        When the CT, lungs, lobes or zones are not on the tumor mask's voxel grid.
    InputError
        For a probability map as tumor mask or unexpected labels in the lung/lobe maps.
    """
    report, _lungs = compute_spread(
        tumor,
        ct,
        lungs,
        lobes,
        zones,
        connectivity=connectivity,
        solid_threshold_hu=solid_threshold_hu,
        pleural_contact_mm=pleural_contact_mm,
        min_separate_nodule_mm=min_separate_nodule_mm,
    )
    return report

"""An AJCC 8th edition T-descriptor *estimate* from the geometry of a tumor mask.

This is not a stage. It uses only what a mask shows: the largest lesion's longest 3D
diameter and where the other lesions are. The size bins are those of the AJCC / UICC 8th
edition TNM classification of lung cancer (T1a <= 1 cm, T1b <= 2, T1c <= 3, T2a <= 4,
T2b <= 5, T3 <= 7, T4 > 7 cm). A separate tumor nodule in the same lobe as the primary makes
it T3, one in a different lobe of the same lung T4, one in the other lung M1a. Without a lobe
map, lobes are approximated by the lung zones (thirds of each lung's height). Separate nodules
smaller than ``min_separate_nodule_mm`` (6 mm by default) are listed but do not change the
estimate (see :data:`MIN_SEPARATE_NODULE_MM`).
"""

from __future__ import annotations

from typing import Any

EDITION = "AJCC 8th edition (UICC TNM 8th edition), lung cancer"
BASIS = "estimate from imaging geometry of the mask only; not a clinical or pathological stage"

#: (upper limit in mm, inclusive; category)
SIZE_BINS_MM: tuple[tuple[float, str], ...] = (
    (10.0, "T1a"),
    (20.0, "T1b"),
    (30.0, "T1c"),
    (40.0, "T2a"),
    (50.0, "T2b"),
    (70.0, "T3"),
)
#: Separate nodules with a longest diameter under this do not raise the estimate. The Fleischner
#: Society's 2017 guideline asks no routine follow-up of solid nodules under 6 mm in low-risk
#: patients: most are benign (intrapulmonary lymph nodes, granulomas), and a few-millimetre
#: speck is also what a segmentation's false positives look like. 0 counts every nodule.
MIN_SEPARATE_NODULE_MM = 6.0
T_ORDER = ("T0", "T1a", "T1b", "T1c", "T2a", "T2b", "T3", "T4")

_ALWAYS = (
    "invasion is not assessed: pleura (visceral or parietal), chest wall, phrenic nerve, "
    "pericardium, diaphragm, mediastinum, heart, great vessels, trachea, esophagus, vertebra "
    "or carina would raise T whatever the size",
    "main bronchus involvement and atelectasis or obstructive pneumonitis (T2 features) are "
    "not assessed",
    "nodal status (N) and metastases beyond the chest (M1b, M1c) are not assessed",
    "size is the longest 3D diameter of the whole lesion in the mask; for part-solid tumors "
    "AJCC 8th uses the size of the solid (invasive) component instead (see solid_fraction)",
)


def size_category(diameter_mm: float) -> str:
    """T category for the greatest tumor dimension alone."""
    for limit, name in SIZE_BINS_MM:
        if diameter_mm <= limit:
            return name
    return "T4"


def _bin_words(diameter_mm: float) -> str:
    lower = 0.0
    for limit, name in SIZE_BINS_MM:
        if diameter_mm <= limit:
            return f"> {lower / 10:g} and <= {limit / 10:g} cm -> {name}"
        lower = limit
    return f"> {lower / 10:g} cm -> T4"


def _with_reasons(out: dict[str, Any], why: str) -> dict[str, Any]:
    """Give every null value of ``out`` a reason (``why``) unless it has one already."""
    for key, value in out.items():
        if value is None:
            out["null_reasons"].setdefault(key, why)
    return out


def t_descriptor(
    lesions: list[dict[str, Any]],
    have_lungs: bool,
    have_lobes: bool,
    min_separate_nodule_mm: float = MIN_SEPARATE_NODULE_MM,
) -> dict[str, Any]:
    """T-descriptor estimate from report lesion entries (largest first).

    Each entry needs ``id``, ``max_diameter_mm``, ``side`` ("right"/"left"/"outside_lungs" or
    None without lungs), ``zone``, ``lobe`` and ``pleural_contact``. Separate nodules whose
    longest diameter is under ``min_separate_nodule_mm`` are listed with ``counted`` false and
    leave the estimate as it is.
    """
    if not min_separate_nodule_mm >= 0:
        raise ValueError(f"min_separate_nodule_mm must be >= 0, got {min_separate_nodule_mm}")
    which = f"of {min_separate_nodule_mm:g} mm or more " if min_separate_nodule_mm > 0 else ""
    caveats = [
        *_ALWAYS,
        f"separate nodules {which}are assumed to be tumor; a benign one in the mask raises the "
        "estimate",
    ]
    lobe_basis = (
        "lobe map" if have_lobes else "lung zones (thirds of lung height) stand in for lobes"
    )
    if not have_lobes:
        caveats.append(
            "lobes are approximated by lung zones (upper, middle, lower third of each lung's "
            "height); fissures are oblique, so same-lobe and different-lobe calls can be wrong"
        )
    out: dict[str, Any] = {
        "estimate": None,
        "m_estimate": None,
        "basis": BASIS,
        "edition": EDITION,
        "primary_lesion_id": None,
        "primary_max_diameter_mm": None,
        "size_category": None,
        "separate_nodules": [],
        "min_separate_nodule_mm": min_separate_nodule_mm,
        "lobe_basis": lobe_basis,
        "rule": "",
        "caveats": caveats,
        "null_reasons": {},
    }
    if not lesions:
        out.update(estimate="T0", rule="no lesion in the mask -> T0 (no evidence of tumor)")
        return _with_reasons(out, "no lesion in the mask")
    if have_lungs:
        in_lung = [les for les in lesions if les.get("side") in ("right", "left")]
        outside = [les["id"] for les in lesions if les.get("side") == "outside_lungs"]
        if outside:
            caveats.append(
                f"lesion(s) outside the lungs ({', '.join(outside)}) were not used: they may be "
                "lymph nodes or tumor extending beyond the lung, which this estimate cannot judge"
            )
    else:
        in_lung = list(lesions)
        caveats.append(
            "no lung mask: the largest lesion was taken as the primary and the separate-nodule "
            "rules (T3, T4, M1a) could not be applied"
        )
    if not in_lung:
        out["rule"] = "no lesion lies mainly inside the lungs; no T estimate"
        return _with_reasons(out, "no lesion lies mainly inside the lungs")
    primary = max(in_lung, key=lambda les: float(les["max_diameter_mm"]))
    size_mm = float(primary["max_diameter_mm"])
    t_size = size_category(size_mm)
    words = [
        f"largest lesion {primary['id']}: longest diameter {size_mm:.1f} mm ({_bin_words(size_mm)})"
    ]
    t_final = t_size
    m_final: str | None = None
    small: list[str] = []
    if have_lungs:
        for les in in_lung:
            if les is primary:
                continue
            if les["side"] != primary["side"]:
                relation, desc = "other_lung", "M1a"
            else:
                use_lobe = have_lobes and les.get("lobe") and primary.get("lobe")
                key = "lobe" if use_lobe else "zone"
                same = les.get(key) is not None and les.get(key) == primary.get(key)
                relation = "same_lobe" if same else "different_ipsilateral_lobe"
                desc = "T3" if same else "T4"
            size = float(les["max_diameter_mm"])
            counted = size >= min_separate_nodule_mm
            out["separate_nodules"].append(
                {"id": les["id"], "relation": relation, "descriptor": desc, "counted": counted}
            )
            if not counted:
                small.append(f"{les['id']} {size:.1f} mm")
                continue
            where = {
                "same_lobe": "in the same lobe",
                "different_ipsilateral_lobe": "in a different lobe of the same lung",
                "other_lung": "in the other lung",
            }[relation]
            if desc == "M1a":
                if m_final is None:
                    words.append(f"separate nodule {les['id']} {where} -> M1a")
                m_final = "M1a"
            elif T_ORDER.index(desc) > T_ORDER.index(t_final):
                words.append(f"separate nodule {les['id']} {where} -> {desc}")
                t_final = desc
    if small:
        words.append(
            f"{len(small)} separate nodule(s) under {min_separate_nodule_mm:g} mm not counted"
        )
        caveats.append(
            f"separate nodules under {min_separate_nodule_mm:g} mm ({', '.join(small)}) were not "
            "counted: most nodules this small are benign (the Fleischner Society asks no routine "
            "follow-up of solid nodules under 6 mm in low-risk patients) and a segmentation's "
            "false positives look the same; if they are tumor, the estimate is too low "
            "(min_separate_nodule_mm 0 counts them)"
        )
    if primary.get("touches_image_edge"):
        caveats.append(
            f"{primary['id']} reaches the edge of the image: it may go on outside the scan, so "
            "its size, and this estimate, may be too low"
        )
    if primary.get("pleural_contact"):
        gap = primary.get("distance_to_pleura_mm")
        where = "" if gap is None else f" ({gap:.1f} mm from the lung surface)"
        caveats.append(
            f"{primary['id']} abuts the pleura{where}: visceral pleural invasion (which makes a "
            "tumor of up to 4 cm at least T2a) cannot be seen on CT and was not assumed"
        )
    solid = primary.get("solid_fraction")
    if solid is not None and solid < 0.5:
        caveats.append(
            f"{primary['id']} is mostly non-solid (solid_fraction {solid:.2f}): AJCC 8th sizes "
            "a part-solid tumor by its solid component, so this whole-lesion estimate may be "
            "too high"
        )
    if m_final is None:
        if not have_lungs:
            why = "no lung mask"
        elif any(n["relation"] == "other_lung" for n in out["separate_nodules"]):
            why = f"no separate nodule of at least {min_separate_nodule_mm:g} mm in the other lung"
        else:
            why = "no separate nodule in the other lung"
        out["null_reasons"]["m_estimate"] = why
    words.append(f"estimate {t_final}" + (f", {m_final}" if m_final else ""))
    out.update(
        estimate=t_final,
        m_estimate=m_final,
        primary_lesion_id=primary["id"],
        primary_max_diameter_mm=size_mm,
        size_category=t_size,
        rule="; ".join(words),
    )
    return out

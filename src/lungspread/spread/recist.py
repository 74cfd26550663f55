"""RECIST 1.1: target lesions at baseline and the response category at follow-up.

Rules (Eisenhauer et al., Eur J Cancer 2009;45:228-247, and the RECIST working group's FAQ):

* Measurable: longest diameter (on an axial slice) at least 10 mm, or twice the slice
  spacing when slices are thicker than 5 mm (slice spacing stands in for slice thickness).
* Targets: the largest measurable lesions, at most 5 in all and at most 2 per organ. Both
  lungs are one organ ("lung", as the RECIST FAQ on paired organs says). Lesions outside the
  lungs are grouped as one further organ ("outside_lungs"); lungspread cannot tell lymph nodes
  (which RECIST measures by short axis, measurable from 15 mm) from other tissue. Without a
  lung mask every lesion is taken to be in the lung.
* Sum of diameters: sum of the targets' longest diameters.
* Target response: CR all targets gone; PR sum down at least 30 % from baseline; PD sum up at
  least 20 % and at least 5 mm (from the smallest sum on study; with two time points that is
  the baseline); SD otherwise. Overall: any new lesion is PD; targets CR with other lesions
  remaining is PR (RECIST table 1: CR of targets with non-CR/non-PD non-targets).
"""

from __future__ import annotations

from typing import Any

MEASURABLE_MIN_MM = 10.0
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
PR_DECREASE_PCT = 30.0
PD_INCREASE_PCT = 20.0
PD_INCREASE_MIN_MM = 5.0


def measurable_min_mm(slice_spacing_mm: float) -> float:
    """Smallest measurable longest diameter: 10 mm, or twice the slice spacing above 5 mm."""
    return max(MEASURABLE_MIN_MM, 2.0 * slice_spacing_mm) if slice_spacing_mm > 5.0 else 10.0


def organ_of(lesion: dict[str, Any]) -> str:
    """RECIST organ group: ``"lung"`` (either lung, or unknown) or ``"outside_lungs"``"""
    return "outside_lungs" if lesion.get("side") == "outside_lungs" else "lung"


def select_targets(lesions: list[dict[str, Any]], slice_spacing_mm: float) -> dict[str, Any]:
    """Choose the RECIST 1.1 target lesions among report lesion entries (largest first)."""
    min_mm = measurable_min_mm(slice_spacing_mm)
    measurable = [
        les
        for les in lesions
        if les.get("recist_diameter_mm") is not None and les["recist_diameter_mm"] >= min_mm
    ]
    measurable.sort(key=lambda les: -float(les["recist_diameter_mm"]))  # stable: ids break ties
    targets: list[dict[str, Any]] = []
    per_organ: dict[str, int] = {}
    for les in measurable:
        organ = organ_of(les)
        if len(targets) >= MAX_TARGETS or per_organ.get(organ, 0) >= MAX_TARGETS_PER_ORGAN:
            continue
        per_organ[organ] = per_organ.get(organ, 0) + 1
        targets.append(
            {"id": les["id"], "organ": organ, "recist_diameter_mm": les["recist_diameter_mm"]}
        )
    chosen = {t["id"] for t in targets}
    return {
        "recist_targets": targets,
        "sum_of_diameters_mm": float(sum(t["recist_diameter_mm"] for t in targets)),
        "recist_non_targets": [les["id"] for les in lesions if les["id"] not in chosen],
        "recist_measurable_min_mm": min_mm,
    }


def target_response(baseline_sum_mm: float, followup_sum_mm: float, n_targets: int) -> str:
    """RECIST 1.1 response of the target lesions: CR, PR, SD, PD, or NE without targets."""
    if n_targets == 0:
        return "NE"
    if followup_sum_mm <= 0.0:
        return "CR"
    change = followup_sum_mm - baseline_sum_mm
    eps = 1e-9
    if (
        change >= PD_INCREASE_PCT / 100.0 * baseline_sum_mm - eps
        and change >= PD_INCREASE_MIN_MM - eps
    ):
        return "PD"
    if change <= -PR_DECREASE_PCT / 100.0 * baseline_sum_mm + eps:
        return "PR"
    return "SD"


def overall_response(
    target: str, new_lesions: int, other_lesions_remaining: int, baseline_lesions: int
) -> tuple[str, str]:
    """Overall RECIST 1.1 response and the rule that decided it, in words.

    ``other_lesions_remaining`` counts follow-up lesions matched to baseline non-targets.
    Unequivocal progression of non-target lesions is not assessed.
    """
    if new_lesions:
        return "PD", f"{new_lesions} new lesion(s) at follow-up -> PD"
    if target == "PD":
        return "PD", "sum of target diameters up at least 20 % and at least 5 mm -> PD"
    if target == "CR":
        if other_lesions_remaining:
            return "PR", (
                "all target lesions gone but non-target lesions remain -> PR "
                "(RECIST: target CR with non-CR/non-PD non-targets)"
            )
        return "CR", "all lesions gone -> CR"
    if target == "NE":
        if baseline_lesions == 0:
            return "NE", "no lesion at baseline and none at follow-up -> not evaluable"
        if other_lesions_remaining == 0:
            return "CR", "no target lesions; all non-target lesions gone -> CR"
        return "non-CR/non-PD", "no measurable target lesions; non-target lesions remain"
    if target == "PR":
        return "PR", "sum of target diameters down at least 30 % -> PR"
    return "SD", "sum of target diameters changed less than the PR and PD thresholds -> SD"

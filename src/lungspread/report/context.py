"""Spread report (``report.json`` dict) -> view model: plain strings and lists, ready to display.

:func:`build_context` is pure (no files, no numpy) and tolerant: a missing key or a ``null``
value becomes "n/a" with the reason when the report gives one, never a crash, so the HTML
report can be made from any version of the spread report or from a bare tumor mask.

Patient identifiers never come from the report dict: they enter only through the
``identifiers`` argument, which the caller passes only when the user asked to keep them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

NA = "n/a"

#: Lesion table: (report key, column title, formatter name).
LESION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("volume_ml", "Volume (mL)", "ml"),
    ("recist_diameter_mm", "Longest axial diameter (mm, RECIST)", "mm"),
    ("short_axis_mm", "Short axis (mm)", "mm"),
    ("max_diameter_mm", "Longest 3D diameter (mm)", "mm"),
    ("side", "Side", "text"),
    ("zone", "Zone", "text"),
    ("lobe", "Lobe", "text"),
    ("pleural_contact", "Touches pleura", "bool"),
    ("distance_to_pleura_mm", "Distance to pleura (mm)", "mm"),
    ("fraction_in_lung", "Inside lung (%)", "fraction_pct"),
    ("mean_hu", "Mean density (HU)", "hu"),
    ("solid_fraction", "Solid part (%)", "fraction_pct"),
    ("surface_area_mm2", "Surface area (mm²)", "int"),
    ("sphericity", "Sphericity (1 = sphere)", "ratio"),
)

#: Columns left out when no lesion has a value (e.g. lobes without a lobe map).
_OPTIONAL_COLUMNS = {"lobe"}

_SHOWN_TOTALS = {
    "tumor_volume_ml",
    "lesion_count",
    "bilateral",
    "sum_of_diameters_mm",
    "lung_involvement_pct",
}


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def fmt_number(value: Any, digits: int = 1) -> str:
    if not _finite(value):
        return NA
    return f"{float(value):,.{digits}f}"


def fmt_value(value: Any, kind: str) -> str:
    """Format one measure for display (``n/a`` for null, NaN or a wrong type)."""
    if value is None:
        return NA
    if kind == "ml":
        return fmt_number(value, 2 if _finite(value) and abs(float(value)) < 1 else 1)
    if kind == "mm":
        return fmt_number(value, 1)
    if kind == "int":
        return fmt_number(value, 0)
    if kind == "hu":
        return fmt_number(value, 0)
    if kind == "ratio":
        return fmt_number(value, 2)
    if kind == "pct":
        return fmt_number(value, 2 if _finite(value) and abs(float(value)) < 1 else 1)
    if kind == "fraction_pct":
        return fmt_number(float(value) * 100.0, 0) if _finite(value) else NA
    if kind == "bool":
        return "yes" if value is True else "no" if value is False else NA
    if kind == "text":
        text = str(value).replace("_", " ").strip()
        return text or NA
    return str(value)


def pretty_key(key: str) -> str:
    """``lesions_right_upper`` -> ``Lesions right upper``; unit suffixes in brackets."""
    units = {"_ml": " (mL)", "_mm": " (mm)", "_pct": " (%)", "_mm2": " (mm²)", "_hu": " (HU)"}
    suffix = ""
    for end, text in units.items():
        if key.endswith(end):
            key, suffix = key[: -len(end)], text
            break
    words = key.replace("_", " ").strip()
    words = words.replace("recist", "RECIST")
    return (words[:1].upper() + words[1:] + suffix) if words else key


def _find(mapping: Mapping[str, Any], key: str) -> Any:
    """``mapping[key]``, or the value under ``key`` one level down (e.g. totals.recist.key)."""
    if key in mapping:
        return mapping[key]
    for value in mapping.values():
        if isinstance(value, Mapping) and key in value:
            return value[key]
    return None


def _reason(mapping: Mapping[str, Any], key: str) -> str | None:
    """The reason a report gives for a null value (``null_reasons[key]``, ``<key>_reason``)."""
    for container in ("null_reasons", "reasons"):
        reasons = mapping.get(container)
        if isinstance(reasons, Mapping) and isinstance(reasons.get(key), str):
            return str(reasons[key])
    value = mapping.get(f"{key}_reason")
    if isinstance(value, str) and value:
        return value
    return None


def _involvement(totals: Mapping[str, Any]) -> str:
    value = totals.get("lung_involvement_pct")
    parts: list[str] = []
    if isinstance(value, Mapping):
        total = value.get("total", value.get("both"))
        if _finite(total):
            parts.append(f"{fmt_value(total, 'pct')} % of both lungs")
        for side in ("right", "left"):
            if _finite(value.get(side)):
                parts.append(f"{side} {fmt_value(value[side], 'pct')} %")
    elif _finite(value):
        parts.append(f"{fmt_value(value, 'pct')} % of both lungs")
        for side in ("right", "left"):
            for key in (f"lung_involvement_{side}_pct", f"{side}_lung_involvement_pct"):
                if _finite(totals.get(key)):
                    parts.append(f"{side} {fmt_value(totals[key], 'pct')} %")
                    break
    if not parts:
        reason = _reason(totals, "lung_involvement_pct")
        return f"{NA} ({reason})" if reason else NA
    return parts[0] + (" (" + ", ".join(parts[1:]) + ")" if len(parts) > 1 else "")


def _caveats(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, Sequence):
        return [str(v) for v in value if str(v).strip()]
    return []


def build_context(
    report: Mapping[str, Any] | None,
    *,
    lesions: Sequence[Mapping[str, Any]] = (),
    identifiers: Mapping[str, str] | None = None,
    version: str = "",
    figures: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The HTML report's view model.

    ``lesions``: display facts per lesion from the masks, in table order, each with ``id``,
    ``name``, ``color`` (``#rrggbb``), ``volume_ml`` and optionally ``report`` (the report's
    lesion dict). ``figures``: ``{"file", "caption"}`` per embedded figure. ``identifiers``:
    label -> value, shown only when given (the caller passes them only with keep_identifiers).
    """
    report = report or {}
    totals = report.get("totals") if isinstance(report.get("totals"), Mapping) else {}
    assert isinstance(totals, Mapping)
    lungs = report.get("lungs") if isinstance(report.get("lungs"), Mapping) else {}
    assert isinstance(lungs, Mapping)
    t_desc = report.get("t_descriptor") if isinstance(report.get("t_descriptor"), Mapping) else {}
    assert isinstance(t_desc, Mapping)

    count_value = totals.get("lesion_count")
    count = (
        int(count_value)
        if isinstance(count_value, (int, float)) and _finite(count_value)
        else len(lesions)
    )
    burden = totals.get("tumor_volume_ml")
    if not _finite(burden) and lesions:
        burden = sum(float(x.get("volume_ml", 0.0)) for x in lesions)
    n = count
    burden_text = (
        f"{fmt_value(burden, 'ml')} mL in {n} lesion{'s' if n != 1 else ''}"
        if _finite(burden)
        else NA
    )
    bilateral = totals.get("bilateral")
    sod = _find(totals, "sum_of_diameters_mm")
    targets = _find(totals, "recist_targets")
    if targets is None:
        targets = _find(totals, "target_lesions")
    n_targets = (
        len(targets) if isinstance(targets, Sequence) and not isinstance(targets, str) else None
    )
    sod_text = f"{fmt_value(sod, 'mm')} mm" if _finite(sod) else NA
    if n_targets is not None and _finite(sod):
        sod_text += f" ({n_targets} target lesion{'s' if n_targets != 1 else ''})"
    summary = [
        {"label": "Tumor burden", "value": burden_text},
        {"label": "Lung involvement", "value": _involvement(totals)},
        {"label": "Both lungs affected", "value": fmt_value(bilateral, "bool")},
        {"label": "RECIST 1.1 sum of diameters", "value": sod_text},
    ]
    lung_rows = [
        {
            "label": label,
            "value": f"{fmt_value(lungs.get(key), 'ml')} mL" if _finite(lungs.get(key)) else NA,
        }
        for key, label in (
            ("right_ml", "Right lung"),
            ("left_ml", "Left lung"),
            ("total_ml", "Both lungs"),
        )
    ]
    other_totals = []
    for k, v in totals.items():
        if k in _SHOWN_TOTALS or str(k).startswith("lung_involvement"):
            continue
        if _is_scalar(v):
            other_totals.append({"label": pretty_key(str(k)), "value": _scalar(v)})
        elif isinstance(v, Mapping) and v and all(_is_scalar(x) for x in v.values()):
            text = ", ".join(f"{str(a).replace('_', ' ')} {_scalar(b)}" for a, b in v.items())
            other_totals.append({"label": pretty_key(str(k)), "value": text})
    estimate = t_desc.get("estimate")
    t_descriptor = {
        "estimate": str(estimate) if estimate not in (None, "") else NA,
        "rule": str(t_desc.get("rule") or ""),
        "basis": str(t_desc.get("basis") or ""),
        "edition": str(t_desc.get("edition") or ""),
        "caveats": _caveats(t_desc.get("caveats")),
    }

    entries = [lesion.get("report") or {} for lesion in lesions]
    shown = [
        (key, title, kind)
        for key, title, kind in LESION_COLUMNS
        if not (key in _OPTIONAL_COLUMNS and all(e.get(key) is None for e in entries))
    ]
    columns = ["Lesion", *[title for _, title, _ in shown]]
    rows = []
    for lesion, entry in zip(lesions, entries, strict=True):
        assert isinstance(entry, Mapping)
        cells = []
        notes = []
        for key, _, kind in shown:
            value = entry.get(key, lesion.get(key))
            cells.append(fmt_value(value, kind))
            notes.append(_reason(entry, key) or "" if value is None else "")
        rows.append(
            {
                "id": str(lesion.get("id", "")),
                "name": str(lesion.get("name", "")),
                "color": str(lesion.get("color", "#cc0000")),
                "cells": cells,
                "notes": notes,
            }
        )
    ids = [(label, str(value)) for label, value in (identifiers or {}).items() if str(value)]
    return {
        "title": "lungspread report",
        "version": version,
        "identifiers": [{"label": k, "value": v} for k, v in ids],
        "identifiers_note": (
            "Patient identifiers are included because the report was made with --keep-identifiers."
            if ids
            else "No patient identifiers are included (use --keep-identifiers to add them)."
        ),
        "summary": summary,
        "lungs": lung_rows,
        "other_totals": other_totals,
        "t_descriptor": t_descriptor,
        "notes": [str(n) for n in report.get("notes") or [] if str(n)],
        "lesion_columns": columns,
        "lesion_rows": rows,
        "figures": [
            {"file": str(f["file"]), "caption": str(f.get("caption", ""))} for f in figures
        ],
        "has_lesions": bool(rows),
    }


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fmt_number(value, 2)
    if value is None:
        return NA
    return str(value).replace("_", " ")

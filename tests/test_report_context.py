"""The pure view model of report.html, and the page's escaping and self-containedness."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from export_fixtures import hand_report
from lungspread.report.context import build_context, fmt_value, pretty_key
from lungspread.report.html import json_for_script, render_html


def _lesions(report: dict[str, Any]) -> list[dict[str, Any]]:
    colours = ["#e62020", "#ff8c00"]
    return [
        {
            "id": x["id"],
            "name": f"{x['id']} tumor",
            "color": colours[i],
            "report": x,
            "volume_ml": x["volume_ml"],
        }
        for i, x in enumerate(report["lesions"])
    ]


def test_summary_values_are_formatted_with_units() -> None:
    report = hand_report()
    ctx = build_context(report, lesions=_lesions(report), version="9.9")
    summary = {i["label"]: i["value"] for i in ctx["summary"]}
    assert summary["Tumor burden"] == "6.5 mL in 2 lesions"
    assert summary["Lung involvement"] == "0.22 % of both lungs (right 0.37 %, left 0.06 %)"
    assert summary["Both lungs affected"] == "yes"
    assert summary["RECIST 1.1 sum of diameters"] == "34.0 mm (2 target lesions)"
    assert ctx["t_descriptor"]["estimate"] == "M1a"
    assert ctx["t_descriptor"]["caveats"] == [
        "invasion is not assessed",
        "lobes are approximated by zones",
    ]
    assert [r["label"] for r in ctx["lungs"]] == ["Right lung", "Left lung", "Both lungs"]
    assert ctx["lungs"][2]["value"] == "2,900.0 mL"
    row = ctx["lesion_rows"][0]
    cols = ctx["lesion_columns"]
    assert "Lobe" not in cols  # no lesion has a lobe: the column is left out
    cell = dict(zip(cols[1:], row["cells"], strict=True))
    assert cell["Volume (mL)"] == "5.6"
    assert cell["Longest axial diameter (mm, RECIST)"] == "22.0"
    assert cell["Inside lung (%)"] == "100"
    assert cell["Touches pleura"] == "no"
    assert cell["Mean density (HU)"] == "n/a"
    note = dict(zip(cols[1:], row["notes"], strict=True))
    assert note["Mean density (HU)"] == "no CT given"  # the report's null reason
    assert ctx["notes"] == [] and "<h3>Notes</h3>" not in render_html(ctx)
    report["notes"] = ["L1 reaches the edge of the image", ""]
    ctx = build_context(report, lesions=_lesions(report), version="9.9")
    assert ctx["notes"] == ["L1 reaches the edge of the image"]
    assert "<li>L1 reaches the edge of the image</li>" in render_html(ctx)


def test_missing_and_odd_values_do_not_break_it() -> None:
    ctx = build_context(
        {
            "totals": {
                "lung_involvement_pct": 1.5,
                "lesion_count": 1,
                "lesions_per_side": {"right": 1, "left": 0},
            }
        },
        lesions=[{"id": "L1", "name": "L1 tumor", "volume_ml": 0.05}],
    )
    summary = {i["label"]: i["value"] for i in ctx["summary"]}
    assert summary["Tumor burden"] == "0.05 mL in 1 lesion"
    assert summary["Lung involvement"] == "1.5 % of both lungs"
    assert summary["Both lungs affected"] == "n/a"
    assert ctx["t_descriptor"]["estimate"] == "n/a"
    assert {"label": "Lesions per side", "value": "right 1, left 0"} in ctx["other_totals"]
    empty = build_context(None)
    assert empty["has_lesions"] is False
    assert {i["label"]: i["value"] for i in empty["summary"]}["Tumor burden"] == "n/a"


def test_formatters() -> None:
    assert fmt_value(float("nan"), "mm") == "n/a"
    assert fmt_value(None, "ml") == "n/a"
    assert fmt_value(0.4567, "fraction_pct") == "46"
    assert fmt_value(True, "bool") == "yes"
    assert fmt_value("outside_lungs", "text") == "outside lungs"
    assert fmt_value(1234.5, "ml") == "1,234.5"
    assert pretty_key("tumor_volume_in_lungs_ml") == "Tumor volume in lungs (mL)"
    assert pretty_key("recist_measurable_min_mm") == "RECIST measurable min (mm)"


def test_identifiers_only_when_given() -> None:
    report = hand_report()
    report["patient"] = {"PatientName": "DOE^JOHN"}  # must never be picked up by itself
    ctx = build_context(report)
    assert ctx["identifiers"] == []
    assert "--keep-identifiers" in ctx["identifiers_note"]
    page = render_html(ctx)
    assert "DOE" not in page
    ctx2 = build_context(report, identifiers={"Patient ID": "P-123"})
    assert ctx2["identifiers"] == [{"label": "Patient ID", "value": "P-123"}]
    assert "P-123" in render_html(ctx2)


def test_everything_from_files_is_escaped() -> None:
    report = hand_report()
    evil = '<script>alert("x")</script>'
    report["t_descriptor"]["rule"] = evil
    report["t_descriptor"]["caveats"] = ["<img src=x onerror=alert(1)>"]
    report["lesions"][0]["zone"] = "<b>upper</b>"
    report["notes"] = ["<u>1 lesion(s) reach the edge</u>"]
    lesions = _lesions(report)
    lesions[0]["id"] = '"><svg onload=alert(1)>'
    lesions[0]["color"] = 'red" onmouseover="alert(1)'
    ctx = build_context(report, lesions=lesions, identifiers={"Patient": "<i>x</i>"})
    mesh = {
        "meshes": [
            {
                "name": "</script><script>alert(2)</script>",
                "label": "L1",
                "kind": "lesion",
                "color": [1, 0, 0],
                "positions": "",
                "indices": "",
            }
        ],
        "center": [0, 0, 0],
        "radius": 1.0,
    }
    page = render_html(ctx, mesh_data=mesh)
    assert evil not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<b>upper</b>" not in page
    assert "<svg onload" not in page and 'onmouseover="alert' not in page
    assert "<i>x</i>" not in page
    assert "<u>1" not in page and "&lt;u&gt;1 lesion(s) reach the edge&lt;/u&gt;" in page
    # the only </script> tags are the page's own closing tags
    assert page.count("</script>") == page.count("<script")
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(2)" in page


def test_page_is_self_contained() -> None:
    report = hand_report()
    page = render_html(
        build_context(report, lesions=_lesions(report)), figures={"x.png": b"\x89PNG"}
    )
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # no external resource: every src/href is a data URI or an in-page anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:", "#")), attr
    assert "http://" not in page and "https://" not in page
    assert "<style>" in page and "function Viewer" in page


def test_json_for_script_round_trips() -> None:
    import json

    obj = {"a": "</script>&<>\u2028", "b": [1.5, 2]}
    text = json_for_script(obj)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == obj
    assert np.isclose(json.loads(json_for_script({"r": 0.1}))["r"], 0.1)

"""``report.html``: one self-contained, offline page (inline CSS and JS, data URIs, no CDN).

Every piece of text that comes from a report, a file or a mask name goes through
:func:`html.escape`; data for the viewers is embedded as JSON in ``<script
type="application/json">`` blocks with ``<``, ``>`` and ``&`` escaped, so no input can close the
block or inject markup. A Content-Security-Policy meta tag forbids any network request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np


def _asset(name: str) -> str:
    return (resources.files("lungspread.report") / "assets" / name).read_text(encoding="utf-8")


def _template(name: str) -> Template:
    text = (resources.files("lungspread.report") / "templates" / name).read_text(encoding="utf-8")
    return Template(text)


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def json_for_script(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def mesh_payload(
    meshes: Sequence[tuple[Any, np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """Viewer data from (structure, vertices RAS mm, faces) triples (already decimated)."""
    items = []
    allv = [v for _, v, _ in meshes if len(v)]
    if allv:
        stacked = np.concatenate(allv)
        lo, hi = stacked.min(axis=0), stacked.max(axis=0)
        center = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2) or 1.0
    else:
        center, radius = np.zeros(3), 1.0
    for s, v, f in meshes:
        items.append(
            {
                "name": s.name,
                "label": s.lesion_id or "",
                "kind": s.kind,
                "color": [round(float(c), 4) for c in s.color],
                "positions": base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode(),
                "indices": base64.b64encode(np.asarray(f, dtype="<u4").tobytes()).decode(),
            }
        )
    return {"meshes": items, "center": [float(c) for c in center], "radius": radius}


def _cards(items: Sequence[Mapping[str, str]]) -> str:
    return "".join(
        f'<div class="card"><div class="label">{e(i["label"])}</div>'
        f'<div class="value">{e(i["value"])}</div></div>'
        for i in items
    )


def _kv(items: Sequence[Mapping[str, str]]) -> str:
    if not items:
        return ""
    rows = "".join(f"<dt>{e(i['label'])}</dt><dd>{e(i['value'])}</dd>" for i in items)
    return f'<dl class="kv">{rows}</dl>'


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{e(n)}</li>" for n in notes)
    return f'<h3>Notes</h3><ul class="caveats">{items}</ul>'


def _summary(ctx: Mapping[str, Any]) -> str:
    t = ctx["t_descriptor"]
    caveats = "".join(f"<li>{e(c)}</li>" for c in t["caveats"])
    rule = f'<div class="note">Rule: {e(t["rule"])}</div>' if t["rule"] else ""
    if t.get("basis"):
        rule += f'<div class="note">Basis: {e(t["basis"])}</div>'
    if t.get("edition"):
        rule += f'<div class="note">Staging system: {e(t["edition"])}</div>'
    tcard = (
        '<div class="card tcard"><div class="label">T-descriptor estimate (AJCC, from imaging '
        f'geometry only)</div><div class="value">{e(t["estimate"])}</div>{rule}'
        + (f'<ul class="caveats">{caveats}</ul>' if caveats else "")
        + "</div>"
    )
    return (
        '<section id="summary"><h2>Summary</h2>'
        f'<div class="cards">{_cards(ctx["summary"])}</div>'
        f'<div class="cards" style="margin-top:12px">{tcard}'
        f'<div class="card"><div class="label">Lung volumes</div>{_kv(ctx["lungs"])}</div></div>'
        + (f"<h3>Other totals</h3>{_kv(ctx['other_totals'])}" if ctx["other_totals"] else "")
        + _notes(ctx.get("notes") or [])
        + '<p class="note">These are measurements from a segmentation, not a diagnosis. The '
        "T-descriptor is an estimate from lesion size and position only; invasion of other "
        "structures, nodes and metastases are not assessed.</p></section>"
    )


def _lesion_table(ctx: Mapping[str, Any]) -> str:
    if not ctx["has_lesions"]:
        return '<section id="lesions"><h2>Lesions</h2><p>No tumor in the mask.</p></section>'
    head = "".join(f"<th>{e(c)}</th>" for c in ctx["lesion_columns"])
    body = []
    for row in ctx["lesion_rows"]:
        cells = "".join(
            f'<td title="{e(note)}">{e(c)}</td>' if note else f"<td>{e(c)}</td>"
            for c, note in zip(
                row["cells"], row.get("notes") or [""] * len(row["cells"]), strict=True
            )
        )
        body.append(
            f'<tr><td><span class="swatch" style="background:{e(row["color"])}"></span>'
            f'<span title="{e(row["name"])}">{e(row["id"])}</span></td>{cells}</tr>'
        )
    return (
        '<section id="lesions"><h2>Lesions</h2><div class="table-wrap"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        '<p class="note">Largest first. Diameters are measured on the voxel grid in mm; '
        "n/a means the measure needs an input that was not given (for example a CT or a lung "
        "mask).</p></section>"
    )


def _viewers(has_mesh: bool, has_slices: bool, legend: Sequence[tuple[str, str]]) -> str:
    parts = []
    if has_mesh:
        shown = legend[:14]
        swatches = "".join(
            f'<span><span class="swatch" style="background:{e(color)}"></span>{e(name)}</span>'
            for name, color in shown
        )
        if len(legend) > len(shown):
            swatches += f"<span>and {len(legend) - len(shown)} more</span>"
        parts.append(
            '<div class="viewer-box" id="viewer3d">'
            '<canvas id="viewer-canvas" tabindex="0" aria-label="3D view of the lungs and '
            'lesions: drag to rotate, scroll to zoom"></canvas>'
            '<div class="controls">'
            '<button type="button" data-view="front">Front</button>'
            '<button type="button" data-view="right">Right side</button>'
            '<button type="button" data-view="left">Left side</button>'
            '<button type="button" data-view="top">Top</button>'
            '<button type="button" data-view="back">Back</button>'
            '<button type="button" id="zoom-in">Zoom +</button>'
            '<button type="button" id="zoom-out">Zoom &minus;</button>'
            '<label><input type="checkbox" id="toggle-lungs" checked> show lungs</label>'
            f'</div><div class="legend">{swatches}</div>'
            '<div class="hint">Drag to rotate, scroll (or +/-) to zoom, double-click to reset. '
            "Letters at the edges: R/L right/left, A/P anterior/posterior, S/I superior/"
            "inferior of the patient.</div></div>"
        )
    if has_slices:
        parts.append(
            '<div class="viewer-box" id="slices">'
            '<canvas id="slice-canvas" aria-label="Axial CT slices with outlines"></canvas>'
            '<div class="controls"><input type="range" id="slice-slider" min="0" max="0" '
            'value="0" aria-label="slice"><span id="slice-label"></span>'
            '<label><input type="checkbox" id="toggle-outlines" checked> outlines</label></div>'
            '<div class="hint">Axial slices, lung window, patient\'s right on the left, anterior '
            "at the top. Drag the slider or scroll over the image.</div></div>"
        )
    if not parts:
        return ""
    return (
        '<section id="views"><h2>Interactive views</h2>'
        f'<div class="viewers">{"".join(parts)}</div></section>'
    )


def _figures(ctx: Mapping[str, Any], figures: Mapping[str, bytes]) -> str:
    items = []
    for f in ctx["figures"]:
        data = figures.get(f["file"])
        if data is None:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        items.append(
            f'<figure><img src="{uri}" alt="{e(f["caption"])}">'
            f"<figcaption>{e(f['caption'])}</figcaption></figure>"
        )
    if not items:
        return ""
    return f'<section id="figures"><h2>Figures</h2>{"".join(items)}</section>'


def render_html(
    ctx: Mapping[str, Any],
    *,
    figures: Mapping[str, bytes] | None = None,
    mesh_data: Mapping[str, Any] | None = None,
    slice_data: Mapping[str, Any] | None = None,
) -> str:
    """The whole page as a string (pure: the caller writes it)."""
    figures = figures or {}
    legend = [
        (m["name"], "#" + "".join(f"{round(c * 255):02x}" for c in m["color"]))
        for m in (mesh_data or {}).get("meshes", [])
    ]
    ids = ""
    if ctx["identifiers"]:
        ids = (
            f'<section id="identity"><h2>Patient and study</h2>{_kv(ctx["identifiers"])}</section>'
        )
    body = (
        ids
        + _summary(ctx)
        + _lesion_table(ctx)
        + _viewers(bool(mesh_data and mesh_data.get("meshes")), bool(slice_data), legend)
        + _figures(ctx, figures)
    )
    data_blocks = []
    if mesh_data and mesh_data.get("meshes"):
        data_blocks.append(
            f'<script type="application/json" id="mesh-data">{json_for_script(mesh_data)}</script>'
        )
    if slice_data:
        data_blocks.append(
            f'<script type="application/json" id="slice-data">{json_for_script(slice_data)}'
            "</script>"
        )
    version = ctx.get("version") or ""
    footer = (
        f"Made by lungspread {e(version)}. {e(ctx['identifiers_note'])} "
        "Everything in this page is embedded in this one file; it works offline."
    )
    return _template("report.html").substitute(
        title=e(ctx["title"]),
        subtitle=e(
            "Lung tumor spread: measurements, an imaging-only T-descriptor estimate, figures and "
            "3D views."
        ),
        generator=e(f"lungspread {version}".strip()),
        css=_asset("report.css"),
        body=body,
        footer=footer,
        data="\n".join(data_blocks),
        js=_asset("viewer.js").replace("</script", "<\\/script"),
    )


def write_html(path: str | Path, page: str) -> Path:
    from lungspread.export.files import atomic_write

    return atomic_write(Path(path), page.encode("utf-8"))

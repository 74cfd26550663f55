"""PNG figures: per-lesion orthogonal views, an axial montage and a 3D rendering (matplotlib Agg).

Every figure is made on its own :class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot,
no global state) and returned as PNG bytes. Images follow the radiological convention of
:mod:`lungspread.report.display` (patient's right on the image's left in axial and coronal
views), carry orientation letters, a scale bar in mm, and the true physical aspect ratio.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lungspread.export.structures import Structure, format_ml
from lungspread.report.display import LUNG_WINDOW_HU, DisplayGrid, View, nice_length_mm, window
from lungspread.volume import Volume

_DPI = 100
_BG = "#0b0d12"
_FG = "#f2f2f2"


def _new_figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, facecolor=_BG)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor=fig.get_facecolor())
    return buf.getvalue()


def _outline_text(ax: Any, x: float, y: float, text: str, **kw: Any) -> None:
    from matplotlib import patheffects

    t = ax.text(x, y, text, color=_FG, **kw)
    t.set_path_effects([patheffects.withStroke(linewidth=3, foreground="black")])


def _letters(ax: Any, view: View, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """Orientation letters at the middle of each edge of the visible region."""
    left, right, top, bottom = view.letters
    x0, x1 = xlim
    y_top, y_bottom = ylim[1], ylim[0]  # ylim is (bottom, top) with y downwards
    xm, ym = (x0 + x1) / 2, (y_top + y_bottom) / 2
    dx, dy = 0.03 * (x1 - x0), 0.04 * (y_bottom - y_top)
    kw: dict[str, Any] = {"fontsize": 12, "fontweight": "bold", "ha": "center", "va": "center"}
    _outline_text(ax, x0 + dx, ym, left, **kw)
    _outline_text(ax, x1 - dx, ym, right, **kw)
    _outline_text(ax, xm, y_top + dy, top, **kw)
    _outline_text(ax, xm, y_bottom - dy, bottom, **kw)


def _scale_bar(ax: Any, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    x0, x1 = xlim
    y_top, y_bottom = ylim[1], ylim[0]
    width = x1 - x0
    length = nice_length_mm(width)
    height = y_bottom - y_top
    xe = x1 - 0.06 * width
    ys = y_bottom - 0.09 * height
    ax.plot([xe - length, xe], [ys, ys], color="white", linewidth=3, solid_capstyle="butt")
    _outline_text(
        ax,
        xe - length / 2,
        ys - 0.025 * height,
        f"{length:g} mm",
        fontsize=9,
        ha="center",
        va="bottom",
    )


def _contours(ax: Any, view: View, mask: np.ndarray, color: Any, **kw: Any) -> None:
    if not mask.any():
        return
    h, w = mask.shape
    xs = (np.arange(w) + 0.5) * view.pixel_mm[0]
    ys = (np.arange(h) + 0.5) * view.pixel_mm[1]
    ax.contour(xs, ys, mask.astype(np.float32), levels=[0.5], colors=[color], **kw)


def _label_volume(grid: DisplayGrid, structures: Sequence[Structure], kind: str) -> np.ndarray:
    """Canonical label map: structure ``n`` (1-based, in list order) of the given kind."""
    labels = np.zeros(grid.reference.shape, dtype=np.int16)
    for n, s in enumerate([s for s in structures if s.kind == kind], start=1):
        view = labels[s.bbox]
        view[s.crop] = n
    return grid.canonical(labels)


class _Scene:
    """The CT and masks in canonical order, shared by the figures of one report."""

    def __init__(self, ct: Volume, structures: Sequence[Structure]) -> None:
        self.grid = DisplayGrid(ct)
        self.ct = self.grid.canonical(np.asarray(ct.array))
        self.lungs = [s for s in structures if s.kind == "lung"]
        self.lesions = [s for s in structures if s.kind == "lesion"]
        self.lung_labels = _label_volume(self.grid, structures, "lung")
        self.lesion_labels = _label_volume(self.grid, structures, "lesion")

    def centre(self, lesion: Structure) -> np.ndarray:
        """Canonical voxel index of the lesion's centre (its voxel nearest to the centroid)."""
        n = self.lesions.index(lesion) + 1
        idx = np.argwhere(self.lesion_labels == n)
        c = idx.mean(axis=0)
        nearest = idx[np.argmin(((idx - c) ** 2).sum(axis=1))]
        out: np.ndarray = nearest
        return out

    def draw(
        self,
        ax: Any,
        view_name: str,
        index: int,
        focus: Structure | None = None,
        zoom: tuple[float, float, float] | None = None,
        letters: bool = True,
        scale_bar: bool = True,
    ) -> View:
        """One panel. ``zoom`` = (x_mm, y_mm, half_width_mm) of the visible square."""
        ct_view = self.grid.view(self.ct, view_name, index)
        img = window(ct_view.image, *LUNG_WINDOW_HU)
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, extent=ct_view.extent, interpolation="bilinear")
        lung_view = self.grid.view(self.lung_labels, view_name, index).image
        for n, s in enumerate(self.lungs, start=1):
            _contours(ax, ct_view, lung_view == n, s.color, linewidths=1.3)
        lesion_view = self.grid.view(self.lesion_labels, view_name, index).image
        for n, s in enumerate(self.lesions, start=1):
            lw = 2.0 if (focus is None or s is focus) else 1.2
            style = "solid" if (focus is None or s is focus) else "dashed"
            _contours(ax, ct_view, lesion_view == n, s.color, linewidths=lw, linestyles=style)
        w, h = ct_view.size_mm
        if zoom is not None:
            x, y, half = zoom
            xlim = (x - half, x + half)
            ylim = (y + half, y - half)
        else:
            xlim, ylim = (0.0, w), (h, 0.0)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_facecolor("black")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#555")
        if letters:
            _letters(ax, ct_view, xlim, ylim)
        if scale_bar:
            _scale_bar(ax, xlim, ylim)
        return ct_view


def _fmt_mm(value: Any) -> str | None:
    if isinstance(value, (int, float)) and np.isfinite(value):
        return f"{float(value):.0f} mm" if value >= 10 else f"{float(value):.1f} mm"
    return None


def lesion_title(lesion: Structure) -> str:
    """``L1 — tumor 7.8 mL, longest axial diameter 31 mm, left lung, upper zone``."""
    parts = [f"{lesion.lesion_id}: tumor {format_ml(lesion.volume_ml)}"]
    recist = _fmt_mm(lesion.report.get("recist_diameter_mm"))
    if recist:
        parts.append(f"longest axial diameter {recist}")
    side = lesion.report.get("side")
    zone = lesion.report.get("zone")
    if side in ("right", "left"):
        where = f"{side} lung"
        if isinstance(zone, str) and zone:
            where += f", {zone} zone"
        parts.append(where)
    elif side == "outside_lungs":
        parts.append("outside the lungs")
    return ", ".join(parts)


def _legend(fig: Any, scene: _Scene, focus: Structure | None) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for s in scene.lesions:
        is_focus = focus is None or s is focus
        handles.append(
            Line2D(
                [],
                [],
                color=s.color,
                linewidth=2.0 if is_focus else 1.2,
                linestyle="-" if is_focus else "--",
                label=s.name + (" (this lesion)" if focus is not None and s is focus else ""),
            )
        )
        if len(handles) >= 6:
            break
    for s in scene.lungs:
        handles.append(Line2D([], [], color=s.color, linewidth=1.0, label=f"{s.name} outline"))
    if handles:
        leg = fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(4, len(handles)),
            frameon=False,
            fontsize=10,
            labelcolor=_FG,
        )
        leg.set_zorder(5)


def lesion_figure(scene: _Scene, lesion: Structure) -> bytes:
    """Axial, coronal and sagittal views through the lesion's centre: overview row, zoom row."""
    fig = _new_figure(13.5, 9.6)
    c = scene.centre(lesion)
    ci, cj, ck = (int(v) for v in c)
    diameter = lesion.report.get("max_diameter_mm")
    extent_mm = max(
        (sl.stop - sl.start) * sp
        for sl, sp in zip(lesion.bbox, scene.grid.reference.spacing, strict=True)
    )
    size = (
        float(diameter)
        if isinstance(diameter, (int, float)) and np.isfinite(diameter)
        else extent_mm
    )
    half = max(25.0, 1.5 * size)
    views = (("axial", ck), ("coronal", cj), ("sagittal", ci))
    grid_spec = fig.add_gridspec(
        2, 3, left=0.01, right=0.99, top=0.88, bottom=0.08, wspace=0.03, hspace=0.12
    )
    for col, (name, index) in enumerate(views):
        ax_over = fig.add_subplot(grid_spec[0, col])
        v = scene.draw(ax_over, name, index, focus=lesion)
        x, y = scene.grid.display_point(name, c)
        from matplotlib.patches import Rectangle

        ax_over.add_patch(
            Rectangle(
                (x - half, y - half),
                2 * half,
                2 * half,
                fill=False,
                edgecolor="yellow",
                linewidth=1.0,
                linestyle=":",
            )
        )
        axis_name = {"axial": "z", "coronal": "y", "sagittal": "x"}[name]
        ax_over.set_title(
            f"{name.capitalize()} ({axis_name} = {v.position_mm:.1f} mm)", color=_FG, fontsize=11
        )
        ax_zoom = fig.add_subplot(grid_spec[1, col])
        scene.draw(ax_zoom, name, index, focus=lesion, zoom=(x, y, half))
        ax_zoom.set_title(
            f"{name.capitalize()}, zoomed (dotted box above)", color="#bbbbbb", fontsize=10
        )
    fig.suptitle(lesion_title(lesion), color=_FG, fontsize=14, fontweight="bold", y=0.975)
    fig.text(
        0.5,
        0.93,
        "Lung window (W 1500, L -600 HU). Letters: R/L right/left, A/P "
        "anterior/posterior, S/I superior/inferior (patient's right on the image's left).",
        color="#bbbbbb",
        fontsize=9.5,
        ha="center",
    )
    _legend(fig, scene, lesion)
    return _png(fig)


def montage_figure(scene: _Scene, max_tiles: int = 16) -> bytes | None:
    """Axial slices that contain tumor (evenly spread when there are more than ``max_tiles``)."""
    if not scene.lesions:
        return None
    has_tumor = np.nonzero((scene.lesion_labels > 0).any(axis=(0, 1)))[0]
    total = len(has_tumor)
    if total > max_tiles:
        picks = np.unique(np.round(np.linspace(0, total - 1, max_tiles)).astype(int))
        slices = has_tumor[picks]
    else:
        slices = has_tumor
    # crop: the tumor's in-plane box (display mm), squared, with a margin
    idx = np.argwhere(scene.lesion_labels > 0)
    pts = np.array([scene.grid.display_point("axial", p) for p in (idx.min(0), idx.max(0))])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    half = max(30.0, 0.5 * float(np.max(hi - lo)) + 15.0)
    n = len(slices)
    cols = int(min(4, n))
    rows = int(np.ceil(n / cols))
    tile = 3.2
    fig = _new_figure(cols * tile + 0.2, rows * (tile + 0.35) + 1.3)
    top = 1 - 0.95 / (rows * (tile + 0.35) + 1.3)
    bottom = 0.45 / (rows * (tile + 0.35) + 1.3)
    gs = fig.add_gridspec(
        rows, cols, left=0.01, right=0.99, top=top, bottom=bottom, wspace=0.04, hspace=0.14
    )
    for t, k in enumerate(slices):
        ax = fig.add_subplot(gs[t // cols, t % cols])
        v = scene.draw(
            ax,
            "axial",
            int(k),
            zoom=(float(centre[0]), float(centre[1]), half),
            letters=True,
            scale_bar=t == 0,
        )
        present = np.unique(scene.lesion_labels[:, :, int(k)])
        ids = [scene.lesions[p - 1].lesion_id or "" for p in present.tolist() if p > 0]
        ax.set_title(f"z = {v.position_mm:.1f} mm: {', '.join(ids)}", color=_FG, fontsize=10)
    shown = f"{n} of {total}" if total > n else f"all {total}"
    fig.suptitle(
        f"Axial slices with tumor ({shown}), from inferior to superior",
        color=_FG,
        fontsize=13,
        fontweight="bold",
    )
    _legend(fig, scene, None)
    return _png(fig)


def _shaded_colors(
    vertices: np.ndarray, faces: np.ndarray, color: Any, light: np.ndarray, alpha: float
) -> np.ndarray:
    """Per-face RGBA with two-sided Lambert shading (ambient 0.35)."""
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
    intensity = 0.35 + 0.65 * np.abs(normals @ light)
    rgba = np.empty((len(faces), 4))
    rgba[:, :3] = np.clip(np.asarray(color)[None, :] * intensity[:, None], 0, 1)
    rgba[:, 3] = alpha
    return rgba


def render_3d_figure(meshes: Sequence[tuple[Structure, np.ndarray, np.ndarray]]) -> bytes:
    """Translucent lungs and coloured lesions, seen from the front and from the patient's right.

    ``meshes``: (structure, vertices RAS mm, faces), already decimated to a few thousand faces.
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    fig = _new_figure(13.0, 6.8)
    if meshes:
        allv = np.concatenate([v for _, v, _ in meshes])
        lo, hi = allv.min(axis=0), allv.max(axis=0)
    else:
        lo, hi = np.zeros(3), np.ones(3)
    centre = (lo + hi) / 2
    half = float(np.max(hi - lo)) / 2 * 1.02 + 1e-3
    panels = (
        ("Front view (as facing the patient)", 90.0, ("R", "L", "S", "I")),
        ("From the patient's right side", 0.0, ("P", "A", "S", "I")),
    )
    for p, (title, azim, letters) in enumerate(panels):
        ax = fig.add_subplot(1, 2, p + 1, projection="3d", computed_zorder=True)
        ax.set_facecolor(_BG)
        ax.set_proj_type("ortho")
        ax.view_init(elev=0.0, azim=azim)
        # camera direction in RAS for this azimuth (elevation 0), light from above-left of it
        toward_camera = np.array([np.cos(np.radians(azim)), np.sin(np.radians(azim)), 0.0])
        light = toward_camera + np.array([0.0, 0.0, 0.6])
        light /= np.linalg.norm(light)
        for s, v, f in sorted(meshes, key=lambda m: m[0].kind != "lung"):
            lung = s.kind == "lung"
            colors = _shaded_colors(v, f, s.color, light, 0.13 if lung else 1.0)
            coll = Poly3DCollection(v[f], facecolors=colors, edgecolors="none", linewidths=0)
            ax.add_collection3d(coll)
        for s, v, _ in meshes:
            if s.kind == "lesion":
                c = v.mean(axis=0)
                ax.text(
                    c[0],
                    c[1],
                    c[2] + 0.04 * half * 2,
                    f" {s.lesion_id}",
                    color=_FG,
                    fontsize=11,
                    fontweight="bold",
                    zorder=10,
                )
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.3)
        ax.set_axis_off()
        ax.set_title(title, color=_FG, fontsize=12)
        left, right, top, bottom = letters
        for text, (x, y) in (
            (left, (0.1, 0.5)),
            (right, (0.9, 0.5)),
            (top, (0.5, 0.93)),
            (bottom, (0.5, 0.05)),
        ):
            ax.text2D(
                x,
                y,
                text,
                transform=ax.transAxes,
                color=_FG,
                fontsize=13,
                fontweight="bold",
                ha="center",
                va="center",
            )
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            marker="s",
            linestyle="none",
            markersize=11,
            color=(*s.color, 0.45 if s.kind == "lung" else 1.0),
            label=s.name,
        )
        for s, _, _ in meshes
    ][:10]
    if handles:
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(5, len(handles)),
            frameon=False,
            fontsize=10,
            labelcolor=_FG,
        )
    fig.suptitle(
        "3D view: lungs (translucent) and tumor lesions", color=_FG, fontsize=14, fontweight="bold"
    )
    fig.subplots_adjust(left=0.0, right=1.0, top=0.9, bottom=0.08, wspace=0.0)
    return _png(fig)


def make_figures(
    ct: Volume,
    structures: Sequence[Structure],
    meshes: Sequence[tuple[Structure, np.ndarray, np.ndarray]] | None = None,
    max_lesion_figures: int = 12,
) -> dict[str, bytes]:
    """All figures as ``{file name: PNG bytes}``: ``lesion_<id>.png`` for each of the
    ``max_lesion_figures`` largest lesions, ``axial_montage.png`` (if there is tumor) and
    ``render_3d.png`` (if meshes are given)."""
    scene = _Scene(ct, structures)
    out: dict[str, bytes] = {}
    for s in scene.lesions[:max_lesion_figures]:  # largest first
        out[f"{s.file_stem}.png"] = lesion_figure(scene, s)
    montage = montage_figure(scene)
    if montage is not None:
        out["axial_montage.png"] = montage
    if meshes:
        out["render_3d.png"] = render_3d_figure(meshes)
    return out

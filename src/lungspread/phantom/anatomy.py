"""The chest: body wall, bones, mediastinum, diaphragm, upper abdomen and the two lung regions.

Everything is an analytic shape in the anatomical frame (mm; +x the patient's right, +y
anterior, +z superior; origin on the midline, at the carina). The body and the chest wall are
described in polar coordinates around the body's axis: a body radius ``R(theta, z)`` and,
inside it, layers at given depths (skin, fat, muscle, ribs, pleura). Mediastinal organs are
tubes and ellipsoids; the lungs are what is left of the thoracic cavity once the mediastinum
(grown by a fat margin), the spine and everything below the diaphragm domes are removed.

:func:`sample_anatomy` draws one patient from a seed; :func:`render_anatomy` paints it onto a
grid (HU plus the lung, body and airway labels); :func:`plan_fields` evaluates the lung and
cavity distance fields on a coarse grid for the vessel trees and for placing tumors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lungspread.phantom.geometry import (
    F32,
    Grid,
    coverage,
    lerp_into,
    rotation_from_axis,
    smin,
)
from lungspread.phantom.shapes import Blob, Custom, SdfFn, Shape, Tube, paint, union_into

#: Typical tissue values (HU) around which each patient's values are drawn.
BASE_HU: dict[str, tuple[float, float]] = {
    "fat": (-105.0, 10.0),
    "skin": (20.0, 10.0),
    "muscle": (45.0, 6.0),
    "blood": (40.0, 5.0),
    "myocardium": (42.0, 5.0),
    "liver": (58.0, 6.0),
    "spleen": (48.0, 5.0),
    "kidney": (32.0, 5.0),
    "thyroid": (100.0, 12.0),
    "node": (35.0, 6.0),
    "cortex": (850.0, 120.0),
    "marrow": (230.0, 50.0),
    "cartilage": (130.0, 25.0),
    "disc": (85.0, 10.0),
    "csf": (15.0, 5.0),
    "lung": (-862.0, 16.0),
    "airway_wall": (-10.0, 20.0),
    "fluid": (12.0, 5.0),
    "table": (250.0, 60.0),
}


def _sig(v: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(v, dtype=np.float64))))


@dataclass
class Anatomy:
    """One synthetic patient. Lengths in mm in the anatomical frame."""

    sw: float  # lateral scale
    sap: float  # antero-posterior scale
    sz: float  # cranio-caudal scale
    fat_mm: float
    muscle_mm: float
    z_apex: tuple[float, float]  # right, left lung apex heights
    z_dome: tuple[float, float]  # right, left diaphragm dome heights
    hu: dict[str, float]
    contrast: bool
    lung_gradient_hu: float
    breasts: bool
    table: bool
    table_gap: float
    z_top: float
    fissure_z: tuple[float, float]  # top of the scanned range (anatomical z)
    mediastinum: list[tuple[Shape, str, float]] = field(
        default_factory=list
    )  # shape, tissue, fat margin
    lumens: list[Shape] = field(default_factory=list)  # trachea and main bronchi lumens (air)
    abdomen: list[tuple[Shape, str]] = field(default_factory=list)
    extras: list[tuple[Shape, str]] = field(default_factory=list)  # bones outside spine/ribs
    hila: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- body outline
    @property
    def half_width(self) -> float:
        return 160.0 * self.sw

    @property
    def half_depth(self) -> float:
        return 116.0 * self.sap

    def body_scale(self, z: np.ndarray) -> np.ndarray:
        """Cross-section scale along z (slightly smaller AP in the upper chest)."""
        zz = np.asarray(z, np.float64)
        return 1.0 - 0.05 * _sig((zz - 60 * self.sz) / 20) + 0.02 * _sig((-zz - 140 * self.sz) / 20)

    def shoulders(self, z: np.ndarray) -> np.ndarray:
        """Extra half-width (mm) of the shoulder girdle at the top of the scan."""
        zz = np.asarray(z, np.float64)
        return 24.0 * self.sw * _sig((zz - 78 * self.sz) / 12)

    def cavity_dims(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Half-width and half-depth (mm) of the rib cage interior at height z.

        The cage is widest in the lower chest and narrows like a cone towards the apices.
        """
        zz = np.asarray(z, np.float64)
        taper = _sig((zz - 42 * self.sz) / 26)
        width = 143.0 * self.sw * (1.0 - 0.5 * taper)
        depth = 84.0 * self.sap * (1.0 - 0.12 * taper)
        return width, depth

    @property
    def cavity_y(self) -> float:
        return 15.0 * self.sap

    def fat_scale(self, z: np.ndarray) -> np.ndarray:
        zz = np.asarray(z, np.float64)
        return 1.0 + 0.4 * _sig((-zz - 110 * self.sz) / 20)

    def pectoral(self, z: np.ndarray) -> np.ndarray:
        zz = np.asarray(z, np.float64)
        return np.asarray(_sig((zz + 30 * self.sz) / 25))

    def spine_y(self, z: np.ndarray) -> np.ndarray:
        """Antero-posterior position of the vertebral body centre (thoracic kyphosis)."""
        zz = np.asarray(z, np.float64)
        return -35.0 * self.sap + 7.0 * ((zz + 40 * self.sz) / (150 * self.sz)) ** 2

    def spine_r(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zz = np.asarray(z, np.float64)
        grow = np.clip((60 * self.sz - zz) / (260 * self.sz), 0, 1)
        return 15.5 + 5.0 * grow, 13.0 + 4.0 * grow

    def apex_radius(self, z: np.ndarray, side: int) -> np.ndarray:
        """Radius (mm) of the lung apex cap at height z (side 0 right, 1 left)."""
        zz = np.asarray(z, np.float64)
        za = self.z_apex[side]
        zs = za - 62 * self.sz
        t = np.clip((zz - zs) / (za - zs), 0.0, 1.0)
        r = 72.0 * np.sqrt(np.clip(1 - t**2, 0, 1))
        r = np.where(zz < zs, 72.0 + 1.6 * (zs - zz), r)
        return np.where(zz > za, -30.0, r)

    def rib_top(self) -> float:
        return max(self.z_apex) - 12 * self.sz

    @property
    def vertebra_pitch(self) -> float:
        return 24.5 * self.sz


def _tube(
    rng: np.random.Generator,
    scale: np.ndarray,
    pts: list[tuple[float, float, float]],
    radii: float | list[float],
    jitter: float = 3.0,
) -> Tube:
    p = np.asarray(pts, np.float64) * scale
    p += rng.normal(0, jitter, size=3)  # the whole structure moves together
    r = np.asarray(radii, np.float64) * rng.uniform(0.9, 1.12)
    return Tube.of(p, r)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient: body habitus, organ positions and sizes, tissue values."""
    sw = float(rng.uniform(0.88, 1.08))
    sap = float(np.clip(sw + rng.normal(0, 0.05), 0.86, 1.12))
    sz = float(rng.uniform(0.9, 1.08))
    fat = float(np.clip(rng.gamma(4.0, 4.0), 5.0, 38.0))
    muscle = float(rng.uniform(9.0, 15.0))
    contrast = bool(rng.random() < 0.25)
    hu = {k: float(rng.normal(m, s)) for k, (m, s) in BASE_HU.items()}
    if contrast:
        hu["blood"] = float(rng.uniform(130, 220))
        hu["myocardium"] = float(rng.uniform(90, 120))
        hu["liver"] = float(rng.uniform(95, 125))
        hu["spleen"] = float(rng.uniform(100, 130))
        hu["kidney"] = float(rng.uniform(140, 200))
    za_r = float((112 + rng.normal(0, 6)) * sz)
    z_apex = (za_r, za_r + float(rng.normal(0, 4)))
    zd_r = float((-108 + rng.normal(0, 7)) * sz)
    z_dome = (zd_r, zd_r - float(rng.uniform(6, 24)) * sz)
    an = Anatomy(
        sw=sw,
        sap=sap,
        sz=sz,
        fat_mm=fat,
        muscle_mm=muscle,
        z_apex=z_apex,
        z_dome=z_dome,
        hu=hu,
        contrast=contrast,
        lung_gradient_hu=float(rng.uniform(15, 45)),
        breasts=bool(rng.random() < 0.4),
        table=bool(rng.random() < 0.85),
        table_gap=float(rng.uniform(4.0, 35.0)),
        z_top=max(z_apex) + float(rng.uniform(6, 24)),
        fissure_z=(float(rng.normal(38, 8)), float(rng.normal(45, 8))),
    )
    _build_structures(an, rng)
    return an


def _build_structures(an: Anatomy, rng: np.random.Generator) -> None:
    s = np.array([an.sw, an.sap, an.sz])
    blood = "blood"

    def t(pts: list[tuple[float, float, float]], r: float | list[float], j: float = 3.0) -> Tube:
        return _tube(rng, s, pts, r, j)

    med = an.mediastinum
    # Airways (the lumen is painted separately as air, the tube itself is the wall).
    tr_r = float(rng.uniform(7.5, 10.0))
    carina = np.array([0.0, -12.0 * an.sap, 0.0])
    trachea = Tube.of(np.stack([np.array([1.0, -4.0 * an.sap, an.z_top + 20]), carina]), tr_r)
    rmb_end = np.array([33.0 * an.sw, -10.0 * an.sap, -26.0 * an.sz]) + rng.normal(0, 2, 3)
    lmb_end = np.array([-44.0 * an.sw, -13.0 * an.sap, -27.0 * an.sz]) + rng.normal(0, 2, 3)
    rmb = Tube.of(
        np.stack([carina, np.array([18.0 * an.sw, -12.0 * an.sap, -14.0 * an.sz]), rmb_end]),
        [tr_r * 0.8, 7.0, 6.0],
    )
    lmb = Tube.of(
        np.stack([carina, np.array([-22.0 * an.sw, -14.0 * an.sap, -12.0 * an.sz]), lmb_end]),
        [tr_r * 0.75, 6.0, 5.5],
    )
    for tube, wall in ((trachea, 2.2), (rmb, 1.8), (lmb, 1.7)):
        med.append((Tube.of(tube.points, tube.radii + wall), "airway_wall", 3.0))
        an.lumens.append(tube)
    an.hila["airway_root"] = {"right": rmb_end, "left": lmb_end}
    an.hila["airway_dir"] = {
        "right": (rmb_end - rmb.points[1]) / np.linalg.norm(rmb_end - rmb.points[1]),
        "left": (lmb_end - lmb.points[1]) / np.linalg.norm(lmb_end - lmb.points[1]),
    }
    an.hila["airway_radius"] = {"right": 6.0, "left": 5.5}

    # Aorta: ascending, arch, descending beside the spine.
    yv = float(an.spine_y(np.array([0.0]))[0]) / an.sap
    aorta = t(
        [
            (6, 16, -62),
            (9, 22, -25),
            (6, 20, 14),
            (0, 10, 31),
            (-14, -8, 35),
            (-24, -24, 25),
            (-27, yv + 10, 5),
            (-24, yv + 13, -60),
            (-15, yv + 17, -130),
            (-5, yv + 24, -240),
        ],
        [15, 15.5, 14, 13, 12.5, 12, 12, 11.5, 11, 10.5],
        4.0,
    )
    med.append((aorta, blood, 4.0))
    med.append((t([(3, 12, 34), (12, 5, 70), (24, 0, 100), (45, -5, 150)], 6.0), blood, 3.0))
    med.append((t([(-8, 5, 36), (-14, 0, 90), (-18, -2, 160)], 4.5), blood, 3.0))
    med.append(
        (t([(-20, -14, 34), (-30, -16, 90), (-60, -16, 128), (-110, -12, 132)], 5.5), blood, 3.0)
    )
    med.append((t([(24, 0, 100), (60, -6, 128), (110, -12, 132)], 5.0), blood, 3.0))
    # Systemic veins.
    med.append((t([(28, 16, 55), (26, 15, 0), (24, 12, -45)], [9.0, 10.0, 10.5]), blood, 3.0))
    med.append((t([(42, 8, 130), (30, 15, 55)], 7.0), blood, 3.0))
    med.append((t([(-65, 14, 105), (-32, 24, 68), (26, 18, 54)], 5.5), blood, 2.0))
    ivc = t([(20, -6, -85), (19, -14, -240)], 12.0)
    # Pulmonary trunk and arteries to the hila.
    rpa_end = np.array([34.0 * an.sw, 2.0 * an.sap, -22.0 * an.sz]) + rng.normal(0, 2, 3)
    lpa_end = np.array([-42.0 * an.sw, -4.0 * an.sap, -12.0 * an.sz]) + rng.normal(0, 2, 3)
    pt = Tube.of(
        np.array([(-12, 46, -58), (-15, 36, -32), (-8, 18, -15)], float) * s, [14.0, 14.0, 12.5]
    )
    med.append((pt, blood, 4.0))
    med.append(
        (Tube.of([pt.points[-1], np.array([12, 6, -18]) * s, rpa_end], [11, 10, 9]), blood, 3)
    )
    med.append(
        (
            Tube.of(
                [pt.points[-1], np.array([-26, 10, -6]) * s, np.array([-38, 2, -6]) * s, lpa_end],
                [11, 10, 9.5, 9],
            ),
            blood,
            3,
        )
    )
    an.hila["artery_root"] = {"right": rpa_end, "left": lpa_end}
    an.hila["artery_radius"] = {"right": 9.0, "left": 9.0}
    # Left atrium and the pulmonary veins.
    la_c = np.array([-4.0, -10.0, -50.0]) * s
    med.append((Blob.of(la_c, [30, 17, 22]), blood, 4.0))
    vein_roots = {}
    for side, sx in (("right", 1.0), ("left", -1.0)):
        sup = np.array([36 * sx, 0.0, -34.0]) * s + rng.normal(0, 2, 3)
        inf = np.array([33 * sx, -18.0, -58.0]) * s + rng.normal(0, 2, 3)
        for end in (sup, inf):
            med.append((Tube.of([end, la_c + np.array([16 * sx, 0, 0])], [7.0, 8.0]), blood, 3.0))
        vein_roots[side] = (sup, inf)
    an.hila["vein_roots"] = vein_roots
    # Heart: an oblique ellipsoid, base at the atria, apex anterior, left and inferior.
    hs = float(rng.uniform(0.85, 1.08))
    axis = np.array([-0.62, 0.56, -0.45]) + rng.normal(0, 0.05, 3)
    hc = np.array([-24.0, 22.0, -88.0]) * s + rng.normal(0, 4, 3)
    heart = Blob.of(
        hc, np.array([58.0, 44.0, 40.0]) * hs, rotation_from_axis(axis, rng.uniform(0, 3))
    )
    med.append((heart, "myocardium", float(rng.uniform(4, 14))))
    if an.contrast:
        an.extras.append((Blob.of(hc, heart.radii * 0.6, heart.rotation), "blood"))
    # Esophagus (sometimes with a little air), thyroid, lymph nodes.
    eso = t(
        [(-5, yv + 26, an.z_top / an.sz + 20), (-7, yv + 28, -60), (-18, yv + 40, -125)], 8.0, 2
    )
    med.append((eso, "muscle", 3.0))
    if rng.random() < 0.35:
        an.extras.append((Tube.of(eso.points, float(rng.uniform(1.5, 4.0))), "air"))
    for sx in (1.0, -1.0):
        med.append((Blob.of(np.array([20 * sx, -1, 122]) * s, [10, 11, 24]), "thyroid", 2.0))
    for c in [(12, -2, 22), (0, -28, -14), (-16, 6, 6), (30, -6, -30), (-34, -10, -22)]:
        if rng.random() < 0.7:
            r = float(rng.uniform(3.5, 8.0))
            med.append(
                (Blob.of(np.array(c) * s + rng.normal(0, 3, 3), [r, r * 0.8, r]), "node", 2.0)
            )
    # Upper abdomen under the diaphragm.
    an.abdomen.append((ivc, "blood"))
    zl = an.z_dome[1]
    stomach_c = np.array([-52 * an.sw, 18 * an.sap, zl - 42 * an.sz]) + rng.normal(0, 4, 3)
    an.abdomen.append((Blob.of(stomach_c, [32, 42, 36]), "stomach"))
    an.hila["stomach"] = (stomach_c, float(rng.uniform(0.0, 0.7)))
    spleen_c = np.array([-82 * an.sw, -42 * an.sap, zl - 50 * an.sz]) + rng.normal(0, 4, 3)
    an.abdomen.append(
        (Blob.of(spleen_c, [20, 48, 40], rotation_from_axis([-0.5, -0.85, -0.2], 0.3)), "spleen")
    )
    for sx in (1.0, -1.0):
        kc = np.array([52 * sx * an.sw, -48 * an.sap, an.z_dome[0] - 120 * an.sz])
        an.abdomen.append((Blob.of(kc, [26, 24, 50]), "kidney"))
    # Clavicles.
    for sx in (1.0, -1.0):
        pts = np.array(
            [(20 * sx, 70, 92), (70 * sx, 64, 106), (120 * sx, 34, 114), (155 * sx, 5, 110)]
        )
        an.extras.append((Tube.of(pts * s, [8.0, 7.0, 7.0, 8.0]), "bone"))


# ---------------------------------------------------------------------------------------------
# In-plane precomputation


@dataclass
class Plane:
    """In-plane (j, i) arrays of a grid that do not depend on z."""

    xx: np.ndarray  # (1, ni)
    yy: np.ndarray  # (nj, 1)
    r: np.ndarray  # (nj, ni) distance from the body axis
    c2: np.ndarray  # cos^2 of the polar angle
    r0: np.ndarray  # body radius at scale 1
    tf: np.ndarray  # fat thickness
    tm: np.ndarray  # muscle thickness
    tm_pec: np.ndarray  # extra pectoral muscle thickness
    phi: np.ndarray  # angle from the posterior midline, 0..pi
    zdia: np.ndarray  # diaphragm height
    dia_norm: np.ndarray  # 1 / sqrt(1 + |grad zdia|^2)
    rc: np.ndarray  # distance from the rib cage axis
    rho_apex: tuple[np.ndarray, np.ndarray]  # distance from each apex axis
    lung_hu: np.ndarray  # (nj, 1) parenchyma HU (gravity gradient)
    fissures: tuple[np.ndarray, ...] = ()  # height (mm) of each fissure sheet, -1e4 where none

    def crop(self, jb: slice, ib: slice) -> Plane:
        """The same arrays restricted to rows ``jb`` and columns ``ib``."""

        def c(a: np.ndarray) -> np.ndarray:
            return a[jb if a.shape[0] > 1 else slice(None), ib if a.shape[1] > 1 else slice(None)]

        return Plane(
            c(self.xx),
            c(self.yy),
            c(self.r),
            c(self.c2),
            c(self.r0),
            c(self.tf),
            c(self.tm),
            c(self.tm_pec),
            c(self.phi),
            c(self.zdia),
            c(self.dia_norm),
            c(self.rc),
            (c(self.rho_apex[0]), c(self.rho_apex[1])),
            c(self.lung_hu),
        )


def make_plane(an: Anatomy, grid: Grid) -> Plane:
    xx = grid.x.astype(np.float64)[None, :]
    yy = grid.y.astype(np.float64)[:, None]
    r = np.sqrt(xx**2 + yy**2) + 1e-6
    c, s = xx / r, yy / r
    a, b_ant, b_post = an.half_width, an.half_depth, an.half_depth * 0.95
    p = np.where(yy > 0, 2.15, 2.6)
    b = np.where(yy > 0, b_ant, b_post)
    r0 = np.maximum(np.abs(c / a) ** p + np.abs(s / b) ** p, 1e-12) ** (-1.0 / p)
    if an.breasts:
        for sx in (1.0, -1.0):
            bump = np.exp(-(((xx - 75 * sx * an.sw) / 45) ** 2) - ((s - 0.8) / 0.3) ** 2)
            r0 = r0 + 18.0 * an.sap * bump * (s > 0)
    tf = an.fat_mm * (0.72 + 0.45 * c**2 + 0.15 * np.maximum(-s, 0))
    tm = an.muscle_mm * (0.7 + 0.45 * c**2) + 8.0 * np.maximum(-s, 0)
    tm = tm + 32.0 * an.sap * np.exp(-((xx / (55 * an.sw)) ** 2)) * np.maximum(-s, 0)
    tm_pec = 8.0 * np.maximum(s, 0) ** 2 * np.clip((np.abs(xx) - 20) / 30, 0, 1)
    phi = np.arccos(np.clip(-s, -1, 1))
    # Diaphragm: two domes, flat on top and falling steeply into the recesses (deepest behind).
    zdia = np.full(r.shape, -1e4)
    gx = np.zeros(r.shape)
    gy = np.zeros(r.shape)
    for zd, xd, yd in ((an.z_dome[0], 50.0, 14.0), (an.z_dome[1], -52.0, 8.0)):
        lx = 72.0 * an.sw
        ly = np.where(yy < yd * an.sap, 78.0, 100.0) * an.sap
        ux = (xx - xd * an.sw) / lx
        uy = (yy - yd * an.sap) / ly
        q = ux**2 + uy**2
        raw = 45.0 * an.sz * q + 40.0 * an.sz * q**2
        cap = 95.0 * an.sz  # the recesses end some 9 cm below the dome
        th = np.tanh(raw / cap)
        zz = zd - cap * th
        dq = (1 - th**2) * (45.0 * an.sz + 80.0 * an.sz * q)  # d(drop)/dq
        sel = zz > zdia
        zdia = np.where(sel, zz, zdia)
        gx = np.where(sel, -dq * 2 * ux / lx, gx)
        gy = np.where(sel, -dq * 2 * uy / ly, gy)
    dia_norm = 1.0 / np.sqrt(1 + gx**2 + gy**2)
    rho = tuple(
        np.sqrt((xx - sx * 47.0 * an.sw) ** 2 + ((yy + 12.0 * an.sap) * 1.1) ** 2)
        for sx in (1.0, -1.0)
    )
    lung_hu = an.hu["lung"] + an.lung_gradient_hu * np.clip(-(yy + 10) / 90.0, -0.6, 1.2)
    fissures = _fissures(an, xx, yy)
    f = np.float32
    return Plane(
        xx.astype(f),
        yy.astype(f),
        r.astype(f),
        (c**2).astype(f),
        r0.astype(f),
        tf.astype(f),
        tm.astype(f),
        tm_pec.astype(f),
        phi.astype(f),
        np.maximum(zdia, -1e4).astype(f),
        dia_norm.astype(f),
        (np.sqrt(xx**2 + (yy - an.cavity_y) ** 2) + 1e-3).astype(f),
        (rho[0].astype(f), rho[1].astype(f)),
        lung_hu.astype(f),
        tuple(fz.astype(f) for fz in fissures),
    )


# ---------------------------------------------------------------------------------------------
# Fields shared by rendering and planning


@dataclass
class Fields:
    depth: np.ndarray  # depth below the skin along the body radius (mm, >0 inside the body)
    tf: np.ndarray  # fat thickness (3D)
    sdf_cav: np.ndarray  # signed distance to the thoracic cavity (rib cage interior)
    sdf_env: np.ndarray  # signed distance to the mediastinal envelope (+ spine, septum)
    sdf_lung: np.ndarray  # signed distance to the lungs
    septum_x: float


def compute_fields(an: Anatomy, grid: Grid, plane: Plane) -> Fields:
    """Depth layers, the cavity, the mediastinal envelope and the lungs on ``grid``."""
    z = grid.z.astype(np.float64)
    zs = z.astype(F32)[:, None, None]
    rad = plane.r0[None] * an.body_scale(z).astype(F32)[:, None, None]
    rad += plane.c2[None] * an.shoulders(z).astype(F32)[:, None, None]
    depth = np.subtract(rad, plane.r[None], dtype=F32)
    del rad
    tf = plane.tf[None] * an.fat_scale(z).astype(F32)[:, None, None]
    # Rib cage interior: a superellipse narrowing upwards, never closer to the skin than the
    # fat, the muscles and the ribs allow.
    wc, dc = an.cavity_dims(z)
    u = (plane.xx[None] * (1.0 / wc).astype(F32)[:, None, None]) ** 2
    v = ((plane.yy[None] - F32(an.cavity_y)) * (1.0 / dc).astype(F32)[:, None, None]) ** 2
    rho_n = np.add(u, v)
    del u, v
    np.sqrt(rho_n, out=rho_n)
    np.maximum(rho_n, F32(1e-3), out=rho_n)
    sdf_cav = np.divide(F32(1.0), rho_n, out=rho_n)
    np.subtract(F32(1.0), sdf_cav, out=sdf_cav)
    sdf_cav *= plane.rc[None]
    wall = tf + plane.tm[None]
    wall += plane.tm_pec[None] * an.pectoral(z).astype(F32)[:, None, None]
    wall += F32(9.0)
    wall -= depth
    np.maximum(sdf_cav, wall, out=sdf_cav)
    del wall
    # Mediastinal envelope: organs grown by their fat margin, the spine and a midline septum.
    env = np.full(grid.shape, 1e4, dtype=F32)
    septum_x = -4.0 * an.sw
    box = grid.box((septum_x - 14, -200, -1e4), (septum_x + 14, 200, 1e4))
    if box is not None:
        _, _, xx = grid.mesh(box)
        zz, _, xx = grid.mesh(box)
        half = 1.2 + 10.0 * _sig((-zz.astype(np.float64) - 60 * an.sz) / 12)
        env[box] = np.minimum(env[box], np.abs(xx - F32(septum_x)) - half.astype(F32))
    union_into(env, grid, _spine_block(an), 0.0, 10.0)
    for shape, _tissue, margin in an.mediastinum:
        union_into(env, grid, shape, margin, 8.0)
    # Lungs: cavity minus envelope, above the diaphragm, below the apex caps.
    lung = np.maximum(sdf_cav, -env)
    if float(z.min()) < float(plane.zdia.max()) + 5:
        dia = (plane.zdia[None] - zs) * plane.dia_norm[None]
        np.maximum(lung, dia, out=lung)
        del dia
    rad_r, rad_l = an.apex_radius(z, 0), an.apex_radius(z, 1)
    if max(float(rad_r.min()), float(rad_l.min())) < 400:  # the caps matter near the apices
        apex = plane.rho_apex[0][None] - rad_r.astype(F32)[:, None, None]
        np.minimum(apex, plane.rho_apex[1][None] - rad_l.astype(F32)[:, None, None], out=apex)
        np.maximum(lung, apex, out=lung)
        del apex
    return Fields(depth, tf, sdf_cav, env, lung, septum_x)


def _spine_block(an: Anatomy) -> Custom:
    """Where the lungs cannot go: vertebral body and everything behind it near the midline."""

    def fn(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        z = zz.astype(np.float64)
        rx, ry = an.spine_r(z)
        yc = an.spine_y(z)
        front = (yc + ry + 3.0).astype(F32)
        half = (rx + 7.0).astype(F32)
        # rounded half-infinite slab: |x| < half, y < front
        qx = np.abs(xx) - half
        qy = yy - front
        out: np.ndarray = np.maximum(qx, qy)
        return out

    return Custom(np.array([-60.0, -250.0, -1e4]), np.array([60.0, 40.0, 1e4]), fn)


def plan_fields(
    an: Anatomy, z_range: tuple[float, float], step_mm: float = 4.0
) -> tuple[Grid, Fields]:
    """The fields on a coarse increasing grid covering the chest (for trees and tumors)."""
    lo = (-an.half_width - 40, -an.half_depth - 20, z_range[0])
    hi = (an.half_width + 40, an.half_depth + 30, z_range[1])
    grid = Grid.regular(lo, hi, step_mm)
    plane = make_plane(an, grid)
    return grid, compute_fields(an, grid, plane)


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass
class Labels:
    hu: np.ndarray  # float32 (k, j, i)
    lungs: np.ndarray  # uint8 0/1 right/2 left
    lung_frac: np.ndarray  # float16 lung coverage
    body: np.ndarray  # uint8
    airways: np.ndarray  # uint8 lumen of trachea, bronchi


def render_anatomy(an: Anatomy, grid: Grid, chunk_voxels: int = 700_000) -> Labels:
    """Paint the patient onto ``grid`` (slab by slab to keep memory small)."""
    nk = grid.shape[0]
    out = Labels(
        np.full(grid.shape, -1000.0, F32),
        np.zeros(grid.shape, np.uint8),
        np.zeros(grid.shape, np.float16),
        np.zeros(grid.shape, np.uint8),
        np.zeros(grid.shape, np.uint8),
    )
    w_in = float(min(grid.spacing[0], grid.spacing[1]))
    if an.table:
        _paint_table(an, grid, out.hu, w_in)
    plane = make_plane(an, grid)
    # Work only inside the in-plane box that holds the body.
    reach = plane.r0 * F32(1.03) + F32(an.shoulders(np.array([1e3]))[0] + 3 * w_in) - plane.r
    rows = np.nonzero((reach > 0).any(axis=1))[0]
    cols = np.nonzero((reach > 0).any(axis=0))[0]
    if len(rows) == 0 or len(cols) == 0:
        return out
    jb, ib = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    sub = Grid(grid.x[ib], grid.y[jb], grid.z)
    plane = plane.crop(jb, ib)
    step = max(1, chunk_voxels // (sub.shape[1] * sub.shape[2]))
    for k0 in range(0, nk, step):
        k1 = min(nk, k0 + step)
        _render_chunk(an, sub.chunk(k0, k1), plane, out, (slice(k0, k1), jb, ib))
    return out


def _render_chunk(
    an: Anatomy, g: Grid, plane: Plane, out: Labels, ks: tuple[slice, slice, slice]
) -> None:
    hu_tab = an.hu
    w = float(np.sqrt(np.mean(np.square(g.spacing))))  # partial-volume ramp width
    w_in = float(min(g.spacing[0], g.spacing[1]))
    fields = compute_fields(an, g, plane)
    d = fields.depth
    z = g.z.astype(np.float64)
    zs = g.z.astype(F32)[:, None, None]
    hu = out.hu[ks]
    # Body: skin, fat, muscle, chest wall, cavity.
    body_frac = coverage(-d, w_in)
    lerp_into(hu, body_frac, hu_tab["skin"])
    np.greater(d, 0, out=out.body[ks], casting="unsafe")
    del body_frac
    lerp_into(hu, coverage(F32(2.2) - d, w_in), hu_tab["fat"])
    lerp_into(hu, coverage(fields.tf - d, w_in), hu_tab["muscle"])
    cav = coverage(fields.sdf_cav, w_in)
    neck = _sig((z - (min(an.z_apex) - 10)) / 8).astype(F32)[:, None, None]
    cav_hu = hu_tab["fat"] + neck * F32(hu_tab["muscle"] - 15 - hu_tab["fat"])
    lerp_into(hu, cav, cav_hu)
    # Below the diaphragm: muscle band then abdominal organs.
    zd = plane.zdia[None] - zs  # >0 below the dome surface
    if float(zd.max()) > -5:
        band = coverage(F32(-1.0) - zd * plane.dia_norm[None], w)
        band *= cav
        lerp_into(hu, band, hu_tab["muscle"])
        below = coverage(F32(4.5) - zd * plane.dia_norm[None], w)
        below *= cav
        lerp_into(hu, below, hu_tab["fat"] + 10)
        _paint_abdomen(an, g, hu, plane, below, w)
        del band, below
    del zd
    # Spine (before the mediastinum so the aorta lies on it), mediastinal organs.
    _paint_spine(an, g, hu, w)
    for shape, tissue, _margin in an.mediastinum:
        paint(hu, g, shape, hu_tab[tissue], w)
    for shape, tissue in an.extras:
        if tissue == "air":
            paint(hu, g, shape, -990.0, w)
        elif tissue == "blood":
            paint(hu, g, shape, hu_tab["blood"], w)
    air = out.airways[ks]
    for lumen in an.lumens:
        paint(hu, g, lumen, -1000.0, w, mask_out=air)
    # Lungs.
    lf = coverage(fields.sdf_lung, w)
    lerp_into(hu, lf, plane.lung_hu[None])
    out.lung_frac[ks] = lf
    side = np.where(plane.xx > F32(fields.septum_x), 1, 2).astype(np.uint8)
    np.multiply(fields.sdf_lung < 0, side[None], out=out.lungs[ks], casting="unsafe")
    _paint_fissures(g, hu, plane, lf, w)
    del lf
    # Bones of the chest wall.
    _paint_ribs(an, g, hu, plane, fields, w)
    _paint_sternum(an, g, hu, plane, w)
    _paint_scapulae(an, g, hu, plane, fields, w)
    for shape, tissue in an.extras:
        if tissue == "bone":
            paint(hu, g, shape, hu_tab["cortex"] * 0.8, w)
            paint(hu, g, shape, hu_tab["marrow"], w, offset_mm=1.6)


def _fissures(an: Anatomy, xx: np.ndarray, yy: np.ndarray) -> list[np.ndarray]:
    """Heights of the interlobar fissures: both oblique fissures and the right horizontal one.

    The oblique fissures run from high at the back (about T4) to the diaphragm in front; the
    horizontal fissure leaves the right oblique fissure forwards at about the hilum.
    """
    y = yy / an.sap
    x = np.broadcast_to(xx / an.sw, np.broadcast_shapes(xx.shape, yy.shape))
    right = x > 0
    out = []
    for sign, z0 in ((1.0, an.fissure_z[0]), (-1.0, an.fissure_z[1])):
        zf = (z0 - 1.2 * (y + 60.0) + 0.08 * np.abs(x) + 6 * np.sin(x / 40.0)) * an.sz
        out.append(np.where((x * sign) > 0, zf, -1e4))
    zo = out[0]
    zh = (-18.0 + 0.06 * y + 0.05 * np.abs(x)) * an.sz + 0 * x
    out.append(np.where(right & (zh > zo), zh, -1e4))
    return out


def _paint_fissures(g: Grid, hu: np.ndarray, plane: Plane, lung_frac: np.ndarray, w: float) -> None:
    """Thin pleural sheets between the lobes: a faint line about a voxel wide."""
    if not plane.fissures:
        return
    zs = g.z.astype(F32)[:, None, None]
    sigma = 0.5 * w
    peak = 320.0 * min(1.0, 0.9 / w)
    for fz in plane.fissures:
        d = np.abs(zs - fz[None])
        kk, jj, ii = np.nonzero(d < F32(2.5 * sigma / 0.6))
        if len(kk) == 0:
            continue
        # vertical distance -> distance normal to a sheet inclined at about 50 degrees
        dn = d[kk, jj, ii] * F32(0.64)
        wt = lung_frac[kk, jj, ii].astype(F32)
        hu[kk, jj, ii] += F32(peak) * np.exp(-0.5 * (dn / F32(sigma)) ** 2) * wt


def _paint_table(an: Anatomy, grid: Grid, hu: np.ndarray, w: float) -> None:
    """A curved carbon-fibre table top (two thin shells around a foam core) under the back."""
    y_top = -an.half_depth * 0.95 * float(np.min(an.body_scale(grid.z))) - an.table_gap
    box = grid.box((-260, y_top - 60, -1e4), (260, y_top + 30, 1e4))
    if box is None:
        return
    _, yy, xx = grid.mesh(box)
    curve = F32(y_top) + (xx / F32(210.0)) ** 2 * F32(28.0)
    depth = curve - yy  # >0 below the top surface
    shell = np.minimum(coverage(-depth, w), coverage(depth - F32(2.5), w))
    lower = np.minimum(coverage(F32(38.0) - depth, w), coverage(depth - F32(41.0), w))
    np.maximum(shell, lower, out=shell)
    shell *= (np.abs(xx) < F32(225)).astype(F32)
    view = hu[box]
    lerp_into(view, np.broadcast_to(shell, view.shape), an.hu["table"])


def _paint_abdomen(
    an: Anatomy, g: Grid, hu: np.ndarray, plane: Plane, below: np.ndarray, w: float
) -> None:
    ht = an.hu
    zd_box = g.box((-400, -400, -1e4), (400, 400, max(an.z_dome) + 5))
    if zd_box is None:
        return
    # Liver: right of an oblique boundary, under the diaphragm.
    _, yy, xx = g.mesh(zd_box)
    bnd = F32(-12.0 * an.sw) - F32(0.5) * (yy + F32(15.0 * an.sap))
    liver = coverage(bnd - xx, w) * below[zd_box]
    lerp_into(hu[zd_box], liver, ht["liver"])
    del liver
    for shape, tissue in an.abdomen:
        if tissue == "stomach":
            stomach_c, air_frac = an.hila["stomach"]
            paint(hu, g, shape, ht["muscle"], w, weight=below)
            paint(hu, g, shape, ht["fluid"], w, offset_mm=4.0, weight=below)
            if air_frac > 0.05:
                level = float(stomach_c[1] + 42 * (1 - 2 * air_frac))
                radii = shape.radii  # type: ignore[union-attr]
                lo = np.asarray(stomach_c) - radii
                hi = np.asarray(stomach_c) + radii

                body_sdf = next(iter(shape.pieces())).sdf

                def gas(
                    zz: np.ndarray,
                    yy: np.ndarray,
                    xx: np.ndarray,
                    level: float = level,
                    body_sdf: SdfFn = body_sdf,
                ) -> np.ndarray:
                    base = body_sdf(zz, yy, xx) + F32(4.0)
                    return np.maximum(base, F32(level) - yy)

                paint(hu, g, Custom(lo, hi, gas), -995.0, w, weight=below)
        else:
            paint(hu, g, shape, ht[tissue], w, weight=below)


def _paint_spine(an: Anatomy, g: Grid, hu: np.ndarray, w: float) -> None:
    ht = an.hu
    pitch = an.vertebra_pitch
    z0 = an.rib_top() + 12
    box = g.box((-60, -200, -1e4), (60, 20, 1e4))
    if box is None:
        return
    zz, yy, xx = g.mesh(box)
    z = zz[:, 0, 0].astype(np.float64)
    rx, ry = an.spine_r(z)
    yc = an.spine_y(z)
    f = F32
    rxf, ryf, ycf = (v.astype(f)[:, None, None] for v in (rx, ry, yc))
    view = hu[box]
    # Vertebral bodies with discs between them.
    q = np.sqrt((xx / rxf) ** 2 + ((yy - ycf) / ryf) ** 2)
    body_sdf = (q - f(1.0)) * np.minimum(rxf, ryf)
    del q
    phase = np.mod(z - z0, pitch)
    disc_d = np.abs(phase - pitch / 2)  # distance from the vertebra's mid-height
    bone_z = (disc_d - (pitch / 2 - 3.0)).astype(f)[:, None, None]  # <0 inside bone
    lerp_into(view, coverage(body_sdf, w), ht["disc"])
    vert = np.maximum(body_sdf, bone_z)
    lerp_into(view, coverage(vert, w), ht["cortex"] * 0.75)
    vert = np.maximum(body_sdf + f(1.8), bone_z + f(0.7))
    lerp_into(view, coverage(vert, w), ht["marrow"])
    del vert, body_sdf
    # Posterior arch: pedicles/laminae ring, spinous and transverse processes.
    yk = ycf - ryf - f(10.0)
    rr = np.sqrt(xx**2 + (yy - yk) ** 2)
    ring = np.abs(rr - f(11.0)) - f(3.4)
    spin = _seg2d(xx, yy - yk, (0.0, -12.0), (0.0, -30.0)) - f(3.5)
    trans = np.minimum(
        _seg2d(xx, yy - yk, (8.0, 4.0), (30.0, -6.0)),
        _seg2d(xx, yy - yk, (-8.0, 4.0), (-30.0, -6.0)),
    ) - f(4.5)
    arch = np.minimum(np.minimum(ring, spin), trans)
    arch = np.maximum(arch, bone_z + f(1.5))
    lerp_into(view, coverage(arch, w), ht["cortex"] * 0.7)
    lerp_into(view, coverage(arch + f(1.5), w), ht["marrow"])
    lerp_into(view, coverage(rr - f(7.6), w), ht["csf"])


def _seg2d(
    xx: np.ndarray, yy: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    bx, by = b[0] - a[0], b[1] - a[1]
    px = xx - F32(a[0])
    py = yy - F32(a[1])
    t = np.clip((px * F32(bx) + py * F32(by)) / F32(bx * bx + by * by), 0, 1)
    return np.asarray(np.sqrt((px - t * F32(bx)) ** 2 + (py - t * F32(by)) ** 2), F32)


# Ribs ----------------------------------------------------------------------------------------

PHI_LO = 0.36


def _rib_table(an: Anatomy) -> list[tuple[float, float, float, float, float]]:
    """Per rib: posterior height, drop to the front, last angle, cartilage angle, half height."""
    top = an.rib_top()
    out = []
    ends = [2.95, 2.96, 2.97, 2.97, 2.97, 2.95, 2.9, 2.72, 2.58, 2.42, 1.95, 1.5]
    for n in range(12):
        z0 = top - n * an.vertebra_pitch
        drop = (40.0 + 9.0 * min(n, 7)) * an.sz
        cart = 2.55 if n < 7 else (ends[n] - 0.4 if n < 10 else 9.0)
        half_h = (4.2 + 2.2 * np.sin(np.pi * (n + 1) / 13)) * an.sz
        out.append((z0, drop, ends[n], cart, float(half_h)))
    return out


def _paint_ribs(an: Anatomy, g: Grid, hu: np.ndarray, plane: Plane, f: Fields, w: float) -> None:
    t_r = 3.1
    dd = f.sdf_cav - F32(t_r + 1.2)  # 0 at the rib's centre depth
    kk, jj, ii = np.nonzero(np.abs(dd) < F32(t_r + 1.5 * w))
    if len(kk) == 0:
        return
    ddv = dd[kk, jj, ii]
    del dd
    phi = plane.phi[jj, ii]
    zv = g.z[kk]
    hv = hu[kk, jj, ii]
    span = np.pi - PHI_LO
    prog = np.clip((phi - PHI_LO) / span, 0, 1) ** 1.15
    for z0, drop, end, cart, hh in _rib_table(an):
        zc = z0 - drop * prog
        dz = zv - zc
        sel = np.abs(dz) < hh + 2 * w
        if not sel.any():
            continue
        idx = np.nonzero(sel)[0]
        q = np.sqrt((dz[idx] / hh) ** 2 + (ddv[idx] / t_r) ** 2)
        sdf = (q - 1.0) * t_r
        arc = 110.0
        sdf = np.maximum(sdf, (phi[idx] - end) * arc)
        sdf = np.maximum(sdf, (PHI_LO - phi[idx]) * arc)
        is_cart = phi[idx] > cart
        outer = np.where(is_cart, an.hu["cartilage"], an.hu["cortex"])
        inner = np.where(is_cart, an.hu["cartilage"] - 20, an.hu["marrow"])
        fo = np.clip(0.5 - sdf / w, 0, 1)
        fi = np.clip(0.5 - (sdf + 1.1) / w, 0, 1)
        v = hv[idx]
        v = v + fo * (outer - v)
        v = v + fi * (inner - v)
        hv[idx] = v
    hu[kk, jj, ii] = hv


def _paint_sternum(an: Anatomy, g: Grid, hu: np.ndarray, plane: Plane, w: float) -> None:
    z_hi, z_man, z_xi, z_lo = 86 * an.sz, 46 * an.sz, -92 * an.sz, -112 * an.sz
    y_front = an.half_depth * 1.1
    box = g.box((-40, 0, z_lo - 3), (40, y_front, z_hi + 3))
    if box is None:
        return
    zz, yy, xx = g.mesh(box)
    z = zz[:, 0, 0].astype(np.float64)
    ring = an.half_depth * an.body_scale(z) - an.fat_mm * 0.72 * an.fat_scale(z) - 9.0
    hw = np.where(z > z_man, 26.0, np.where(z > z_xi, 15.0, 8.0))
    ht = np.where(z > z_man, 8.0, np.where(z > z_xi, 6.0, 4.0))
    zin = np.maximum(z - z_hi, z_lo - z)
    f = F32
    qx = np.abs(xx) - hw.astype(f)[:, None, None]
    qy = np.abs(yy - ring.astype(f)[:, None, None]) - ht.astype(f)[:, None, None]
    rnd = f(3.0)
    qx += rnd
    qy += rnd
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    sdf = outside + np.minimum(np.maximum(qx, qy), 0) - rnd
    sdf = np.maximum(sdf, zin.astype(f)[:, None, None])
    view = hu[box]
    lerp_into(view, coverage(sdf, w), an.hu["cortex"] * 0.7)
    lerp_into(view, coverage(sdf + f(1.5), w), an.hu["marrow"])


def _paint_scapulae(
    an: Anatomy, g: Grid, hu: np.ndarray, plane: Plane, f: Fields, w: float
) -> None:
    z_lo, z_hi = -50 * an.sz, 104 * an.sz
    box = g.box((-400, -400, z_lo - 5), (400, 10, z_hi + 5))
    if box is None:
        return
    kb, jb, ib = box
    depth = f.depth[kb, jb, ib]
    tm_eff = f.sdf_cav[kb, jb, ib] + depth - f.tf[kb, jb, ib] - F32(9.0 + 11.0)
    np.maximum(tm_eff, F32(4.0), out=tm_eff)
    target = f.tf[kb, jb, ib] + tm_eff * F32(0.6)
    dd = depth - target
    del depth, target, tm_eff
    kk, jj, ii = np.nonzero(np.abs(dd) < F32(5.0 + w))
    if len(kk) == 0:
        return
    ddv = dd[kk, jj, ii]
    del dd
    jg = jj + (jb.start or 0)
    ig = ii + (ib.start or 0)
    kg = kk + (kb.start or 0)
    phi = plane.phi[jg, ig].astype(np.float64)
    z = g.z[kg]
    tz = np.clip((z_hi - z) / (z_hi - z_lo), 0, 1)
    phi_m = 0.5 + 0.38 * tz
    phi_l = 1.5 - 0.58 * tz
    arc = 120.0
    edge = np.maximum((phi_m - phi) * arc, (phi - phi_l) * arc)
    edge = np.maximum(edge, np.maximum(z - z_hi, z_lo - z))
    thick = 1.3 + 2.5 * np.clip(1 - (phi_l - phi) * arc / 14.0, 0, 1)
    sdf = np.maximum(np.abs(ddv) - thick, edge)
    hv = hu[kg, jg, ig]
    fo = np.clip(0.5 - sdf / w, 0, 1)
    fi = np.clip(0.5 - (sdf + 1.0) / w, 0, 1)
    hv = hv + fo * (an.hu["cortex"] * 0.85 - hv)
    hv = hv + fi * (an.hu["marrow"] - hv)
    hu[kg, jg, ig] = hv


__all__ = [
    "Anatomy",
    "Fields",
    "Labels",
    "compute_fields",
    "plan_fields",
    "render_anatomy",
    "sample_anatomy",
    "smin",
]

"""Surface meshes of the lungs and lesions in patient millimetres: STL, OBJ and one GLB scene.

Pipeline per structure: marching cubes at level 0.5 on the zero-padded mask (large structures such
as lungs are first averaged over blocks of about ``pool_mm``), vertices mapped through the CT
affine to RAS mm, Taubin smoothing (shrink-free, in mm), quadric decimation
(``fast_simplification``) to at most ``max_faces`` triangles, then a small offset along the vertex
normals so that the enclosed volume equals the voxel volume of the mask (marching cubes on a
binary mask cuts the voxel corners and loses a few percent on small lesions; the offset is
reported in :attr:`MeshResult.offset_mm` and is a fraction of a voxel).

Files and coordinate systems:

* STL (binary) and OBJ are written in **LPS** millimetres, with ``SPACE=LPS`` in the STL header
  and in the first OBJ comment. 3D Slicer (4.11 and newer) reads that tag and places the model on
  the CT; older readers that ignore it assume RAS in Slicer < 4.11 and LPS in Slicer >= 4.11.
* The GLB scene follows glTF: +X patient left, +Y superior, +Z anterior (the patient faces the
  default camera), metres. Lungs are translucent, lesions opaque, each node named as its segment.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungspread.errors import MissingDependencyError
from lungspread.export.structures import Structure
from lungspread.volume import LPS_TO_RAS

log = logging.getLogger(__name__)

#: RAS mm -> glTF frame (+X left, +Y superior, +Z anterior), metres.
RAS_TO_GLTF = np.array(
    [
        [-1e-3, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1e-3, 0.0],
        [0.0, 1e-3, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@dataclass(frozen=True, eq=False)
class MeshResult:
    """A structure's surface in RAS mm, and how it was made."""

    structure: Structure
    vertices: np.ndarray  # (N, 3) float64, RAS mm
    faces: np.ndarray  # (M, 3) int64, outward (counter-clockwise seen from outside)
    voxel_volume_mm3: float
    mesh_volume_mm3: float
    raw_volume_mm3: float  # after smoothing and decimation, before the volume offset
    offset_mm: float
    watertight: bool

    def trimesh(self) -> object:
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, process=False)


def _pool(mask: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Block-average a boolean mask by integer factors (edges padded with zeros)."""
    if factors == (1, 1, 1):
        return mask.astype(np.float32)
    pads = [(0, (-n) % f) for n, f in zip(mask.shape, factors, strict=True)]
    m = np.pad(mask.astype(np.float32), pads)
    s = m.shape
    m = m.reshape(s[0] // factors[0], factors[0], s[1] // factors[1], factors[1], -1, factors[2])
    out: np.ndarray = m.mean(axis=(1, 3, 5))
    return out


def _simplify(
    vertices: np.ndarray, faces: np.ndarray, max_faces: int
) -> tuple[np.ndarray, np.ndarray]:
    try:
        import fast_simplification
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError(
            "mesh decimation needs fast-simplification; install it with "
            "`pip install fast-simplification`"
        ) from exc
    reduction = 1.0 - max_faces / len(faces)
    v, f = fast_simplification.simplify(
        vertices.astype(np.float64), faces.astype(np.int32), target_reduction=reduction
    )
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def _volume_match(mesh: object, target_mm3: float, iterations: int = 3) -> tuple[np.ndarray, float]:
    """Offset vertices along normals so the enclosed volume equals ``target_mm3``."""
    import trimesh

    assert isinstance(mesh, trimesh.Trimesh)
    total = 0.0
    for _ in range(iterations):
        volume = float(mesh.volume)
        area = float(mesh.area)
        if area <= 0 or target_mm3 <= 0:
            break
        d = (target_mm3 - volume) / area
        if abs(d) < 1e-6:
            break
        mesh.vertices = mesh.vertices + d * mesh.vertex_normals
        total += d
    return np.asarray(mesh.vertices, dtype=np.float64), total


def structure_mesh(
    structure: Structure,
    affine: np.ndarray,
    *,
    max_faces: int | None = 20000,
    smoothing_iterations: int = 10,
    pool_mm: float | None = None,
    match_volume: bool = True,
) -> MeshResult:
    """Mesh one structure (its cropped mask within the grid of ``affine``), in RAS mm.

    ``pool_mm``: average the mask over blocks of about this size before marching cubes (for the
    lungs: a 1.4 mm lung surface is plenty and ten times lighter than a 0.7 mm one).
    """
    import trimesh
    from skimage import measure

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    factors = (1, 1, 1)
    if pool_mm:
        pool = [max(1, round(pool_mm / s)) for s in spacing]
        factors = (int(pool[0]), int(pool[1]), int(pool[2]))
    field = np.pad(_pool(structure.crop, factors), 1)
    # Block averages are multiples of 1/n; a level of exactly 0.5 would put vertices on grid
    # points and pinch the surface into non-manifold edges, so the level sits just below it.
    level = 0.5 if factors == (1, 1, 1) else 0.5 - 1e-3
    verts, faces, _, _ = measure.marching_cubes(field, level=level, allow_degenerate=False)
    # pooled, padded index -> index in the full grid
    fac: np.ndarray = np.asarray(factors, dtype=np.float64)
    start = np.asarray([s.start for s in structure.bbox], dtype=np.float64)
    ijk = (verts - 1.0) * fac + (fac - 1.0) / 2.0 + start
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    mesh = trimesh.Trimesh(world, faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    if smoothing_iterations > 0:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=smoothing_iterations)
    if max_faces is not None and len(mesh.faces) > max_faces:
        v, f = _simplify(np.asarray(mesh.vertices), np.asarray(mesh.faces), max_faces)
        simplified = trimesh.Trimesh(v, f, process=True)
        # A lesion's surface must stay closed (volume, 3D printing); a lung's may lose a few
        # edges to the decimation, which nobody measures.
        if simplified.is_watertight or not mesh.is_watertight or structure.kind != "lesion":
            mesh = simplified
            if mesh.volume < 0:
                mesh.invert()
        else:
            log.info("decimation opened the surface of %s; kept the full mesh", structure.name)
    voxel_mm3 = structure.voxel_count * float(abs(np.linalg.det(affine[:3, :3])))
    raw = float(mesh.volume)
    offset = 0.0
    if match_volume and mesh.is_watertight:
        vertices, offset = _volume_match(mesh, voxel_mm3)
        mesh.vertices = vertices
    return MeshResult(
        structure=structure,
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=np.asarray(mesh.faces, dtype=np.int64),
        voxel_volume_mm3=voxel_mm3,
        mesh_volume_mm3=float(mesh.volume),
        raw_volume_mm3=raw,
        offset_mm=offset,
        watertight=bool(mesh.is_watertight),
    )


def build_meshes(
    structures: Sequence[Structure],
    affine: np.ndarray,
    *,
    lung_max_faces: int = 60000,
    lesion_max_faces: int = 20000,
    lung_pool_mm: float = 1.4,
    smoothing_iterations: int = 10,
) -> list[MeshResult]:
    """Meshes of all structures (lungs pooled to about ``lung_pool_mm``), in RAS mm."""
    out = []
    for s in structures:
        lung = s.kind == "lung"
        out.append(
            structure_mesh(
                s,
                affine,
                max_faces=lung_max_faces if lung else lesion_max_faces,
                smoothing_iterations=smoothing_iterations,
                pool_mm=lung_pool_mm if lung else None,
            )
        )
    return out


def decimated(result: MeshResult, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A lighter copy of a mesh (for figures and the HTML viewer), RAS mm."""
    if len(result.faces) <= max_faces:
        return result.vertices, result.faces
    return _simplify(result.vertices, result.faces, max_faces)


# -- writers -------------------------------------------------------------------------------------


def _lps(vertices_ras: np.ndarray) -> np.ndarray:
    out: np.ndarray = vertices_ras * np.diag(LPS_TO_RAS)[:3]
    return out


def stl_bytes(vertices_ras: np.ndarray, faces: np.ndarray, name: str) -> bytes:
    """Binary STL in LPS mm; the 80-byte header carries ``SPACE=LPS`` for 3D Slicer."""
    v = _lps(vertices_ras)
    tri = v[faces]  # (M, 3, 3); RAS -> LPS is a rotation (det +1): the winding stays outward
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
    label = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in name)
    header = f"lungspread {label} SPACE=LPS".encode("ascii")[:80].ljust(80, b" ")
    if b"SPACE=LPS" not in header:
        header = b"lungspread SPACE=LPS".ljust(80, b" ")
    record = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(faces), dtype=record)
    data["n"] = normals
    data["v"] = tri
    return header + struct.pack("<I", len(faces)) + data.tobytes()


def obj_text(vertices_ras: np.ndarray, faces: np.ndarray, name: str) -> str:
    """Wavefront OBJ in LPS mm; the first comment says ``SPACE=LPS`` for 3D Slicer."""
    v = _lps(vertices_ras)
    f = faces + 1  # OBJ is 1-based
    label = " ".join(name.split())
    lines = [
        f"# lungspread surface mesh: {label}. SPACE=LPS (units mm)",
        f"o {label.replace(' ', '_')}",
    ]
    lines.extend(f"v {a:.4f} {b:.4f} {c:.4f}" for a, b, c in v.tolist())
    lines.extend(f"f {a} {b} {c}" for a, b, c in f.tolist())
    return "\n".join(lines) + "\n"


def glb_bytes(meshes: Sequence[MeshResult], lung_opacity: float = 0.35) -> bytes:
    """One binary glTF scene: each structure a named node with its colour (lungs translucent)."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    scene = trimesh.Scene()
    for m in meshes:
        s = m.structure
        verts = m.vertices @ RAS_TO_GLTF[:3, :3].T
        alpha = lung_opacity if s.kind == "lung" else 1.0
        material = PBRMaterial(
            name=s.name,
            baseColorFactor=[*s.color, alpha],
            metallicFactor=0.0,
            roughnessFactor=0.7,
            alphaMode="BLEND" if alpha < 1 else "OPAQUE",
            doubleSided=s.kind == "lung",
        )
        tm = trimesh.Trimesh(
            verts,
            m.faces,
            process=False,
            visual=trimesh.visual.TextureVisuals(material=material),
        )
        scene.add_geometry(tm, node_name=s.name, geom_name=s.key)
    data = scene.export(file_type="glb")
    assert isinstance(data, bytes)
    return data


def write_mesh_files(meshes: Sequence[MeshResult], folder: Path) -> list[Path]:
    """``<stem>.stl`` and ``<stem>.obj`` per structure and ``scene.glb`` in ``folder``."""
    from lungspread.export.files import atomic_write

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for m in meshes:
        stem = m.structure.file_stem
        written.append(
            atomic_write(folder / f"{stem}.stl", stl_bytes(m.vertices, m.faces, m.structure.name))
        )
        written.append(
            atomic_write(
                folder / f"{stem}.obj",
                obj_text(m.vertices, m.faces, m.structure.name).encode("utf-8"),
            )
        )
    if meshes:
        written.append(atomic_write(folder / "scene.glb", glb_bytes(meshes)))
    return written

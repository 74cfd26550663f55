"""Meshes: closed, in patient mm, volume of the voxels, and files that trimesh reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from export_fixtures import LIDC1, affine_for, chest
from lungspread.export.mesh import (
    RAS_TO_GLTF,
    build_meshes,
    obj_text,
    stl_bytes,
    structure_mesh,
    write_mesh_files,
)
from lungspread.export.structures import build_structures
from lungspread.volume import Volume


def _sphere_case(
    radius_mm: float, spacing: tuple[float, float, float], order: str, centre=(3.0, -4.0, 5.0)
) -> tuple[Volume, Volume, np.ndarray]:
    shape = tuple(int(np.ceil(2 * radius_mm / s)) + 8 for s in spacing)
    aff = affine_for(shape, spacing, order)  # type: ignore[arg-type]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    xyz = ijk.reshape(-1, 3) @ aff[:3, :3].T + aff[:3, 3]
    inside = (((xyz - np.asarray(centre)) ** 2).sum(axis=1) <= radius_mm**2).reshape(shape)
    ct = Volume(np.zeros(shape, np.int16), aff)
    return ct, ct.with_array(inside.astype(np.uint8)), np.asarray(centre)


@pytest.mark.parametrize("order", ["LPS", "RAS", "PLS", "oblique"])
@pytest.mark.parametrize("radius_mm", [4.0, 12.0])
def test_sphere_mesh_closed_with_voxel_volume_in_patient_mm(order: str, radius_mm: float) -> None:
    spacing = (0.7, 0.8, 2.5)  # anisotropic, as in a thick-slice CT
    ct, tumor, centre = _sphere_case(radius_mm, spacing, order)
    (lesion,) = build_structures(ct, tumor)
    result = structure_mesh(lesion, ct.affine)
    mesh = trimesh.Trimesh(result.vertices, result.faces)
    voxel_mm3 = lesion.voxel_count * 0.7 * 0.8 * 2.5
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals whatever the handedness of the affine
    assert abs(mesh.volume - voxel_mm3) / voxel_mm3 < 0.05
    # marching cubes + smoothing alone are close already; the volume offset is sub-voxel
    assert abs(result.raw_volume_mm3 - voxel_mm3) / voxel_mm3 < (0.12 if radius_mm < 5 else 0.03)
    assert abs(result.offset_mm) < 0.3 * min(spacing)
    # in patient mm: centred on the sphere, radius right along every patient axis
    voxel_centre = ct.index_to_world(np.argwhere(tumor.array > 0).mean(axis=0))
    np.testing.assert_allclose(mesh.center_mass, voxel_centre, atol=0.2)
    np.testing.assert_allclose(mesh.center_mass, centre, atol=0.5)
    half_extent = (mesh.bounds[1] - mesh.bounds[0]) / 2
    np.testing.assert_allclose(half_extent, radius_mm, atol=1.4 if order != "oblique" else 2.0)


def test_lungs_are_decimated_to_the_face_budget() -> None:
    c = chest()
    structures = build_structures(c.ct, c.tumor, c.lungs)
    meshes = build_meshes(structures, c.ct.affine, lung_max_faces=3000, lesion_max_faces=500)
    lungs = [m for m in meshes if m.structure.kind == "lung"]
    lesions = [m for m in meshes if m.structure.kind == "lesion"]
    assert [m.structure.name for m in lungs] == ["Right lung", "Left lung"]
    assert all(len(m.faces) <= 3000 for m in lungs)
    assert all(len(m.faces) <= 500 and m.watertight for m in lesions)
    # right lung on the patient's right: positive x in RAS
    assert lungs[0].vertices[:, 0].mean() > 30 and lungs[1].vertices[:, 0].mean() < -30


def test_files_stl_obj_in_lps_and_glb_in_gltf_frame(tmp_path: Path) -> None:
    c = chest()
    structures = build_structures(c.ct, c.tumor, c.lungs)
    meshes = build_meshes(structures, c.ct.affine, lung_max_faces=4000)
    paths = write_mesh_files(meshes, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "right_lung.stl",
            "right_lung.obj",
            "left_lung.stl",
            "left_lung.obj",
            "lesion_L1.stl",
            "lesion_L1.obj",
            "lesion_L2.stl",
            "lesion_L2.obj",
            "scene.glb",
        ]
    )
    l1 = next(m for m in meshes if m.structure.lesion_id == "L1")
    lps = l1.vertices * [-1, -1, 1]
    stl_path = tmp_path / "lesion_L1.stl"
    assert b"SPACE=LPS" in stl_path.read_bytes()[:80]  # what 3D Slicer looks for
    stl = trimesh.load(stl_path, force="mesh")
    assert stl.is_watertight
    np.testing.assert_allclose(stl.bounds, [lps.min(0), lps.max(0)], atol=1e-3)
    assert stl.volume == pytest.approx(l1.mesh_volume_mm3, rel=1e-4)
    obj_path = tmp_path / "lesion_L1.obj"
    assert "SPACE=LPS" in obj_path.read_text().splitlines()[0]
    obj = trimesh.load(obj_path, force="mesh", process=False)
    np.testing.assert_allclose(obj.bounds, [lps.min(0), lps.max(0)], atol=1e-3)
    assert obj.volume == pytest.approx(l1.mesh_volume_mm3, rel=1e-3)
    # L1 (around RAS (45, 0, 20)) is at LPS x = -45 in both files
    assert stl.center_mass[0] == pytest.approx(-45.0, abs=0.5)

    scene = trimesh.load(tmp_path / "scene.glb")
    assert isinstance(scene, trimesh.Scene)
    geoms = {name: g for name, g in scene.geometry.items()}
    assert set(geoms) == {"right_lung", "left_lung", "lesion_L1", "lesion_L2"}
    node_names = set(scene.graph.nodes_geometry)
    assert {"Right lung", "Left lung"} <= node_names
    g = scene.geometry["lesion_L1"]
    expected = l1.vertices @ RAS_TO_GLTF[:3, :3].T  # +X left, +Y up, +Z anterior, metres
    np.testing.assert_allclose(g.bounds, [expected.min(0), expected.max(0)], atol=1e-6)
    assert g.center_mass[0] == pytest.approx(-0.045, abs=5e-4)  # patient right = -X
    assert g.center_mass[1] == pytest.approx(0.020, abs=5e-4)  # superior = +Y
    lung_material = scene.geometry["right_lung"].visual.material
    assert lung_material.alphaMode == "BLEND"
    np.testing.assert_allclose(
        np.asarray(lung_material.baseColorFactor[:3]) / 255.0,
        structures[0].color,
        atol=2 / 255,
    )


def test_writers_reject_nothing_and_keep_winding() -> None:
    # a unit tetrahedron, outward winding: STL normals point away from its centre
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert trimesh.Trimesh(v, f).volume > 0
    data = stl_bytes(v, f, "tetra <test>")
    assert len(data) == 84 + 50 * 4
    normals = np.frombuffer(
        data[84:], dtype=np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    )
    centre_lps = v.mean(0) * [-1, -1, 1]
    for rec in normals:
        assert np.dot(rec["n"], rec["v"].mean(0) - centre_lps) > 0
    text = obj_text(v, f, "tetra")
    assert text.count("\nv ") == 4 and text.count("\nf ") == 4


def test_real_lidc_nodule_mesh() -> None:
    if not LIDC1.is_dir():
        pytest.skip(f"real data not found at {LIDC1}")
    from lungspread.io import read_volume

    ct = read_volume(LIDC1 / "ct.nii.gz")
    tumor = read_volume(LIDC1 / "nodules.nii.gz")
    (lesion,) = build_structures(ct, tumor)
    result = structure_mesh(lesion, ct.affine)
    mesh = trimesh.Trimesh(result.vertices, result.faces)
    voxel_mm3 = 6282 * 0.703125 * 0.703125 * 2.5
    assert mesh.is_watertight
    assert abs(mesh.volume - voxel_mm3) / voxel_mm3 < 0.05
    assert abs(result.raw_volume_mm3 - voxel_mm3) / voxel_mm3 < 0.02
    voxel_centre = ct.index_to_world(np.argwhere(np.asarray(tumor.array) > 0).mean(axis=0))
    np.testing.assert_allclose(mesh.center_mass, voxel_centre, atol=1.0)
    assert voxel_centre[0] < 0  # patient-left lung (RAS x < 0)

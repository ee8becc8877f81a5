"""Mesh files: .ply (trimesh) and .obj with FLAME UVs (written here: trimesh would split
vertices along UV seams and lose the FLAME vertex order), and the .mtl that gives an .obj the
baked photo texture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import trimesh

from ..atomic import write_atomic, write_text_atomic
from ..errors import InputFileError

MATERIAL_NAME = "d3dface_head"


def obj_text(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None, uv_faces: np.ndarray | None = None,
             mtllib: str | None = None) -> str:
    """OBJ text: vertices (V, 3), faces (F, 3) 0-based; optional uvs (T, 2) and uv_faces (F, 3);
    mtllib: a material file (relative to the .obj) whose ``MATERIAL_NAME`` the faces use."""
    buf = io.StringIO()
    buf.write("# written by d3dface\n")
    if mtllib:
        buf.write(f"mtllib {mtllib}\n")
    np.savetxt(buf, np.asarray(vertices, np.float64), fmt="v %.7f %.7f %.7f")
    if uvs is not None and uv_faces is not None:
        np.savetxt(buf, np.asarray(uvs, np.float64), fmt="vt %.7f %.7f")
        idx = np.stack([faces + 1, uv_faces + 1], axis=-1).reshape(-1, 6)
        if mtllib:
            buf.write(f"usemtl {MATERIAL_NAME}\n")
        np.savetxt(buf, idx, fmt="f %d/%d %d/%d %d/%d")
    else:
        np.savetxt(buf, np.asarray(faces) + 1, fmt="f %d %d %d")
    return buf.getvalue()


def mtl_text(texture: str) -> str:
    """MTL text of one material, ``MATERIAL_NAME``: white, diffuse, coloured by ``texture`` (a path
    relative to the .mtl)."""
    return (f"# written by d3dface\nnewmtl {MATERIAL_NAME}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
            f"map_Kd {texture}\n")


def write_material(path: str | Path, texture: str) -> Path:
    """Write an .mtl whose material is coloured by ``texture`` (relative to the .mtl), atomically."""
    return write_text_atomic(path, mtl_text(texture))


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray, uvs=None, uv_faces=None,
               mtllib: str | None = None) -> Path:
    """Write .obj (with UVs when given, and ``mtllib`` when given) or .ply, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return write_text_atomic(path, obj_text(vertices, faces, uvs, uv_faces, mtllib))
    if suffix == ".ply":
        mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False)
        return write_atomic(path, lambda p: mesh.export(p, file_type="ply"))
    raise InputFileError(f"unsupported mesh format {suffix!r}: use .obj or .ply ({path})")


def read_mesh_vertices(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and faces (F, 3) of a .ply/.obj file, in file order (no merging)."""
    path = Path(path)
    try:
        mesh = trimesh.load(path, process=False, maintain_order=True, force="mesh")
    except Exception as exc:  # noqa: BLE001 - trimesh raises many kinds for bad files
        raise InputFileError(f"cannot read mesh {path}: {exc}") from None
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)

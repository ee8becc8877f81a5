"""A strict reader for triangle OBJ files with texture coordinates.

trimesh splits vertices along UV seams, which would break the FLAME vertex order;
this reader keeps position and texture indices apart, as the file has them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError


def read_obj_with_uvs(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Return ``(vertices (V,3) f32, faces (F,3) i32, uvs (T,2) f32 or None, uv_faces (F,3) i32 or None)``."""
    path = Path(path)
    verts, uvs, faces, uv_faces = [], [], [], []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        try:
            if tag == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif tag == "vt":
                uvs.append([float(x) for x in parts[1:3]])
            elif tag == "f":
                corners = [p.split("/") for p in parts[1:]]
                if len(corners) != 3:
                    raise InputFileError(f"{path}:{lineno}: face with {len(corners)} corners; only triangles are read")
                faces.append([int(c[0]) - 1 for c in corners])
                if all(len(c) > 1 and c[1] for c in corners):
                    uv_faces.append([int(c[1]) - 1 for c in corners])
        except ValueError:
            raise InputFileError(f"{path}:{lineno}: malformed OBJ line: {line.strip()[:60]}") from None
    if not verts or not faces:
        raise InputFileError(f"{path} holds no mesh (no 'v' or 'f' lines)")
    v = np.asarray(verts, np.float32)
    f = np.asarray(faces, np.int32)
    if f.min() < 0 or f.max() >= len(v):
        raise InputFileError(f"{path}: face indices out of range")
    if uvs and len(uv_faces) == len(faces):
        return v, f, np.asarray(uvs, np.float32), np.asarray(uv_faces, np.int32)
    return v, f, None, None

"""Short hashes that name a mesh: its template (vertices and triangles) or its triangles alone."""

from __future__ import annotations

import hashlib

import numpy as np


def template_hash(vertices: np.ndarray, faces: np.ndarray) -> str:
    """Short hash of a template mesh (float32 vertices, int32 faces)."""
    m = hashlib.sha256()
    m.update(np.ascontiguousarray(vertices, np.float32).tobytes())
    m.update(np.ascontiguousarray(faces, np.int32).tobytes())
    return m.hexdigest()[:16]


def faces_hash(faces: np.ndarray) -> str:
    """Short hash of a triangle list (int32): the topology alone."""
    return hashlib.sha256(np.ascontiguousarray(faces, np.int32).tobytes()).hexdigest()[:16]

"""Mesh health checks on a fixed topology: flipped and degenerate triangles, and a smoother
used to untangle folds."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def triangle_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised normals (F, 3) (length = twice the area)."""
    v = np.asarray(vertices, np.float64)
    return np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])


def flipped_triangles(reference: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices of triangles whose normal turned by more than 90 degrees from ``reference``."""
    n0, n1 = triangle_normals(reference, faces), triangle_normals(vertices, faces)
    return np.where((n0 * n1).sum(1) <= 0)[0]


def degenerate_triangles(vertices: np.ndarray, faces: np.ndarray, min_area: float = 1e-10, min_angle_deg: float = 0.5) -> np.ndarray:
    """Indices of triangles with area below ``min_area`` (m^2) or an angle below ``min_angle_deg``."""
    v = np.asarray(vertices, np.float64)
    area = 0.5 * np.linalg.norm(triangle_normals(v, faces), axis=1)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    angles = []
    for p, q, r in ((a, b, c), (b, c, a), (c, a, b)):
        u, w = q - p, r - p
        cos = (u * w).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), 1e-30)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    min_angle = np.min(angles, axis=0)
    return np.where((area < min_area) | (min_angle < min_angle_deg))[0]


def adjacency(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """Symmetric vertex adjacency (V, V) with ones on mesh edges."""
    e = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    e = np.concatenate([e, e[:, ::-1]])
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(num_vertices, num_vertices)).tocsr()
    A.data[:] = 1.0
    return A


def smooth_field(field: np.ndarray, faces: np.ndarray, movable: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Replace ``field`` (V, C) at ``movable`` (V,) bool vertices by repeated neighbour averages."""
    A = adjacency(faces, field.shape[0])
    deg = np.asarray(A.sum(1)).ravel()
    deg[deg == 0] = 1
    out = field.copy()
    for _ in range(iterations):
        avg = (A @ out) / deg[:, None]
        out[movable] = avg[movable]
    return out


def boundary_vertices(faces: np.ndarray) -> np.ndarray:
    """Vertices on open boundaries (edges used by one triangle)."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    return np.unique(uniq[counts == 1])

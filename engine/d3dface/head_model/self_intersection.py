"""Self-intersection checks for a deformed face mesh (numpy + scipy only).

Answers "does this mesh cross itself?": triangle pairs whose interiors cross (eyelid through
eyeball, upper lip through lower lip), and how deep a set of vertices sits inside a sphere
fitted to the eyeball. Units are metres throughout.

The triangle test is vectorised: candidate pairs come from KD-trees on triangle centroids,
grouped into size classes (powers of two of the centroid-to-vertex radius) so that a few
large triangles do not inflate the search radius for all the small ones; an exact
bounding-box overlap check follows, then an exact interval-overlap triangle/triangle test
(Möller 1997): each triangle strictly straddles the other's plane and their cuts along the
planes' common line overlap.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

# Tolerances of the exact test, dimensionless. A vertex closer to the other triangle's plane
# than _PARAM_TOL x the pair's longest edge counts as on it; cuts must overlap by more than
# that length; planes at an angle with sine below _PARALLEL_TOL count as coplanar. Touching,
# grazing and coplanar contact is therefore not a crossing.
_PARAM_TOL = 1e-7
_PARALLEL_TOL = 1e-7
_CHUNK = 200_000
_MAX_CLASSES = 24


def _as_index_set(idx, num_faces: int) -> np.ndarray:
    idx = np.unique(np.asarray(idx, dtype=np.int64).ravel())
    if idx.size and (idx[0] < 0 or idx[-1] >= num_faces):
        raise IndexError(f"face index out of range [0, {num_faces})")
    return idx


def _size_classes(radius: np.ndarray) -> np.ndarray:
    """Integer class per triangle: floor(log2(radius / max radius)), clipped."""
    top = float(radius.max()) if radius.size else 0.0
    if top <= 0.0:
        return np.zeros(radius.shape, np.int64)
    k = np.floor(np.log2(np.maximum(radius, top * 2.0 ** -_MAX_CLASSES) / top))
    return np.clip(k, -_MAX_CLASSES, 0).astype(np.int64)


def _centroid_pairs(centroid, radius, ida, idb, same: bool) -> np.ndarray:
    """Pairs (global face indices) whose centroids are within the sum of the class radii.

    ``same``: ``ida`` and ``idb`` are the same set; each unordered pair once, i < j.
    """
    ka, kb = _size_classes(radius[ida]), _size_classes(radius[idb])
    groups_a = {k: ida[ka == k] for k in np.unique(ka)}
    groups_b = groups_a if same else {k: idb[kb == k] for k in np.unique(kb)}
    trees_a = {k: cKDTree(centroid[g]) for k, g in groups_a.items()}
    trees_b = trees_a if same else {k: cKDTree(centroid[g]) for k, g in groups_b.items()}
    out = []
    for k1, g1 in groups_a.items():
        r1 = float(radius[g1].max())
        for k2, g2 in groups_b.items():
            if same and k2 < k1:
                continue
            r = (r1 + float(radius[g2].max())) * (1.0 + 1e-9) + 1e-15
            if same and k1 == k2:
                p = trees_a[k1].query_pairs(r, output_type="ndarray")
                if len(p):
                    out.append(np.stack([g1[p[:, 0]], g1[p[:, 1]]], 1))
            else:
                m = trees_a[k1].sparse_distance_matrix(trees_b[k2], r, output_type="ndarray")
                if len(m):
                    out.append(np.stack([g1[m["i"]], g2[m["j"]]], 1))
    if not out:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    if same:
        pairs = np.sort(pairs, axis=1)
    return pairs


def _dot(a, b):
    return np.einsum("...i,...i->...", a, b)


def _cut_interval(t: np.ndarray, s: np.ndarray, d: np.ndarray):
    """Where triangles t (P, 3, 3), with signed distances s (P, 3) to the other's plane (exact
    zeros for vertices on it), meet that plane, as an interval [lo, hi] (P,) along unit d (P, 3)."""
    lo = np.full(len(t), np.inf)
    hi = np.full(len(t), -np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        si, sj = s[:, i], s[:, j]
        crosses = si * sj < 0
        w = np.divide(si, si - sj, out=np.zeros_like(si), where=crosses)
        x = _dot(t[:, i] + (t[:, j] - t[:, i]) * w[:, None], d)
        lo = np.where(crosses, np.minimum(lo, x), lo)
        hi = np.where(crosses, np.maximum(hi, x), hi)
    for i in range(3):
        on = s[:, i] == 0
        x = _dot(t[:, i], d)
        lo = np.where(on, np.minimum(lo, x), lo)
        hi = np.where(on, np.maximum(hi, x), hi)
    return lo, hi


def _triangles_cross(t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    """(P,) bool: do triangles t1[k] and t2[k] (P, 3, 3) cross (interval-overlap test)?

    Each triangle must strictly straddle the other's plane, and the two cuts along the planes'
    common line must overlap by more than a tolerance. Vertices within _PARAM_TOL x (longest
    edge) of a plane count as on it; nearly parallel planes (sin < _PARALLEL_TOL) never cross.
    Unlike testing only the edges of one triangle against the other, this also catches crossings
    whose ends lie on edges of both triangles (e.g. mirror-symmetric meshes).
    """
    nxt = [1, 2, 0]
    scale = np.maximum(np.linalg.norm(t1[:, nxt] - t1, axis=2).max(1), np.linalg.norm(t2[:, nxt] - t2, axis=2).max(1))
    tol = _PARAM_TOL * scale
    n1 = np.cross(t1[:, 1] - t1[:, 0], t1[:, 2] - t1[:, 0])
    n2 = np.cross(t2[:, 1] - t2[:, 0], t2[:, 2] - t2[:, 0])
    l1, l2 = np.linalg.norm(n1, axis=1), np.linalg.norm(n2, axis=1)
    ok = (l1 > 1e-12 * scale ** 2) & (l2 > 1e-12 * scale ** 2)          # skip degenerate triangles
    n1 = n1 / np.where(ok, l1, 1.0)[:, None]
    n2 = n2 / np.where(ok, l2, 1.0)[:, None]
    s2 = _dot(t2 - t1[:, None, 0], n1[:, None])                          # T2's vertices to T1's plane
    s1 = _dot(t1 - t2[:, None, 0], n2[:, None])
    s1 = np.where(np.abs(s1) <= tol[:, None], 0.0, s1)
    s2 = np.where(np.abs(s2) <= tol[:, None], 0.0, s2)
    ok &= (s1 > 0).any(1) & (s1 < 0).any(1) & (s2 > 0).any(1) & (s2 < 0).any(1)
    d = np.cross(n1, n2)
    dl = np.linalg.norm(d, axis=1)
    ok &= dl > _PARALLEL_TOL
    out = np.zeros(len(t1), bool)
    k = np.where(ok)[0]
    if len(k):
        d = d[k] / dl[k, None]
        lo1, hi1 = _cut_interval(t1[k], s1[k], d)
        lo2, hi2 = _cut_interval(t2[k], s2[k], d)
        out[k] = np.minimum(hi1, hi2) - np.maximum(lo1, lo2) > tol[k]
    return out


def intersecting_triangle_pairs(vertices: np.ndarray, faces: np.ndarray, faces_a=None, faces_b=None) -> np.ndarray:
    """Pairs of triangles whose interiors cross.

    vertices: (V, 3) float, metres. faces: (F, 3) int vertex indices.
    faces_a, faces_b: optional int arrays of face indices. Both given: only pairs with one
    triangle in each set, returned as (i in faces_a, j in faces_b). Only faces_a: pairs within
    faces_a. Neither: all pairs of the mesh.
    Returns (K, 2) int64 indices into ``faces``, sorted by row; each unordered pair once, with
    i < j when both triangles come from the same set. Triangles that share a vertex (or an
    edge) are never reported; touching, grazing and coplanar contact does not count.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"expected vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    num_faces = len(f)
    if faces_a is None and faces_b is not None:
        faces_a, faces_b = faces_b, None
    ida = np.arange(num_faces, dtype=np.int64) if faces_a is None else _as_index_set(faces_a, num_faces)
    same = faces_b is None
    idb = ida if same else _as_index_set(faces_b, num_faces)
    empty = np.zeros((0, 2), np.int64)
    if ida.size == 0 or idb.size == 0:
        return empty

    tri = v[f]                                   # (F, 3, 3)
    centroid = tri.mean(1)
    radius = np.linalg.norm(tri - centroid[:, None], axis=2).max(1)
    pairs = _centroid_pairs(centroid, radius, ida, idb, same)
    if not same and len(pairs):
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        # a pair with both triangles in both sets is found twice, (i, j) and (j, i): keep i < j
        in_a = np.zeros(num_faces, bool)
        in_a[ida] = True
        in_b = np.zeros(num_faces, bool)
        in_b[idb] = True
        twice = in_b[pairs[:, 0]] & in_a[pairs[:, 1]]
        pairs = pairs[~twice | (pairs[:, 0] < pairs[:, 1])]
    if len(pairs) == 0:
        return empty

    # exact bounds tests: centroid distance, then axis-aligned bounding boxes
    i, j = pairs[:, 0], pairs[:, 1]
    dist2 = ((centroid[i] - centroid[j]) ** 2).sum(1)
    keep = dist2 <= (radius[i] + radius[j]) ** 2 * (1.0 + 1e-9)
    pairs = pairs[keep]
    lo, hi = tri.min(1), tri.max(1)
    i, j = pairs[:, 0], pairs[:, 1]
    keep = ((lo[i] <= hi[j]) & (lo[j] <= hi[i])).all(1)
    # neighbours that share a vertex touch by construction
    fi, fj = f[i], f[j]
    keep &= ~(fi[:, :, None] == fj[:, None, :]).any((1, 2))
    pairs = pairs[keep]

    hits = np.zeros(len(pairs), bool)
    for s in range(0, len(pairs), _CHUNK):
        p = pairs[s:s + _CHUNK]
        hits[s:s + _CHUNK] = _triangles_cross(tri[p[:, 0]], tri[p[:, 1]])
    out = pairs[hits]
    if len(out):
        out = out[np.lexsort((out[:, 1], out[:, 0]))]
    return np.ascontiguousarray(out, dtype=np.int64)


def points_inside_sphere(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Penetration depth (N,) in metres of ``points`` (N, 3) into the sphere (``centre`` (3,),
    ``radius`` metres): radius - distance to the centre, 0 for points outside."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    d = np.linalg.norm(p - np.asarray(centre, dtype=np.float64).reshape(1, 3), axis=1)
    return np.clip(float(radius) - d, 0.0, None)


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Linear least-squares sphere through ``points`` (N, 3), N >= 4 not coplanar.

    Solves |p|^2 = 2 c.p + (r^2 - |c|^2) for c and r. Returns (centre (3,), radius) in metres.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(p) < 4:
        raise ValueError(f"a sphere fit needs at least 4 points, got {len(p)}")
    shift = p.mean(0)                             # conditioning: fit around the mean
    q = p - shift
    A = np.concatenate([2.0 * q, np.ones((len(q), 1))], axis=1)
    b = (q * q).sum(1)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    c = sol[:3]
    r2 = sol[3] + c @ c
    return c + shift, float(np.sqrt(max(r2, 0.0)))


def eyelid_penetration(vertices: np.ndarray, eyeball_idx, lid_idx) -> float:
    """Largest depth (metres) of any ``lid_idx`` vertex inside the sphere fitted to the
    ``eyeball_idx`` vertices of ``vertices`` (V, 3); 0.0 when none is inside."""
    v = np.asarray(vertices, dtype=np.float64)
    centre, radius = fit_sphere(v[np.asarray(eyeball_idx, dtype=np.int64)])
    lid = v[np.asarray(lid_idx, dtype=np.int64)]
    if len(lid) == 0:
        return 0.0
    return float(points_inside_sphere(lid, centre, radius).max())

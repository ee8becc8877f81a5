"""Carry ICT's identity and expression shapes onto the registered FLAME template.

Skin: each registered FLAME vertex takes the barycentric blend of the ICT deltas at its
closest point on the ICT skin. Eyeballs: each ICT shape's eyeball motion is fitted as a
rigid transform (Kabsch) and applied to FLAME's eyeball, so eyeballs stay spheres.
All deltas are rotated and scaled by the ICT -> FLAME similarity (cm to metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .alignment import similarity_transform


@dataclass
class SurfaceCorrespondence:
    triangles: np.ndarray  # (V, 3) ICT vertex ids of the closest triangle per FLAME vertex
    bary: np.ndarray  # (V, 3) barycentric weights
    skin: np.ndarray  # (V,) bool: FLAME vertices carried by the surface (not eyeballs)


def surface_correspondence(registered: np.ndarray, skin_vertices: np.ndarray, ict_v: np.ndarray, ict_triangles: np.ndarray) -> SurfaceCorrespondence:
    """Closest ICT skin triangle and barycentrics for each FLAME skin vertex."""
    target = trimesh.Trimesh(ict_v, ict_triangles, process=False)
    V = registered.shape[0]
    tri = np.zeros((V, 3), np.int64)
    bary = np.zeros((V, 3))
    pts, _, tid = trimesh.proximity.closest_point(target, registered[skin_vertices])
    tri[skin_vertices] = ict_triangles[tid]
    bary[skin_vertices] = trimesh.triangles.points_to_barycentric(ict_v[ict_triangles[tid]], pts)
    bary = np.clip(bary, 0, 1)
    bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
    skin = np.zeros(V, bool)
    skin[skin_vertices] = True
    return SurfaceCorrespondence(tri, bary, skin)


def transfer_deltas(deltas: np.ndarray, corr: SurfaceCorrespondence, scale: float, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """deltas (K, N, 3) ICT units -> skin deltas (V, 3, K) in FLAME metres (eyeballs zero),
    and the ICT deltas in FLAME axes and metres (K, N, 3)."""
    K = deltas.shape[0]
    V = corr.skin.shape[0]
    out = np.zeros((V, 3, K), np.float32)
    d = np.einsum("knc,dc->knd", deltas, rotation) * scale  # into FLAME axes and metres
    skin = np.where(corr.skin)[0]
    blend = (d[:, corr.triangles[skin]] * corr.bary[skin][None, :, :, None]).sum(2)  # (K, S, 3)
    out[skin] = blend.transpose(1, 2, 0)
    return out, d


def rigid_eyeball_deltas(d_aligned: np.ndarray, flame_eye: np.ndarray, ict_eye: np.ndarray, ict_rest: np.ndarray,
                         flame_rest: np.ndarray) -> np.ndarray:
    """For each shape k, the rigid motion of ICT's eyeball applied to FLAME's: (len(flame_eye), 3, K)."""
    K = d_aligned.shape[0]
    src = ict_rest[ict_eye]
    c = src.mean(0)
    x = flame_rest[flame_eye]
    out = np.zeros((len(flame_eye), 3, K), np.float32)
    for k in range(K):
        moved = src + d_aligned[k, ict_eye]
        if np.abs(d_aligned[k, ict_eye]).max() < 1e-9:
            continue
        _, R, t = similarity_transform(src - c, moved - c, with_scale=False)
        out[:, :, k] = ((x - c) @ R.T + c + t) - x
    return out

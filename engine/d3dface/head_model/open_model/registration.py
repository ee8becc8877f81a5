"""Non-rigid registration of the FLAME template onto the (aligned) ICT neutral surface.

1. Optimal-step non-rigid ICP (Amberg et al. 2007, ``trimesh.registration.nricp_amberg``) of
   the FLAME skin (eyeballs removed) onto the ICT skin, with landmark terms and a
   decreasing stiffness schedule. Landmarks whose definitions differ between the two
   models (the jaw contour and the brows) are left out.
2. Untangling: triangles folded by the registration (at lip and eyelid rims, where the
   two meshes' openings differ) get their displacement smoothed from their neighbours
   until none is flipped.
3. Eyeballs: FLAME's eyeballs are moved and uniformly scaled, rigidly, onto ICT's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from trimesh.registration import nricp_amberg

from ..mesh_quality import adjacency, degenerate_triangles, flipped_triangles, smooth_field
from ..model import HeadModel

# (stiffness, landmark weight, normal weight, iterations), stiffness in the normalised units of nricp_amberg.
# Landmarks guide the start and fade out; stiffness stays high enough that nothing creases (chosen by
# rendering the result: lower stiffness or brow landmarks raised ridges above the brows).
DEFAULT_STEPS = ((0.05, 10, 2, 10), (0.02, 5, 2, 10), (0.01, 2, 2, 10), (0.005, 1, 2, 10))
DEFAULT_LANDMARKS = tuple(range(27, 68))  # nose, eyes, mouth: brows and jaw contour are defined differently


@dataclass
class RegistrationSettings:
    steps: tuple = DEFAULT_STEPS
    landmarks: tuple = DEFAULT_LANDMARKS  # iBUG indices used as landmark terms
    distance_threshold: float = 0.01  # m: farther correspondences are ignored
    untangle_rounds: int = 60


@dataclass
class RegistrationResult:
    vertices: np.ndarray  # (V, 3) registered FLAME template, metres
    surface_distance: np.ndarray  # (V,) distance to the ICT surface (eyeballs: to ICT's eyeballs), metres
    flipped_before_untangle: int
    flipped_after: int
    eyeball_sides: dict = field(default_factory=dict)  # FLAME eyeball region -> ICT part


def _skin_submesh(model: HeadModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    eyes = np.concatenate([model.regions["left_eyeball"], model.regions["right_eyeball"]])
    keep_faces = ~np.isin(model.faces, eyes).any(1)
    used = np.unique(model.faces[keep_faces])
    vmap = -np.ones(model.num_vertices, np.int64)
    vmap[used] = np.arange(len(used))
    return used, vmap[model.faces[keep_faces]], keep_faces, vmap


def untangle(reference: np.ndarray, vertices: np.ndarray, faces: np.ndarray, rounds: int = 60) -> np.ndarray:
    """Smooth the displacement (vertices - reference) around flipped triangles until none is left."""
    return reference + untangle_delta(reference, vertices - reference, faces, (1.0,), rounds)


def untangle_delta(reference: np.ndarray, delta: np.ndarray, faces: np.ndarray, scales=(1.0,), rounds: int = 60,
                   fixed: np.ndarray | None = None) -> np.ndarray:
    """Smooth ``delta`` (V, 3) around the triangles that ``reference + s * delta`` flips or collapses
    (degenerate), for every s in ``scales``, widening the smoothed area while folds persist.
    ``fixed`` vertices are never changed."""
    A = adjacency(faces, len(reference))
    out = delta.copy()
    for r in range(rounds):
        bad = np.unique(np.concatenate(
            [flipped_triangles(reference, reference + s * out, faces) for s in scales]
            + [degenerate_triangles(reference + s * out, faces) for s in scales]))
        if len(bad) == 0:
            break
        movable = np.zeros(len(out), bool)
        movable[np.unique(faces[bad])] = True
        for _ in range(1 + r // 10):
            movable |= (A @ movable.astype(float)) > 0
        if fixed is not None:
            movable[fixed] = False
        out = smooth_field(out, faces, movable, iterations=5)
    return out


def _place_eyeballs(model: HeadModel, registered: np.ndarray, ict_v: np.ndarray, ict_part: np.ndarray,
                    eye_parts: tuple[int, int]) -> dict:
    sides = {}
    ict_centres = {p: ict_v[ict_part == p].mean(0) for p in eye_parts}
    for region in ("left_eyeball", "right_eyeball"):
        idx = model.regions[region]
        src = model.v_template[idx].astype(np.float64)
        c_src = src.mean(0)
        part = min(eye_parts, key=lambda p: abs(ict_centres[p][0] - c_src[0]) + (0 if np.sign(ict_centres[p][0]) == np.sign(c_src[0]) else 1.0))
        dst = ict_v[ict_part == part]
        c_dst = dst.mean(0)
        scale = np.linalg.norm(dst - c_dst, axis=1).mean() / np.linalg.norm(src - c_src, axis=1).mean()
        registered[idx] = c_dst + scale * (src - c_src)
        sides[region] = int(part)
    return sides


def register_template(model: HeadModel, ict_v: np.ndarray, ict_triangles: np.ndarray, ict_part: np.ndarray,
                      ict_landmarks: np.ndarray, settings: RegistrationSettings | None = None) -> RegistrationResult:
    """ict_v (N, 3) already similarity-aligned to FLAME (metres); ict_landmarks (68, 3) positions."""
    settings = settings or RegistrationSettings()
    skin = ict_part <= 1
    target = trimesh.Trimesh(ict_v, ict_triangles[skin[ict_triangles].all(1)], process=False)
    used, sub_faces, keep_faces, _ = _skin_submesh(model)
    source = trimesh.Trimesh(model.v_template[used].astype(np.float64), sub_faces, process=False)

    face_map = -np.ones(model.num_faces, np.int64)
    face_map[np.where(keep_faces)[0]] = np.arange(keep_faces.sum())
    sel = np.asarray(settings.landmarks)
    src_faces = face_map[model.lmk68["full_faces"][sel]]
    ok = src_faces >= 0
    src_lmk = (src_faces[ok], model.lmk68["full_bary"][sel][ok].astype(np.float64))
    reg_skin = nricp_amberg(
        source, target, source_landmarks=src_lmk, target_positions=ict_landmarks[sel][ok],
        steps=[list(s) for s in settings.steps], distance_threshold=settings.distance_threshold,
        eps=1e-4, gamma=1, use_faces=True, use_vertex_normals=True, neighbors_count=8,
    )
    flipped_before = len(flipped_triangles(source.vertices, reg_skin, sub_faces))
    reg_skin = untangle(source.vertices, reg_skin, sub_faces, settings.untangle_rounds)

    registered = model.v_template.astype(np.float64).copy()
    registered[used] = reg_skin
    eye_parts = tuple(int(p) for p in np.unique(ict_part) if p >= 2)
    sides = _place_eyeballs(model, registered, ict_v, ict_part, eye_parts)

    dist = np.zeros(model.num_vertices)
    _, d_skin, _ = trimesh.proximity.closest_point(target, registered[used])
    dist[used] = d_skin
    return RegistrationResult(
        vertices=registered,
        surface_distance=dist,
        flipped_before_untangle=flipped_before,
        flipped_after=len(flipped_triangles(model.v_template, registered, model.faces)),
        eyeball_sides=sides,
    )

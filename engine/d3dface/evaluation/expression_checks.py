"""Do a head's expression keys keep it whole? At weight 1, on a neutral head of the head model:
- eyeBlinkLeft / eyeBlinkRight: lid triangles crossing the eyeball's triangles and lid vertices
  inside the eyeball's fitted sphere, each with the neutral head's own, and the share of the
  eyeball's front that the lids hide from the front view (a closed eye hides it all), and the
  triangles the key flips over (against the neutral head's) or degenerates. The socket
  skin behind the eyeball, which FLAME's eyeballs cut by design, is not lid (``eye_face_sets``);
- jawOpen, mouthClose and jawOpen + mouthClose: lip triangles crossing lip triangles (ARKit's
  mouthClose is a corrective meant on top of jawOpen: alone it pushes the lips into each other).
Numpy; metres.
"""

from __future__ import annotations

import numpy as np
import trimesh

from ..head_model.arkit import expression_keys
from ..head_model.mesh_quality import degenerate_triangles, flipped_triangles
from ..head_model.self_intersection import fit_sphere, intersecting_triangle_pairs, points_inside_sphere

LIP_CHECKS = ("jawOpen", "mouthClose", "jawOpen+mouthClose")
FRONT_CAP_M = 6e-3  # depth of the eyeball's front cap, metres


def front_cover(vertices: np.ndarray, faces: np.ndarray, eyeball: np.ndarray) -> float:
    """Share of the eyeball's front-cap vertices (within FRONT_CAP_M of its front) that a ray from
    the front (down -z) meets skin before the eyeball."""
    is_eye = np.zeros(len(vertices), bool)
    is_eye[eyeball] = True
    front = eyeball[vertices[eyeball, 2] > vertices[eyeball, 2].max() - FRONT_CAP_M]
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    tri, ray = mesh.ray.intersects_id(vertices[front] + [0.0, 0.0, 0.1], np.tile([0.0, 0.0, -1.0], (len(front), 1)),
                                      multiple_hits=False)[:2]
    hidden = np.zeros(len(front), bool)
    hidden[ray] = ~is_eye[faces[tri]].all(1)
    return float(hidden.mean())


def eye_face_sets(model, side: str) -> tuple[np.ndarray, np.ndarray]:
    """One eye's (lid triangles, eyeball triangles) of ``model``, face indices. Lid triangles touch
    ``{side}_eye_region`` and have no corner on the eyeball nor on the socket skin behind it (skin
    inside the eyeball's fitted sphere on the template, which FLAME's eyeballs cut by design)."""
    F = np.asarray(model.faces)
    t = np.asarray(model.v_template, np.float64)
    eye = np.asarray(model.regions[f"{side}_eyeball"])
    behind = points_inside_sphere(t, *fit_sphere(t[eye])) > 0
    behind[eye] = True
    lid = np.isin(F, np.asarray(model.regions[f"{side}_eye_region"])).any(1) & ~behind[F].any(1)
    return np.flatnonzero(lid), np.flatnonzero(np.isin(F, eye).all(1))


def key_offset(model, keys, names: str) -> np.ndarray:
    """(V, 3) offset of the keys ``"a+b"`` (of ``expression_keys(model)``) at weight 1."""
    combo = sum(keys.combos[keys.names.index(n)] for n in names.split("+"))
    return np.einsum("vce,e->vc", np.asarray(model.exprdirs, np.float64), combo)


def random_identities(model, n: int, sigma: float = 1.0, seed: int = 0) -> list[np.ndarray]:
    """``n`` neutral heads (V, 3) of the model's identity space, coefficients ~ N(0, sigma^2)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(model.v_template, np.float64)
    S = np.asarray(model.shapedirs, np.float64)
    return [t + np.einsum("vck,k->vc", S, sigma * rng.normal(size=S.shape[2])) for _ in range(n)]


def check_head(model, neutral: np.ndarray) -> dict:
    """The checks above for one neutral head (V, 3): {check name: {measure: value}}."""
    v0 = np.asarray(neutral, np.float64)
    F = np.asarray(model.faces)
    keys = expression_keys(model)
    out = {}
    for side, key in (("left", "eyeBlinkLeft"), ("right", "eyeBlinkRight")):
        eye = np.asarray(model.regions[f"{side}_eyeball"])
        lid = np.asarray(model.regions[f"{side}_eye_region"])
        lid_f, eye_f = eye_face_sets(model, side)
        centre, radius = fit_sphere(v0[eye])
        v1 = v0 + key_offset(model, keys, key)
        pairs = [len(intersecting_triangle_pairs(v, F, lid_f, eye_f)) for v in (v0, v1)]
        inside = [int((points_inside_sphere(v[lid], centre, radius) > 0).sum()) for v in (v0, v1)]
        out[key] = {"lid_eyeball_pairs_neutral": pairs[0], "lid_eyeball_pairs": pairs[1],
                    "lid_inside_neutral": inside[0], "lid_inside": inside[1],
                    "front_hidden_neutral": front_cover(v0, F, eye), "front_hidden": front_cover(v1, F, eye),
                    "flipped": len(flipped_triangles(v0, v1, F)), "degenerate": len(degenerate_triangles(v1, F))}
    lips = np.flatnonzero(np.isin(F, np.asarray(model.regions["lips"])).any(1))
    neutral_pairs = len(intersecting_triangle_pairs(v0, F, lips))
    for names in LIP_CHECKS:
        out[names] = {"lip_pairs_neutral": neutral_pairs,
                      "lip_pairs": len(intersecting_triangle_pairs(v0 + key_offset(model, keys, names), F, lips))}
    return out


def markdown(rows: list[tuple[str, dict]]) -> str:
    """One line per head: blink crossings and cover, lip crossings per lip check."""
    head = ("| head | blink L: lid x eyeball pairs (neutral) / inside (neutral) / front hidden (neutral) / flipped "
            "| blink R: same | "
            + " | ".join(f"{n}: lip pairs" for n in LIP_CHECKS) + " |\n")
    lines = [head, "|---" * (3 + len(LIP_CHECKS)) + "|\n"]
    for name, r in rows:
        cells = []
        for key in ("eyeBlinkLeft", "eyeBlinkRight"):
            b = r[key]
            cells.append(f"{b['lid_eyeball_pairs']} ({b['lid_eyeball_pairs_neutral']}) / {b['lid_inside']} "
                         f"({b['lid_inside_neutral']}) / {b['front_hidden']:.0%} ({b['front_hidden_neutral']:.0%}) "
                         f"/ {b['flipped']}")
        cells += [str(r[n]["lip_pairs"]) for n in LIP_CHECKS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |\n")
    return "".join(lines)

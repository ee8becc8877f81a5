"""Is every completion a valid face? Per sample, against the fit it completes: flipped and
degenerate triangles (head_model/mesh_quality.py), lip triangles crossing each other and lid
triangles crossing the eyeball (head_model/self_intersection.py). A sample passes when it has
no more of each than the fit itself."""

from __future__ import annotations

import numpy as np

from ..head_model.mesh_quality import degenerate_triangles, flipped_triangles
from ..head_model.self_intersection import intersecting_triangle_pairs
from .expression_checks import eye_face_sets

CHECKS = ("flipped", "degenerate", "lip_pairs", "lid_eyeball_pairs")


def _face_sets(model) -> dict:
    F = np.asarray(model.faces)
    lips = np.flatnonzero(np.isin(F, np.asarray(model.regions["lips"])).any(1))
    return {"lips": lips, "sides": [eye_face_sets(model, side) for side in ("left", "right")]}


def _counts(v: np.ndarray, fit: np.ndarray, F: np.ndarray, sets: dict) -> dict:
    return {"flipped": len(flipped_triangles(fit, v, F)), "degenerate": len(degenerate_triangles(v, F)),
            "lip_pairs": len(intersecting_triangle_pairs(v, F, sets["lips"])),
            "lid_eyeball_pairs": sum(len(intersecting_triangle_pairs(v, F, lid, eye)) for lid, eye in sets["sides"])}


def sample_health(samples: np.ndarray, fit: np.ndarray, model) -> dict:
    """samples (M, V, 3), fit (V, 3) metres -> {"fit": counts, "samples": [counts per sample],
    "worst": the most of each over the samples, "valid": how many samples have no more of any
    than the fit}."""
    F = np.asarray(model.faces)
    sets = _face_sets(model)
    ref = _counts(np.asarray(fit, np.float64), np.asarray(fit, np.float64), F, sets)
    per = [_counts(np.asarray(s, np.float64), np.asarray(fit, np.float64), F, sets) for s in samples]
    worst = {k: max(p[k] for p in per) for k in CHECKS}
    valid = sum(all(p[k] <= ref[k] for k in CHECKS) for p in per)
    return {"fit": ref, "samples": per, "worst": worst, "valid": valid}

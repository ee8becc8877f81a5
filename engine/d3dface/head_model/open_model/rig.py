"""Derive FLAME-style joints, joint regressor and skinning weights for a head model that has
none (the FLAME topology assets carry no LBS data; DESIGN 2.2).

- eye joints: centroids of the eyeball regions;
- jaw joint: the rotation centre that best explains the carried jawOpen shape (a rigid
  fit of the strongly moving vertices, then the least-squares point on its axis at x = 0);
- root joint: centroid of the open boundary ring at the bottom of the neck;
- neck joint: centroid of the ring where the neck region meets the head;
- skinning weights from the regions and the jawOpen shape, smoothed over the mesh so that
  no seam creases, each eyeball rigid to its joint. Pose correctives: none (zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mesh_quality import adjacency, boundary_vertices, smooth_field

JOINTS = ("root", "neck", "jaw", "left_eye", "right_eye")
PARENTS = np.array([-1, 0, 1, 1, 1], np.int32)


@dataclass
class JawFit:
    centre: np.ndarray  # (3,) metres
    axis: np.ndarray  # (3,) unit rotation axis
    angle: float  # radians of the jawOpen shape at weight 1
    vertices: np.ndarray  # ids of the vertices used for the rigid fit
    rms_residual: float  # metres: jawOpen vs the rigid rotation on those vertices


def fit_jaw(template: np.ndarray, jaw_open: np.ndarray, candidates: np.ndarray) -> JawFit:
    """The hinge (axis along x, the head's left-right axis) whose rotation best explains the
    jawOpen delta on ``candidates`` in least squares: centre (y, z) and angle.

    A free rigid fit is ill-conditioned here (a small rotation about a far centre mimics a
    translation), so the axis direction is fixed by the head's symmetry."""
    from scipy.optimize import least_squares

    x, target = template[candidates], template[candidates] + jaw_open[candidates]

    def residual(p):
        c = np.array([0.0, p[0], p[1]])
        return ((x - c) @ rotation_about(np.array([1.0, 0, 0]), p[2]).T + c - target).ravel()

    start = np.array([template[:, 1].mean(), template[:, 2].mean(), 0.2])
    sol = least_squares(residual, start, x_scale=[0.01, 0.01, 0.1])
    r = sol.fun.reshape(-1, 3)
    return JawFit(np.array([0.0, sol.x[0], sol.x[1]]), np.array([1.0, 0, 0]), float(sol.x[2]), candidates,
                  float(np.sqrt((r ** 2).sum(1).mean())))


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def affine_regressor_row(template: np.ndarray, point: np.ndarray, pool: np.ndarray, k: int = 32) -> np.ndarray:
    """Minimum-norm weights over the k vertices of ``pool`` nearest to ``point`` that sum to one and
    reproduce ``point`` exactly on ``template``: a joint that follows the shape around it."""
    near = pool[np.argsort(np.linalg.norm(template[pool] - point, axis=1))[:k]]
    A = np.vstack([template[near].T, np.ones(len(near))])
    w, *_ = np.linalg.lstsq(A, np.append(point, 1.0), rcond=None)
    row = np.zeros(template.shape[0])
    row[near] = w
    return row


def derive_rig(template: np.ndarray, faces: np.ndarray, regions: dict[str, np.ndarray], jaw_open: np.ndarray,
               smoothing: int = 8) -> tuple[np.ndarray, np.ndarray, JawFit]:
    """Returns joint_regressor (5, V), skinning_weights (V, 5) and the jaw fit."""
    V = template.shape[0]
    eyes = {"left_eye": regions["left_eyeball"], "right_eye": regions["right_eyeball"]}
    eyeball = np.concatenate(list(eyes.values()))
    neck = np.union1d(regions["neck"], regions["boundary"])
    skin = np.setdiff1d(np.arange(V), eyeball)
    # the lower face: skin below the middle of the lips, without the lips (they stretch), neck or scalp
    below_mouth = np.where(template[:, 1] < template[regions["lips"], 1].mean())[0]
    lower_face = np.setdiff1d(below_mouth, np.concatenate([eyeball, neck, regions["lips"], regions["scalp"]]))
    jaw = fit_jaw(template, jaw_open, lower_face)

    reg = np.zeros((5, V))
    # FLAME's "boundary" region is the band at the bottom of the neck, holding the mesh's open rim
    bottom = np.intersect1d(boundary_vertices(faces), regions["boundary"])
    reg[0, bottom] = 1.0 / len(bottom)
    A = adjacency(faces, V)
    is_neck = np.zeros(V, bool)
    is_neck[regions["neck"]] = True
    is_head = ~is_neck
    is_head[regions["boundary"]] = False
    ring = np.where(is_neck & ((A @ is_head.astype(float)) > 0))[0]
    reg[1, ring] = 1.0 / len(ring)
    reg[2] = affine_regressor_row(template, jaw.centre, skin)
    reg[3, eyes["left_eye"]] = 1.0 / len(eyes["left_eye"])
    reg[4, eyes["right_eye"]] = 1.0 / len(eyes["right_eye"])
    joints = reg @ template

    # jaw weight: how much of the rigid jaw motion each vertex follows in the jawOpen shape
    R = rotation_about(jaw.axis, jaw.angle)
    rigid = (template - jaw.centre) @ R.T + jaw.centre - template
    follow = (jaw_open * rigid).sum(1) / np.maximum((rigid * rigid).sum(1), 1e-12)
    w_jaw = np.clip(follow, 0, 1)
    w_jaw[np.linalg.norm(rigid, axis=1) < 1e-4] = 0
    # neck: blend root -> neck joint by height between the two rings
    y_root, y_neck = joints[0, 1], joints[1, 1]
    w_root = np.zeros(V)
    w_root[neck] = np.clip((y_neck - template[neck, 1]) / max(y_neck - y_root, 1e-6), 0, 1)
    W = np.zeros((V, 5))
    W[:, 2] = w_jaw * (1 - w_root)
    W[:, 0] = w_root
    W[:, 1] = 1 - W[:, 0] - W[:, 2]
    movable = np.ones(V, bool)
    movable[eyeball] = False
    W = smooth_field(W, faces, movable, iterations=smoothing)
    W[eyeball] = 0
    W[eyes["left_eye"], 3] = 1
    W[eyes["right_eye"], 4] = 1
    W = np.clip(W, 0, None)
    W /= W.sum(1, keepdims=True)
    return reg.astype(np.float32), W.astype(np.float32), jaw

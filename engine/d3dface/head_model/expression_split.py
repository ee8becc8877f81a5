"""Identity apart from expression: the fit's expression and pose, and heads with them removed.

A fitted head is ``LBS(v_shaped + P(pose), pose)`` with ``v_shaped = neutral + exprdirs @ w``
(``layer.py``). ``ExpressionState`` holds what the fit added on top of the neutral: the expression
weights ``w`` (E,) in the head model's order, the pose (3J,) axis-angle (the fit moves the jaw
only) and the rest joints (J, 3) the pose turns about. ``neutralise`` removes them from any head
on the fit's pose (the fit, its completions): the inverse of each vertex's blended transform, the
pose correctives, then the expression offsets. Numpy, float64; metres, FLAME axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .model import HeadModel


@dataclass(frozen=True)
class ExpressionState:
    weights: np.ndarray  # (E,) expression coefficients, the head model's order
    pose: np.ndarray  # (3J,) axis-angle per joint, radians (zeros(3) for a model without LBS)
    joints: np.ndarray  # (J, 3) rest joints of the fitted head, metres ((0, 3) without LBS)

    @classmethod
    def from_fit(cls, model: HeadModel, params: dict, unposed: np.ndarray) -> "ExpressionState":
        """From a FitResult's ``params`` (``expression`` over ``expression_index``, ``jaw`` (3,))
        and its vertices before posing, (V, 3)."""
        w = np.zeros(model.num_expr)
        w[np.asarray(params["expression_index"], np.int64)] = np.asarray(params["expression"], np.float64)
        if not model.has_lbs:
            return cls(w, np.zeros(3), np.zeros((0, 3)))
        pose = np.zeros(3 * model.num_joints)
        jaw = list(model.joint_names).index("jaw") if "jaw" in model.joint_names else 2
        pose[3 * jaw:3 * jaw + 3] = np.asarray(params["jaw"], np.float64)
        joints = np.asarray(model.joint_regressor, np.float64) @ np.asarray(unposed, np.float64)
        return cls(w, pose, joints)

    def as_arrays(self) -> dict:
        return {"expression_weights": self.weights.astype(np.float64), "pose": self.pose.astype(np.float64),
                "rest_joints": self.joints.astype(np.float64)}

    @classmethod
    def from_arrays(cls, d) -> "ExpressionState | None":
        """From ``as_arrays`` keys in a mapping (an .npz); None when they are absent."""
        keys = ("expression_weights", "pose", "rest_joints")
        if not all(k in d for k in keys):
            return None
        w, p, j = (np.asarray(d[k], np.float64) for k in keys)
        return cls(w, p, j.reshape(-1, 3))


def rotation_matrices(rotvecs: np.ndarray) -> np.ndarray:
    """(N, 3) axis-angle (any shape of 3N values) -> (N, 3, 3) rotations."""
    return Rotation.from_rotvec(np.asarray(rotvecs, np.float64).reshape(-1, 3)).as_matrix()


def joint_transforms(model: HeadModel, state: ExpressionState) -> np.ndarray:
    """(J, 3, 4) transforms taking a rest point bound to each joint to its posed place."""
    R = rotation_matrices(state.pose)
    J = model.num_joints
    parents = np.asarray(model.parents, np.int64)
    world = np.zeros((J, 4, 4))
    for j in range(J):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = state.joints[j] - (state.joints[parents[j]] if parents[j] >= 0 else 0.0)
        world[j] = local if parents[j] < 0 else world[parents[j]] @ local
    out = world[:, :3, :].copy()
    out[:, :, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], state.joints)
    return out


def pose_correctives(model: HeadModel, state: ExpressionState) -> np.ndarray:
    """(V, 3) the pose-dependent offsets P(pose) added before skinning."""
    R = rotation_matrices(state.pose)
    feature = (R[1:] - np.eye(3)).reshape(-1)
    return np.einsum("vcp,p->vc", np.asarray(model.posedirs, np.float64), feature)


def neutralise(model: HeadModel, vertices: np.ndarray, state: ExpressionState) -> np.ndarray:
    """Heads on the fit's expression and pose, (..., V, 3) -> the same heads neutral (pose zero,
    no expression), float64."""
    v = np.asarray(vertices, np.float64)
    if model.has_lbs:
        T = np.einsum("vj,jab->vab", np.asarray(model.skinning_weights, np.float64), joint_transforms(model, state))
        Tinv = np.linalg.inv(T[:, :, :3])
        v = np.einsum("vab,...vb->...va", Tinv, v - T[:, :, 3]) - pose_correctives(model, state)
    elif np.any(state.pose):
        R = rotation_matrices(state.pose[:3])[0]
        v = v @ R
    return v - np.einsum("vce,e->vc", np.asarray(model.exprdirs, np.float64), state.weights)

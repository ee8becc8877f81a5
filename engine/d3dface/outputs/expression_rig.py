"""Scene hints for animation: the expression shape keys of a head, the rig's bone frames, the
fitted pose as bone rotations, and the drivers that turn the eyes with the eyeLook keys. Pure
numpy; the add-on copies these numbers into Blender (DESIGN 2.1).

Frames: FLAME world (y up, metres, the face looks down +z), which is also the armature's own
space (the armature object carries the +90 degree x rotation). A bone's rest frame is a
rotation whose columns are the bone's x, y, z axes; y runs from the head to the tail (Blender's
convention), x is FLAME's x made orthogonal to it. A Blender pose bone's quaternion acts in that
frame: a FLAME joint rotation R (relative to its parent, as in ``lbs.py``) is the pose bone
rotation ``B^T R B`` for the rest frame B.

Arrays added to ``blender_scene.npz`` (K keys, V vertices, J joints, D driven channels):
- ``expression_key_names`` (K,) str, ``expression_key_kinds`` (K,) "arkit" / "model" / "residual"
  (``head_model/arkit.py``), ``expression_key_offsets`` (K, V, 3) float32 metres from the neutral,
  ``expression_key_values`` (K,) the photo's expression (the keys' values that rebuild the fit with
  the rig's pose), ``expression_key_ranges`` (K, 2) slider min and max (covering the values)
- ``bone_frames`` (J, 3, 3), ``bone_lengths`` (J,) metres
- ``pose_quaternions`` (J, 4) w, x, y, z: the fitted pose per pose bone (the jaw)
- eye drivers: ``eye_driver_bones`` (D,) joint index, ``eye_driver_channels`` (D,) Euler XYZ index,
  ``eye_driver_keys`` (D, 2) str and ``eye_driver_coefs`` (D, 2) radians per unit key value: the
  bone's Euler angle on that channel is ``coefs[0] * key0 + coefs[1] * key1``
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..head_model.arkit import expression_keys, photo_weights
from ..head_model.expression_split import ExpressionState, rotation_matrices

# eye rotation at eyeLook weight 1, degrees (ARKit gives no angle; about the eyes' comfortable
# range, which the eyeLook lid shapes of the model follow)
EYE_LOOK_DEG = {"Up": 25.0, "Down": 25.0, "In": 30.0, "Out": 30.0}
# FLAME axis a gaze turns about, and the sign that turns the eye that way: looking up turns
# about -x (+z forward to +y), out turns the left eye (+x side) about +y and the right about -y
_GAZE = {"Up": (0, -1.0), "Down": (0, 1.0), "Out": (1, 1.0), "In": (1, -1.0)}
_EYES = (("left_eye", "Left", 1.0), ("right_eye", "Right", -1.0))


def expression_key_hints(result, model) -> dict:
    """The ``expression_key_*`` arrays for a result with an expression state (else {})."""
    state = getattr(result, "expression", None)
    keys = expression_keys(model)
    if state is None or not keys.names:
        return {}
    values, combos = photo_weights(keys, state.weights)
    ranges = np.stack([np.minimum(0.0, np.floor(values)), np.maximum(1.0, np.ceil(values))], 1)
    return {
        "expression_key_names": np.array(keys.names, dtype=str), "expression_key_kinds": np.array(keys.kinds, dtype=str),
        "expression_key_offsets": keys.offsets(model, combos).astype(np.float32),
        "expression_key_values": values, "expression_key_ranges": ranges,
    }


def bone_frames(heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """(J, 3) heads and tails -> (J, 3, 3) rest frames (module docstring)."""
    y = tails - heads
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    x = np.array([1.0, 0.0, 0.0]) - y[:, :1] * y
    bad = np.linalg.norm(x, axis=1) < 1e-6  # a bone along x: take FLAME's y instead
    x[bad] = np.array([0.0, 1.0, 0.0]) - y[bad, 1:2] * y[bad]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    z = np.cross(x, y)
    return np.stack([x, y, z], 2)


def pose_quaternions(frames: np.ndarray, state: ExpressionState) -> np.ndarray:
    """(J, 4) w, x, y, z pose-bone rotations of the state's pose, for rest frames (J, 3, 3)."""
    R = rotation_matrices(state.pose)
    local = np.einsum("jba,jbc,jcd->jad", frames, R, frames)
    xyzw = Rotation.from_matrix(local).as_quat()
    q = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1)
    return np.where(q[:, :1] < 0, -q, q)


def eye_driver_hints(joint_names, frames: np.ndarray, key_names) -> dict:
    """The ``eye_driver_*`` arrays: each eye bone's Euler channels driven by its eyeLook keys
    (up against down, out against in); {} when the rig or the keys are missing."""
    names = list(joint_names)
    keys = set(key_names)
    bones, channels, pairs, coefs = [], [], [], []
    for joint, side, out_sign in _EYES:
        if joint not in names:
            continue
        j = names.index(joint)
        for a, b in (("Up", "Down"), ("Out", "In")):
            ka, kb = f"eyeLook{a}{side}", f"eyeLook{b}{side}"
            if ka not in keys or kb not in keys:
                continue
            axis_index, sign = _GAZE[a]
            axis = np.eye(3)[axis_index] * sign * (out_sign if axis_index == 1 else 1.0)
            local = frames[j].T @ axis  # the FLAME axis in the bone's frame
            ch = int(np.argmax(np.abs(local)))
            if abs(abs(local[ch]) - 1.0) > 1e-6:
                continue  # a bone frame not aligned with the gaze axes: no Euler channel turns it
            s = float(np.sign(local[ch]))
            bones.append(j)
            channels.append(ch)
            pairs.append((ka, kb))
            coefs.append((s * np.radians(EYE_LOOK_DEG[a]), -s * np.radians(EYE_LOOK_DEG[b])))
    if not bones:
        return {}
    return {"eye_driver_bones": np.array(bones, np.int64), "eye_driver_channels": np.array(channels, np.int64),
            "eye_driver_keys": np.array(pairs, dtype=str), "eye_driver_coefs": np.array(coefs, np.float64)}

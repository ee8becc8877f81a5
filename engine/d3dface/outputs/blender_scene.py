"""Scene hints for the Blender add-on: every number it needs beyond the result file, computed
here so that the add-on does no mathematics (DESIGN 2.1). Pure numpy.

Frames: FLAME world (y up, metres, the face looks down +z); the engine camera
(``X_cam = R X + t``, looks down -z, y up: the same axes as a Blender camera object);
original-image pixels (pixel centres at integers, top-left origin). The add-on parents the
camera to the head object, so the camera's local matrix is camera -> FLAME world.

Arrays of ``blender_scene.npz`` (V vertices, J joints):
- ``photo_uv`` (V, 2): the fit's vertices projected into the photo, Blender UV (0..1, v up)
- ``visible`` (V,) float32: 1 where the photo shows the vertex (not M_o^v), else 0
- ``camera_matrix`` (4, 4): camera -> FLAME world (the Blender camera's local matrix)
- ``camera_lens_mm``, ``camera_sensor_mm`` (sensor_fit AUTO), ``camera_shift`` (2,) Blender shift
- ``photo_resolution`` (2,) W, H of the photo in pixels
- ``image_plane_location`` (3,) and ``image_plane_size``: an image empty in the camera's frame
  that exactly fills the camera's view, behind the head
- rig (only for models with LBS): ``joint_names`` (J,), ``parents`` (J,), ``bone_heads`` (J, 3) (the
  fit's rest joints), ``bone_tails`` (J, 3) FLAME metres, ``bone_frames``, ``bone_lengths`` and
  ``pose_quaternions`` (``expression_rig``), ``skinning_weights`` (V, J); the same weights grouped for
  Blender's ``VertexGroup.add`` (one call per joint and weight value, weights rounded to
  ``WEIGHT_STEP``): ``weight_joint`` (K,), ``weight_value`` (K,), ``weight_offsets`` (K+1,) into
  ``weight_vertices`` (N,)
- ``mean_texture`` (str): path of FLAME's mean texture when the assets are present, else ""
- ``photo_texture`` (str): the photo baked into the UV layout (``texture_bake``), a PNG path
  relative to the folder of this file (the result's folder), else ""
- uncertainty (``uncertainty_hints``): ``uncertainty`` (V,) float32, the spread of the samples
  at each vertex (RMS distance of the samples' vertex from their mean, metres);
  ``uncertainty_normaliser`` () metres, its maximum (0 for a single sample);
  ``uncertainty_weight`` (V,) float32 in [0, 1], spread / normaliser (0 where it is 0);
  ``uncertainty_colour`` (V, 4) float32 linear RGBA, ``UNCERTAINTY_RAMP`` at the weight
- animation (``expression_rig``): ``expression_key_*`` and ``eye_driver_*``, when the result
  separates the neutral from the fitted expression
"""

from __future__ import annotations

import numpy as np

from ..head_model.expression_split import rotation_matrices
from .expression_rig import bone_frames, expression_key_hints, eye_driver_hints, pose_quaternions
from .result_file import sample_spread

SENSOR_MM = 36.0
PLANE_BEHIND_HEAD_M = 0.3
WEIGHT_STEP = 1e-4  # Blender's armature then skins as the engine does, to ~1e-6 m
# low -> high spread: (weight, linear RGB) stops, dark blue, teal, yellow, red
UNCERTAINTY_RAMP = ((0.0, (0.01, 0.02, 0.25)), (0.35, (0.0, 0.35, 0.35)), (0.7, (0.9, 0.75, 0.02)),
                    (1.0, (0.8, 0.02, 0.01)))


def uncertainty_hints(samples: np.ndarray) -> dict:
    """The ``uncertainty*`` arrays of ``blender_scene.npz`` for (M, V, 3) samples."""
    spread = sample_spread(samples)
    top = float(spread.max()) if spread.size else 0.0
    weight = spread / top if top > 0.0 else np.zeros_like(spread)
    stops = np.array([w for w, _ in UNCERTAINTY_RAMP])
    rgb = np.stack([np.interp(weight, stops, [c[k] for _, c in UNCERTAINTY_RAMP]) for k in range(3)], 1)
    colour = np.concatenate([rgb, np.ones((len(weight), 1))], 1)
    return {"uncertainty": spread.astype(np.float32), "uncertainty_normaliser": np.array(top),
            "uncertainty_weight": weight.astype(np.float32), "uncertainty_colour": colour.astype(np.float32)}


def group_weights(weights: np.ndarray, step: float = WEIGHT_STEP) -> dict:
    """(V, J) skinning weights -> vertex lists per (joint, rounded weight); zero weights dropped."""
    q = np.round(np.asarray(weights, np.float64) / step).astype(np.int64)
    joints, values, offsets, verts = [], [], [0], []
    for j in range(q.shape[1]):
        idx = np.flatnonzero(q[:, j] > 0)
        order = idx[np.argsort(q[idx, j], kind="stable")]
        vals, starts = np.unique(q[order, j], return_index=True)
        bounds = list(starts) + [len(order)]
        for k, v in enumerate(vals):
            joints.append(j)
            values.append(v * step)
            verts.append(order[bounds[k]:bounds[k + 1]])
            offsets.append(offsets[-1] + bounds[k + 1] - bounds[k])
    return {"weight_joint": np.array(joints, np.int64), "weight_value": np.array(values, np.float64),
            "weight_offsets": np.array(offsets, np.int64),
            "weight_vertices": np.concatenate(verts) if verts else np.zeros(0, np.int64)}


def axis_angle_matrix(rotvec) -> np.ndarray:
    """(3,) axis-angle -> (3, 3) rotation."""
    return rotation_matrices(rotvec)[0]


def crop_to_photo(camera: dict, crop_box) -> dict:
    """The camera's intrinsics in original-photo pixels: focal, principal (cx, cy)."""
    S = float(camera["image_size"][1])
    x0, y0, x1, _ = (float(v) for v in crop_box)
    scale = S / (x1 - x0)  # crop px per photo px
    f = np.asarray(camera["focal"], np.float64) / scale
    c = np.asarray(camera["principal"], np.float64) / scale + np.array([x0, y0])
    return {"focal": f, "principal": c}


def project_to_photo(vertices: np.ndarray, camera: dict, crop_box) -> np.ndarray:
    """(V, 3) FLAME world -> (V, 2) photo pixel coordinates (x right, y down)."""
    R = axis_angle_matrix(camera["rotation"])
    pc = np.asarray(vertices, np.float64) @ R.T + np.asarray(camera["translation"], np.float64)
    intr = crop_to_photo(camera, crop_box)
    depth = np.maximum(-pc[:, 2], 1e-9)
    u = intr["principal"][0] + intr["focal"][0] * pc[:, 0] / depth
    v = intr["principal"][1] - intr["focal"][1] * pc[:, 1] / depth
    return np.stack([u, v], 1)


def bone_tails(names, heads: np.ndarray, parents) -> np.ndarray:
    """A tail per joint: towards the single child where there is one, else a short
    bone in a direction that suits the joint (eyes and jaw forward, others up)."""
    heads = np.asarray(heads, np.float64)
    tails = np.empty_like(heads)
    children = {j: [k for k, p in enumerate(parents) if p == j] for j in range(len(names))}
    for j, name in enumerate(names):
        kids = children[j]
        if len(kids) == 1 and np.linalg.norm(heads[kids[0]] - heads[j]) > 0.01:
            tails[j] = heads[kids[0]]
        elif "eye" in name:
            tails[j] = heads[j] + (0.0, 0.0, 0.02)
        elif "jaw" in name:
            tails[j] = heads[j] + (0.0, -0.03, 0.07)
        else:
            tails[j] = heads[j] + (0.0, 0.05, 0.0)
    return tails


def scene_hints(result, model=None, mean_texture: str = "", photo_texture: str = "") -> dict:
    """The arrays of ``blender_scene.npz`` for a ReconstructionResult (and its head model)."""
    H, W = (int(v) for v in result.image_size)
    cam = result.camera
    fit = np.asarray(result.fit_vertices, np.float64)
    pix = project_to_photo(fit, cam, result.crop_box)
    photo_uv = np.stack([(pix[:, 0] + 0.5) / W, 1.0 - (pix[:, 1] + 0.5) / H], 1)

    R = axis_angle_matrix(cam["rotation"])
    t = np.asarray(cam["translation"], np.float64)
    c2w = np.eye(4)
    c2w[:3, :3] = R.T
    c2w[:3, 3] = -R.T @ t
    intr = crop_to_photo(cam, result.crop_box)
    f = float(intr["focal"][0])
    cx, cy = (float(v) for v in intr["principal"])
    side = float(max(W, H))
    shift = np.array([(W / 2.0 - (cx + 0.5)) / side, (cy + 0.5 - H / 2.0) / side])

    centre_depth = float(-(R @ fit.mean(0) + t)[2])
    d = centre_depth + PLANE_BEHIND_HEAD_M
    plane_loc = np.array([((W - 1) / 2.0 - cx) * d / f, -((H - 1) / 2.0 - cy) * d / f, -d])

    out = {
        "format": np.array("d3dface-blender-scene"), "version": np.array(1),
        "photo_uv": photo_uv.astype(np.float32),
        "visible": (~np.asarray(result.occluded, bool)).astype(np.float32),
        "camera_matrix": c2w,
        "camera_lens_mm": np.array(f * SENSOR_MM / side), "camera_sensor_mm": np.array(SENSOR_MM),
        "camera_shift": shift, "photo_resolution": np.array([W, H], np.int64),
        "image_plane_location": plane_loc, "image_plane_size": np.array(side * d / f),
        "mean_texture": np.array(str(mean_texture or "")),
        "photo_texture": np.array(str(photo_texture or "")),
        **uncertainty_hints(result.samples),
    }
    if model is not None:
        out.update(expression_key_hints(result, model))
    state = getattr(result, "expression", None)
    if model is not None and getattr(model, "has_lbs", False):
        heads = state.joints if state is not None else np.asarray(model.joint_regressor, np.float64) @ fit
        names = list(model.joint_names) or [f"joint_{j}" for j in range(heads.shape[0])]
        parents = np.asarray(model.parents, np.int64)
        tails = bone_tails(names, heads, parents)
        frames = bone_frames(heads, tails)
        out.update({
            "joint_names": np.array(names, dtype=str), "parents": parents,
            "bone_heads": heads, "bone_tails": tails, "bone_frames": frames,
            "bone_lengths": np.linalg.norm(tails - heads, axis=1),
            "skinning_weights": np.asarray(model.skinning_weights, np.float32),
            **group_weights(model.skinning_weights),
        })
        if state is not None:
            out["pose_quaternions"] = pose_quaternions(frames, state)
            out.update(eye_driver_hints(names, frames, out.get("expression_key_names", ())))
    return out

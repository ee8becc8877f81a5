"""A fast stand-in for ``d3dface.reconstruct`` (the same ``reconstruct``, ``interpolate`` and
``get_engine`` with the same signatures), for the worker and add-on tests. Select it with ``D3DFACE_WORKER_ENGINE=addon_fake_engine`` (tests/ on
PYTHONPATH). It reads the image with the engine's real loader (so a bad image fails as in the
real engine), reports progress for ``D3DFACE_FAKE_SECONDS`` (default 0.4 s) while polling
cancel, and writes a ReconstructionResult built from the open head model's template (sample k
is the template plus a seeded smooth offset on the lower face) and its ``blender_scene.npz``,
as the real engine's outputs stage does. Its "decoder" is linear: a latent's first three
numbers are that offset (``fake_decode``), so interpolating latents interpolates the samples,
from a result file or from an ``interpolation_source.npz`` alike."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from d3dface.errors import D3DFaceError
from d3dface.head_model.expression_split import neutralise


class Cancelled(D3DFaceError):
    kind = "cancelled"


@lru_cache(maxsize=None)
def get_engine(model=None, device="auto"):
    """What the worker reads from an engine: its ``.model`` (the head model)."""
    from d3dface.head_model import load_head_model

    warm_s = float(os.environ.get("D3DFACE_FAKE_WARM_SECONDS", "0"))
    return SimpleNamespace(model=load_head_model(model), device=device, warm_up=lambda: time.sleep(warm_s))


def _lower(v: np.ndarray) -> np.ndarray:
    """(V, 1) float32: 1 on the lower half of the template (where the fake samples differ)."""
    return (v[:, 1] < np.median(v[:, 1])).astype(np.float32)[:, None]


def fake_decode(z: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """(K, 10, 64) latents -> (K, V, 3): the fit plus z[:, 0, :3] on the lower face."""
    from d3dface.head_model import load_head_model

    lower = _lower(load_head_model(None).v_template.astype(np.float32))
    return (fit[None] + lower[None] * z[:, 0, None, :3]).astype(np.float32)


def template_result(samples: int = 3, seed: int = 0, image_path: str = "", image_size=(400, 300)):
    """A ReconstructionResult on the template: distinct, seeded shapes for every key."""
    from d3dface.head_model import load_head_model
    from d3dface.outputs.result_file import ReconstructionResult

    m = load_head_model(None)
    v = m.v_template.astype(np.float32)
    rng = np.random.default_rng(seed)
    neutral_fit = v + np.float32(0.002) * np.sin(v * 40.0).astype(np.float32)
    state = fake_expression(m, neutral_fit)
    fit = pose_heads(m, neutral_fit, state)
    offsets = np.stack([rng.normal(0, 0.004, 3).astype(np.float32) * (1 + k) for k in range(samples)])
    latents = rng.normal(size=(samples, 10, 64)).astype(np.float32)
    latents[:, 0, :3] = offsets
    samples_arr = fake_decode(latents, fit)
    lower = _lower(v)
    H, W = image_size
    side = 0.8 * min(H, W)
    box = np.array([W / 2 - side / 2, H / 2 - side / 2, W / 2 + side / 2, H / 2 + side / 2])
    f = 0.5 * 224 / np.tan(np.radians(7.0))
    camera = {"focal": [f, f], "principal": [111.5, 111.5], "rotation": [0.05, 0.3, 0.02],
              "translation": [0.0, 0.02, -0.33 * f / (0.9 * 224)], "image_size": [224, 224]}
    return ReconstructionResult(
        fit_vertices=fit, visible_fit_vertices=fit + lower * np.float32(0.001), samples=samples_arr,
        latents=latents,
        mu=np.zeros((10, 64), np.float32), logvar=np.zeros((10, 64), np.float32),
        occluded=(lower[:, 0] > 0), faces=m.faces, uvs=m.uvs, uv_faces=m.uv_faces, camera=camera,
        crop_box=box, image_size=(H, W), image_path=image_path, head_model="open default",
        settings={"samples": samples, "seed": seed}, versions={"d3dface": "fake"}, expression=state,
        neutral_fit_vertices=neutralise(m, fit, state).astype(np.float32),
        neutral_visible_fit_vertices=neutralise(m, fit + lower * np.float32(0.001), state).astype(np.float32),
        neutral_samples=neutralise(m, samples_arr, state).astype(np.float32),
    )


# an asymmetric expression (the model's halves of browInnerUp differ) and an open jaw
FAKE_EXPRESSION = {"mouthSmile_L": 0.5, "mouthSmile_R": 0.4, "eyeBlink_L": 0.3, "browInnerUp_L": 0.4, "jawOpen": 0.2}
FAKE_JAW = (0.12, 0.0, 0.0)


def fake_expression(m, neutral: np.ndarray):
    """The ExpressionState of FAKE_EXPRESSION and FAKE_JAW on a neutral head (V, 3)."""
    from d3dface.head_model.expression_split import ExpressionState

    w = np.zeros(m.num_expr)
    for name, value in FAKE_EXPRESSION.items():
        w[m.expr_names.index(name)] = value
    pose = np.zeros(3 * m.num_joints)
    pose[6:9] = FAKE_JAW
    shaped = neutral + np.einsum("vce,e->vc", m.exprdirs.astype(np.float64), w)
    return ExpressionState(w, pose, m.joint_regressor.astype(np.float64) @ shaped)


def pose_heads(m, neutral: np.ndarray, state) -> np.ndarray:
    """(..., V, 3) neutral heads with the state's expression and pose, by the engine's torch LBS
    with the state's joints (the forward direction the engine's ``neutralise`` inverts)."""
    shaped = np.asarray(neutral, np.float64) + np.einsum("vce,e->vc", m.exprdirs.astype(np.float64), state.weights)
    return skin(m.skinning_weights, m.parents, shaped, state.pose, state.joints).astype(np.float32)


def skin(weights, parents, shaped: np.ndarray, pose: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(..., V, 3) float64: LBS of shaped heads with given rest joints (J, 3), by the engine's torch
    joint chain (no pose correctives: the open model has none)."""
    import torch

    from d3dface.head_model.lbs import axis_angle_to_matrix, rigid_transforms

    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    R = axis_angle_to_matrix(t(pose).reshape(-1, 3))[None]
    _, A = rigid_transforms(R, t(joints)[None], torch.as_tensor(np.asarray(parents), dtype=torch.long))
    T = torch.einsum("vj,jab->vab", t(weights), A[0, :, :3, :])
    return (torch.einsum("vab,...vb->...va", T[:, :, :3], t(shaped)) + T[:, :, 3]).numpy()


def reconstruct(image, mask="auto", samples=8, seed=0, device="auto", diversity=1.0, out_dir=None,
                progress=None, cancel=None, model=None):
    from d3dface.inputs.image_io import load_image

    rgb = load_image(image)
    print("a library printing to stdout")  # the worker must keep this off the protocol stream
    if mask not in (None, "auto", "none") and not Path(mask).is_file():
        raise D3DFaceError(f"mask not found: {mask}")
    seconds = float(os.environ.get("D3DFACE_FAKE_SECONDS", "0.4"))
    t0 = time.monotonic()
    steps = 20
    for k in range(steps):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        if progress is not None:
            progress("fit: landmarks" if k < steps // 2 else "diversity: DPP", k / steps)
        end = time.monotonic() + seconds / steps
        while time.monotonic() < end:  # an engine polls cancel often
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            time.sleep(min(0.02, max(end - time.monotonic(), 0)))
    if os.environ.get("D3DFACE_FAKE_CRASH"):
        raise RuntimeError("fake engine crash")
    res = template_result(samples, seed, str(image), rgb.shape[:2])
    res.timings = {"total": time.monotonic() - t0}
    path = Path(out_dir) / "result.npz"
    res.save(path)  # (the real engine replaces out_dir atomically with its files)
    write_scene(res, path.with_name("blender_scene.npz"), model)
    return res, path


def write_scene(res, path: Path, model=None) -> Path:
    """``blender_scene.npz`` as ``d3dface.outputs.reconstruction_files`` writes it."""
    from d3dface.atomic import write_atomic
    from d3dface.outputs.blender_scene import scene_hints
    from d3dface.paths import mean_texture_path

    texture = mean_texture_path()
    hints = scene_hints(res, get_engine(model).model, mean_texture=str(texture) if texture and texture.is_file() else "")
    return write_atomic(path, lambda p: np.savez(p, **hints))


def interpolate(result_path, i, j, steps, device="auto", model=None):
    """(steps, V, 3) between samples i and j (1-based) of a result file, an
    interpolation_source.npz or an InterpolationSource: the fake decode of the linearly
    interpolated latents."""
    from d3dface.outputs.interpolation_source import InterpolationSource, load_interpolation_source

    src = result_path if isinstance(result_path, InterpolationSource) else load_interpolation_source(result_path)
    a = np.linspace(0, 1, steps, dtype=np.float32)[:, None, None]
    return fake_decode((1 - a) * src.latents[i - 1][None] + a * src.latents[j - 1][None], src.fit_vertices)

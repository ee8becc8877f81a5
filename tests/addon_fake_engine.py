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
    fit = v + np.float32(0.002) * np.sin(v * 40.0).astype(np.float32)
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
        settings={"samples": samples, "seed": seed}, versions={"d3dface": "fake"},
    )


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
    """(steps, V, 3) between samples i and j (1-based) of a result file or an
    interpolation_source.npz: the fake decode of the linearly interpolated latents."""
    from d3dface.outputs.interpolation_source import load_interpolation_source

    src = load_interpolation_source(result_path)
    a = np.linspace(0, 1, steps, dtype=np.float32)[:, None, None]
    return fake_decode((1 - a) * src.latents[i - 1][None] + a * src.latents[j - 1][None], src.fit_vertices)

"""Read the engine's files (result .npz, blender_scene .npz, interpolation .npz) into plain
arrays, checking every shape before the scene is touched. No bpy, no mathematics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RESULT_FORMAT = "d3dface-result"
SCENE_FORMAT = "d3dface-blender-scene"


class ResultFileError(ValueError):
    """A result file that cannot be read or is inconsistent (one line)."""


@dataclass
class ResultData:
    path: str
    fit: np.ndarray  # (V, 3) float32
    visible_fit: np.ndarray  # (V, 3)
    samples: np.ndarray  # (M, V, 3)
    latents: np.ndarray  # (M, 1, K) "gaussian" or (M, 10, 64) Mesh-VAE
    mu: np.ndarray
    logvar: np.ndarray
    occluded: np.ndarray  # (V,) bool
    diversity: np.ndarray | None  # (V,)
    faces: np.ndarray  # (F, 3) int32
    uvs: np.ndarray | None
    uv_faces: np.ndarray | None
    image_path: str
    image_size: tuple
    camera: dict
    settings: dict
    versions: dict
    head_model: str
    scene: dict = field(default_factory=dict)
    head_model_hash: str = ""
    # the same heads without the fitted expression and pose (None in results of older engines)
    neutral_fit: np.ndarray | None = None  # (V, 3)
    neutral_visible_fit: np.ndarray | None = None  # (V, 3)
    neutral_samples: np.ndarray | None = None  # (M, V, 3)
    expression: dict = field(default_factory=dict)  # expression_weights (E,), pose (3J,), rest_joints (J, 3)

    @property
    def has_neutral(self) -> bool:
        return self.neutral_fit is not None and self.neutral_samples is not None and self.neutral_visible_fit is not None

    @property
    def basis(self) -> np.ndarray:
        """The object's "Basis": the neutral fit where the result has one, else the fit."""
        return self.neutral_fit if self.has_neutral else self.fit

    @property
    def key_visible_fit(self) -> np.ndarray:
        return self.neutral_visible_fit if self.has_neutral else self.visible_fit

    @property
    def key_samples(self) -> np.ndarray:
        return self.neutral_samples if self.has_neutral else self.samples

    @property
    def num_vertices(self) -> int:
        return int(self.fit.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])


EXPRESSION_KEYS = ("expression_weights", "pose", "rest_joints")


def _f32(a):
    return None if a is None else a.astype(np.float32)


def _str(a) -> str:
    return str(a[()]) if isinstance(a, np.ndarray) else str(a)


_PRELOADED: dict = {}


def preload(path: str, scene_path: str = "") -> None:
    """Read a result in advance (from a worker thread); ``read_result`` then returns it at once.
    Errors are kept and raised by ``read_result``."""
    try:
        _PRELOADED[(path, scene_path)] = read_result(path, scene_path, use_preloaded=False)
    except ResultFileError as exc:
        _PRELOADED[(path, scene_path)] = exc


def read_result(path: str, scene_path: str = "", use_preloaded: bool = True) -> ResultData:
    if use_preloaded and (path, scene_path) in _PRELOADED:
        r = _PRELOADED.pop((path, scene_path))
        if isinstance(r, Exception):
            raise r
        return r
    p = Path(path)
    if not p.is_file():
        raise ResultFileError(f"result file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as d:
            if "format" not in d.files or _str(d["format"]) != RESULT_FORMAT:
                raise ResultFileError(f"{p} is not a d3dface result file")
            g = lambda k: d[k] if k in d.files else None  # noqa: E731
            r = ResultData(
                path=str(p), fit=d["fit_vertices"].astype(np.float32), visible_fit=d["visible_fit_vertices"].astype(np.float32),
                samples=d["samples"].astype(np.float32), latents=d["latents"].astype(np.float32),
                mu=d["mu"].astype(np.float32), logvar=d["logvar"].astype(np.float32), occluded=d["occluded"].astype(bool),
                diversity=g("diversity"), faces=d["faces"].astype(np.int32), uvs=g("uvs"), uv_faces=g("uv_faces"),
                image_path=_str(d["image_path"]), image_size=tuple(int(v) for v in d["image_size"]),
                camera=json.loads(_str(d["camera_json"])), settings=json.loads(_str(d["settings_json"])),
                versions=json.loads(_str(d["versions_json"])), head_model=_str(g("head_model") if "head_model" in d.files else ""),
                head_model_hash=_str(d["head_model_hash"]) if "head_model_hash" in d.files else "",
                neutral_fit=_f32(g("neutral_fit_vertices")), neutral_visible_fit=_f32(g("neutral_visible_fit_vertices")),
                neutral_samples=_f32(g("neutral_samples")),
                expression={k: d[k].astype(np.float64) for k in EXPRESSION_KEYS if k in d.files},
            )
    except ResultFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line for the user
        raise ResultFileError(f"cannot read result file {p}: {exc}") from None
    V = r.fit.shape[0]
    M = r.samples.shape[0] if r.samples.ndim == 3 else -1
    checks = [
        (r.fit.shape == (V, 3), f"fit_vertices {r.fit.shape}"),
        (r.visible_fit.shape == (V, 3), f"visible_fit_vertices {r.visible_fit.shape}"),
        (r.samples.ndim == 3 and r.samples.shape[1:] == (V, 3), f"samples {r.samples.shape}"),
        (r.latents.shape[0] == M, f"latents {r.latents.shape} for {M} samples"),
        (r.occluded.shape == (V,), f"occluded {r.occluded.shape}"),
        (r.faces.ndim == 2 and r.faces.shape[1] == 3 and r.faces.size > 0 and int(r.faces.max()) < V and int(r.faces.min()) >= 0,
         "faces index vertices out of range"),
        (r.uvs is None or (r.uv_faces is not None and r.uv_faces.shape == r.faces.shape), "uv_faces do not match faces"),
        (bool(np.isfinite(r.fit).all() and np.isfinite(r.samples).all() and np.isfinite(r.visible_fit).all()),
         "vertices are not finite"),
        (r.neutral_fit is None or r.neutral_fit.shape == (V, 3), "neutral_fit_vertices do not match the fit"),
        (r.neutral_visible_fit is None or r.neutral_visible_fit.shape == (V, 3), "neutral_visible_fit_vertices do not match"),
        (r.neutral_samples is None or r.neutral_samples.shape == r.samples.shape, "neutral_samples do not match the samples"),
        (not r.has_neutral or bool(np.isfinite(r.neutral_fit).all() and np.isfinite(r.neutral_samples).all()),
         "neutral vertices are not finite"),
    ]
    bad = [msg for ok, msg in checks if not ok]
    if bad:
        raise ResultFileError(f"inconsistent result file {p}: {bad[0]}")
    if scene_path:
        r.scene = read_scene_hints(scene_path, V)
    return r


def read_scene_hints(path: str, num_vertices: int) -> dict:
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as d:
            if "format" not in d.files or _str(d["format"]) != SCENE_FORMAT:
                raise ResultFileError(f"{p} is not a d3dface scene file")
            s = {k: d[k] for k in d.files}
    except ResultFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ResultFileError(f"cannot read scene file {p}: {exc}") from None
    if s["photo_uv"].shape != (num_vertices, 2) or s["visible"].shape != (num_vertices,):
        raise ResultFileError(f"scene file {p} does not match the result's {num_vertices} vertices")
    if "skinning_weights" in s and s["skinning_weights"].shape[0] != num_vertices:
        raise ResultFileError(f"scene file {p}: skinning weights do not match the mesh")
    if "uncertainty" in s and (s["uncertainty"].shape != (num_vertices,) or s["uncertainty_weight"].shape != (num_vertices,)
                               or s["uncertainty_colour"].shape != (num_vertices, 4)):
        raise ResultFileError(f"scene file {p}: the uncertainty does not match the mesh")
    if "expression_key_offsets" in s:
        K = len(s["expression_key_names"])
        if (s["expression_key_offsets"].shape != (K, num_vertices, 3) or s["expression_key_values"].shape != (K,)
                or s["expression_key_ranges"].shape != (K, 2)):
            raise ResultFileError(f"scene file {p}: the expression keys do not match the mesh")
        s["expression_key_names"] = [str(n) for n in s["expression_key_names"]]
        s["expression_key_kinds"] = [str(n) for n in s["expression_key_kinds"]]
    if "eye_driver_keys" in s:
        s["eye_driver_keys"] = [[str(a), str(b)] for a, b in s["eye_driver_keys"]]
    s["mean_texture"] = _str(s.get("mean_texture", ""))
    if "joint_names" in s:
        s["joint_names"] = [str(n) for n in s["joint_names"]]
    return s


def read_interpolation(path: str, num_vertices: int, neutral: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(steps, V, 3) vertices and (steps,) alphas; ``neutral``: the heads without the run's
    expression where the file has them (for an object whose Basis is neutral)."""
    try:
        with np.load(path, allow_pickle=False) as d:
            key = "neutral_vertices" if neutral and "neutral_vertices" in d.files else "vertices"
            v, a = d[key].astype(np.float32), d["alphas"].astype(np.float64)
    except Exception as exc:  # noqa: BLE001
        raise ResultFileError(f"cannot read interpolation file {path}: {exc}") from None
    if v.ndim != 3 or v.shape[1:] != (num_vertices, 3) or a.shape != (v.shape[0],):
        raise ResultFileError(f"interpolation file {path} has vertices {v.shape} for a {num_vertices}-vertex mesh")
    return v, a

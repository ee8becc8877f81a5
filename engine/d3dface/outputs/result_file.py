"""The result file of a reconstruction (``result.npz``): everything the Blender add-on, the
``interpolate`` command and a researcher need, in one versioned .npz (no pickles).

Arrays (V vertices, F triangles, M samples; metres, FLAME axes: y up, looking down +z):
- ``fit_vertices`` (V, 3): the partial fit S_m (shape key "Basis")
- ``visible_fit_vertices`` (V, 3): S_m on the visible vertices, the Mesh-VAE mean completion
  elsewhere (shape key "Visible fit")
- ``samples`` (M, V, 3): the M diverse completions ("Sample 01".."Sample M"), stitched to S_m
  where the photo shows the face (``complete/stitching.py``) unless the settings say otherwise
- ``samples_raw`` (M, V, 3): the decoded Algorithm 2 samples before stitching
- ``latents`` (M, 10, 64), ``mu`` (10, 64), ``logvar`` (10, 64): Mesh-VAE latents; for a "gaussian"
  run (``settings["completion_model"]``) (M, 1, K) whitened prior coefficients, ``mu``/``logvar`` (1, K) zeros
- ``occluded`` (V,) bool: M_o^v, vertices the photo does not show (what the completion varies)
- ``diversity`` (V,): per-vertex standard deviation across samples, metres
- ``faces`` (F, 3), ``uvs`` (T, 2), ``uv_faces`` (F, 3)
- ``camera_json``: the fitted camera in crop pixels; ``crop_box`` (4,) in image pixels; ``image_size`` (H, W)
- ``settings_json``, ``versions_json``, ``image_path``, ``head_model``, ``head_model_hash``
- identity apart from expression (``head_model/expression_split.py``), when the fit gives them:
  ``expression_weights`` (E,) the fitted expression in the head model's mode order, ``pose`` (3J,)
  axis-angle (the jaw), ``rest_joints`` (J, 3); ``neutral_fit_vertices`` (V, 3),
  ``neutral_visible_fit_vertices`` (V, 3) and ``neutral_samples`` (M, V, 3): the same heads with
  that expression and pose removed (the add-on's "Basis" and keys; animation starts from them)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import InputFileError
from ..head_model.expression_split import ExpressionState


def sample_spread(samples: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(M, V, 3) samples -> (V,) RMS distance of each sample's vertex from the samples' mean,
    metres, computed in ``dtype``."""
    s = np.asarray(samples, dtype)
    return np.sqrt(((s - s.mean(0)) ** 2).sum(-1).mean(0)).astype(dtype)


NEUTRAL_KEYS = ("neutral_fit_vertices", "neutral_visible_fit_vertices", "neutral_samples")
FORMAT = "d3dface-result"
VERSION = 1


@dataclass
class ReconstructionResult:
    fit_vertices: np.ndarray
    visible_fit_vertices: np.ndarray
    samples: np.ndarray
    latents: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    occluded: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None
    uv_faces: np.ndarray | None
    camera: dict
    crop_box: np.ndarray
    image_size: tuple
    image_path: str = ""
    head_model: str = ""
    head_model_hash: str = ""
    settings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    samples_raw: np.ndarray | None = None
    expression: ExpressionState | None = None
    neutral_fit_vertices: np.ndarray | None = None
    neutral_visible_fit_vertices: np.ndarray | None = None
    neutral_samples: np.ndarray | None = None

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def diversity(self) -> np.ndarray:
        """(V,) per-vertex standard deviation across samples, metres (0 for one sample)."""
        if self.num_samples < 2:
            return np.zeros(self.samples.shape[1], np.float32)
        return sample_spread(self.samples, np.float32)

    def to_arrays(self) -> dict:
        a = {
            "format": np.array(FORMAT), "version": np.array(VERSION),
            "fit_vertices": self.fit_vertices.astype(np.float32),
            "visible_fit_vertices": self.visible_fit_vertices.astype(np.float32),
            "samples": self.samples.astype(np.float32), "latents": self.latents.astype(np.float32),
            "mu": self.mu.astype(np.float32), "logvar": self.logvar.astype(np.float32),
            "occluded": self.occluded.astype(bool), "diversity": self.diversity,
            "faces": self.faces.astype(np.int32),
            "camera_json": np.array(json.dumps(self.camera)), "crop_box": np.asarray(self.crop_box, np.float64),
            "image_size": np.asarray(self.image_size, np.int64), "image_path": np.array(self.image_path),
            "head_model": np.array(self.head_model), "head_model_hash": np.array(self.head_model_hash),
            "settings_json": np.array(json.dumps(self.settings, sort_keys=True)),
            "versions_json": np.array(json.dumps(self.versions, sort_keys=True)),
            "timings_json": np.array(json.dumps(self.timings)),
        }
        if self.samples_raw is not None:
            a["samples_raw"] = self.samples_raw.astype(np.float32)
        if self.expression is not None:
            a.update(self.expression.as_arrays())
        for k in NEUTRAL_KEYS:
            if getattr(self, k) is not None:
                a[k] = getattr(self, k).astype(np.float32)
        if self.uvs is not None:
            a["uvs"] = self.uvs.astype(np.float32)
            a["uv_faces"] = self.uv_faces.astype(np.int32)
        return a

    def save(self, path) -> Path:
        arrays = self.to_arrays()
        return write_atomic(path, lambda p: np.savez_compressed(p, **arrays))

    @classmethod
    def load(cls, path) -> "ReconstructionResult":
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"result file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as d:
                if "format" not in d.files or str(d["format"]) != FORMAT:
                    raise InputFileError(f"{path} is not a d3dface result file")
                if int(d["version"]) > VERSION:
                    raise InputFileError(f"{path} is result format {int(d['version'])}; this engine reads up to {VERSION}")
                g = lambda k: d[k] if k in d.files else None  # noqa: E731
                return cls(
                    fit_vertices=d["fit_vertices"], visible_fit_vertices=d["visible_fit_vertices"], samples=d["samples"],
                    latents=d["latents"], mu=d["mu"], logvar=d["logvar"], occluded=d["occluded"], faces=d["faces"],
                    uvs=g("uvs"), uv_faces=g("uv_faces"), camera=json.loads(str(d["camera_json"])),
                    crop_box=d["crop_box"], image_size=tuple(int(x) for x in d["image_size"]),
                    image_path=str(d["image_path"]), head_model=str(d["head_model"]),
                    head_model_hash=str(d["head_model_hash"]), settings=json.loads(str(d["settings_json"])),
                    versions=json.loads(str(d["versions_json"])), timings=json.loads(str(d["timings_json"])),
                    samples_raw=g("samples_raw"), expression=ExpressionState.from_arrays(d),
                    **{k: g(k) for k in NEUTRAL_KEYS},
                )
        except InputFileError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InputFileError(f"cannot read result file {path}: {exc}") from None

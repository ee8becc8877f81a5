"""What decoding between two samples of a run needs (paper Appendix A.3), from the run's result
file or without it: ``interpolation_source.npz``, which the Blender add-on writes from the data
it stores on a head object (so that Interpolate works after the cache folder is gone).

Arrays of the file (M samples of one run, V vertices; metres, FLAME axes):
- ``format`` "d3dface-interpolation-source", ``version`` 1
- ``latents`` (M, 1, K) or (M, 10, 64) float32: the run's sample latents ("gaussian" or Mesh-VAE), in
  the run's order (i, j are 1-based)
- ``fit_vertices`` (V, 3) float32: the run's partial fit, which decoded samples are joined to
- ``occluded`` (V,) bool: M_o^v of the run
- ``settings_json``: the run's settings (``stitch``, ``stitch_method``, ``stitch_rings`` matter)
- ``head_model_hash``: the head model's fingerprint ("" skips the check)
- optional ``expression_weights``, ``pose``, ``rest_joints``: the run's fitted expression
  (``head_model/expression_split.py``), to give the decoded heads without it

The faces are the head model's (the hash check makes them the run's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import InputFileError
from ..head_model.expression_split import ExpressionState
from .result_file import FORMAT as RESULT_FORMAT
from .result_file import ReconstructionResult

FORMAT = "d3dface-interpolation-source"
VERSION = 1


@dataclass
class InterpolationSource:
    latents: np.ndarray  # (M, 1, K) or (M, 10, 64) float32
    fit_vertices: np.ndarray  # (V, 3) float32, metres
    occluded: np.ndarray  # (V,) bool
    settings: dict = field(default_factory=dict)
    head_model_hash: str = ""
    faces: np.ndarray | None = None  # (F, 3); None: the head model's
    expression: ExpressionState | None = None

    @property
    def num_samples(self) -> int:
        return int(self.latents.shape[0])

    @classmethod
    def from_result(cls, res: ReconstructionResult) -> "InterpolationSource":
        return cls(np.asarray(res.latents, np.float32), np.asarray(res.fit_vertices, np.float32),
                   np.asarray(res.occluded, bool), dict(res.settings), res.head_model_hash, res.faces, res.expression)

    def save(self, path) -> Path:
        arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "latents": self.latents.astype(np.float32),
                  "fit_vertices": self.fit_vertices.astype(np.float32), "occluded": self.occluded.astype(bool),
                  "settings_json": np.array(json.dumps(self.settings, sort_keys=True)),
                  "head_model_hash": np.array(self.head_model_hash)}
        if self.expression is not None:
            arrays.update(self.expression.as_arrays())
        return write_atomic(path, lambda p: np.savez(p, **arrays))


def _check(src: InterpolationSource, path: Path) -> InterpolationSource:
    V = src.fit_vertices.shape[0]
    ok = (src.latents.ndim == 3 and src.latents.shape[0] >= 1 and src.fit_vertices.shape == (V, 3)
          and src.occluded.shape == (V,) and np.isfinite(src.latents).all() and np.isfinite(src.fit_vertices).all())
    if not ok:
        raise InputFileError(f"inconsistent interpolation data {path}: latents {src.latents.shape}, "
                             f"fit {src.fit_vertices.shape}, occluded {src.occluded.shape}")
    return src


def load_interpolation_source(path) -> InterpolationSource:
    """An InterpolationSource from ``path``: a result file or an ``interpolation_source.npz``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"interpolation data not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as d:
            fmt = str(d["format"]) if "format" in d.files else ""
            if fmt == RESULT_FORMAT:
                return InterpolationSource.from_result(ReconstructionResult.load(path))
            if fmt != FORMAT:
                raise InputFileError(f"{path} is neither a d3dface result file nor interpolation data")
            if int(d["version"]) > VERSION:
                raise InputFileError(f"{path} is interpolation data version {int(d['version'])}; this engine reads up to {VERSION}")
            src = InterpolationSource(d["latents"].astype(np.float32), d["fit_vertices"].astype(np.float32),
                                      d["occluded"].astype(bool), json.loads(str(d["settings_json"])),
                                      str(d["head_model_hash"]), expression=ExpressionState.from_arrays(d))
    except InputFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line for the user
        raise InputFileError(f"cannot read interpolation data {path}: {exc}") from None
    return _check(src, path)

"""The global+local model of the partial fit (paper section 4.1, Eqs. 3-6).

Global part: the head model's top N_S identity and N_E expression components plus pose.
Local part: per-region PCA of what a truncated global model leaves unexplained, one model per
region (soft partition, ``regions.py``):
- local *shape* bases: residuals of the N_S-identity / all-expression global fit;
- local *expression* bases: residuals of the all-identity / N_E-expression global fit.
The open model's expressions are ARKit blendshapes with no variance order, so "the top N_E"
are the N_E with the largest displacement energy over the corpus.
Each local component is stored scaled by its standard deviation, so coefficients ~ N(0, 1).

This module holds the model and its file; learning it is ``training.local_models``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import ModelFileError
from ..head_model.model import HeadModel

FORMAT = "d3dface-local-model"
VERSION = 1


@dataclass
class LocalModel:
    basis: np.ndarray  # (V, 3, K) metres per unit coefficient (std-scaled), zero outside its region
    component_region: np.ndarray  # (K,) region index of each component
    component_kind: np.ndarray  # (K,) 0 = shape, 1 = expression
    region_names: list
    region_weights: np.ndarray  # (R, V)
    global_shape: np.ndarray  # (N_S,) identity component indices of the global part
    global_expr: np.ndarray  # (N_E,) expression component indices of the global part
    model_hash: str  # template hash of the head model it was built for

    @property
    def num_components(self) -> int:
        return int(self.basis.shape[2])

    def save(self, path) -> Path:
        arrays = dict(format=np.array(FORMAT), version=np.array(VERSION), basis=self.basis.astype(np.float32),
                      component_region=self.component_region, component_kind=self.component_kind,
                      region_names=np.array(self.region_names), region_weights=self.region_weights,
                      global_shape=self.global_shape, global_expr=self.global_expr, model_hash=np.array(self.model_hash))
        return write_atomic(path, lambda p: np.savez_compressed(p, **arrays))

    @classmethod
    def load(cls, path, model: HeadModel | None = None) -> "LocalModel":
        try:
            with np.load(path, allow_pickle=False) as d:
                if "format" not in d.files or str(d["format"]) != FORMAT:
                    raise ModelFileError(f"{path} is not a d3dface local model")
                lm = cls(basis=d["basis"], component_region=d["component_region"], component_kind=d["component_kind"],
                         region_names=[str(s) for s in d["region_names"]], region_weights=d["region_weights"],
                         global_shape=d["global_shape"], global_expr=d["global_expr"], model_hash=str(d["model_hash"]))
        except ModelFileError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"cannot read local model {path}: {exc}") from None
        if model is not None and lm.model_hash != model_fingerprint(model):
            raise ModelFileError(f"local model {path} was built for another head model")
        return lm


def model_fingerprint(model: HeadModel) -> str:
    """Identifies the head model a local model belongs to: its template and first identity modes."""
    h = hashlib.sha256(np.ascontiguousarray(model.v_template, np.float32).tobytes())
    h.update(np.ascontiguousarray(model.shapedirs[:, :, :5], np.float32).tobytes())
    return h.hexdigest()[:16]


def cached_local_model_path(model: HeadModel) -> Path:
    """Where the local model of ``model`` is kept: the engine's data folder (the default model's
    ships there), or, for another model when that folder is read-only, the engine's cache."""
    import os

    from ..paths import DATA_DIR, cache_dir

    name = f"local_model_{model_fingerprint(model)}.npz"
    if (DATA_DIR / name).is_file() or os.access(DATA_DIR, os.W_OK):
        return DATA_DIR / name
    return cache_dir() / name

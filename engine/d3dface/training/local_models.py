"""Learning the partial fit's local region models (paper section 4.1): per-region PCA of what a
truncated global model leaves unexplained (see ``fit.local_model`` for the model itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fit.local_model import LocalModel, cached_local_model_path, model_fingerprint
from ..fit.regions import LOCAL_REGIONS, eyeball_vertices, soft_partition
from ..head_model.model import HeadModel
from ..head_model.random_heads import EXPRESSION_PROBABILITY, random_coefficients


@dataclass
class LocalModelSettings:
    num_global_shape: int = 10  # N_S
    num_global_expr: int = 10  # N_E
    components_per_region: int = 8  # K per region and per kind (shape, expression)
    corpus_size: int = 1500  # head-model samples when no mesh folder is given
    expression_probability: float = EXPRESSION_PROBABILITY  # each blendshape active with this probability
    seed: int = 1234


def sample_corpus(model: HeadModel, n: int, seed: int, expression_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """Identity coefficients (n, S) ~ N(0, 1) and sparse expression weights (n, E) in [0, 1]."""
    return random_coefficients(model, n, np.random.default_rng(seed), expression_probability)


def corpus_from_model(model: HeadModel, beta: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """(n, V, 3) neutral-pose meshes."""
    return (model.v_template[None].astype(np.float64) + np.einsum("vcs,ns->nvc", model.shapedirs, beta)
            + np.einsum("vce,ne->nvc", model.exprdirs, psi))


def top_expressions(model: HeadModel, psi: np.ndarray, k: int) -> np.ndarray:
    """The k expressions with the largest displacement energy over the corpus weights psi (n, E)."""
    energy = (model.exprdirs ** 2).sum((0, 1)) * (psi ** 2).mean(0)
    return np.sort(np.argsort(-energy)[:k])


def _residual(meshes: np.ndarray, model: HeadModel, basis: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """Least-squares fit of (meshes - template) with ``basis`` (V, 3, K) on ``fit_rows`` vertices; residual (n, V, 3)."""
    d = meshes - model.v_template[None]
    B = basis[fit_rows].reshape(-1, basis.shape[2])
    coef, *_ = np.linalg.lstsq(B, d[:, fit_rows].reshape(len(d), -1).T, rcond=None)
    return d - np.einsum("vck,kn->nvc", basis, coef)


def _regional_pca(residual: np.ndarray, weights: np.ndarray, k: int) -> tuple[list, list]:
    """Per region: the top k principal directions of weights-tapered residuals, scaled by their std."""
    bases, regions = [], []
    n = residual.shape[0]
    for r, w in enumerate(weights):
        rows = np.where(w > 0)[0]
        X = (residual[:, rows] * w[rows, None]).reshape(n, -1)
        X = X - X.mean(0)
        _, s, Vt = np.linalg.svd(X, full_matrices=False)
        std = s[:k] / np.sqrt(max(n - 1, 1))
        for j in range(min(k, len(std))):
            if std[j] < 1e-7:  # nothing left to explain in this region
                continue
            b = np.zeros(residual.shape[1:])
            b[rows] = (Vt[j] * std[j]).reshape(-1, 3)
            bases.append(b)
            regions.append(r)
    return bases, regions


def build_local_model(model: HeadModel, meshes: np.ndarray | None = None, settings: LocalModelSettings | None = None,
                      log=print) -> LocalModel:
    """Learn the local models from ``meshes`` (n, V, 3) registered FLAME-topology meshes, or from
    samples of ``model`` when None."""
    st = settings or LocalModelSettings()
    beta, psi = sample_corpus(model, st.corpus_size, st.seed, st.expression_probability)
    if meshes is None:
        log(f"sampling {st.corpus_size} heads from the head model")
        meshes = corpus_from_model(model, beta, psi)
    weights = soft_partition(model)
    fit_rows = np.setdiff1d(np.arange(model.num_vertices), eyeball_vertices(model))
    n_s = min(st.num_global_shape, model.num_shape)
    top_e = top_expressions(model, psi, min(st.num_global_expr, model.num_expr))
    all_e, all_s = np.arange(model.num_expr), np.arange(model.num_shape)
    parts = []
    for kind, basis in ((0, np.concatenate([model.shapedirs[:, :, :n_s], model.exprdirs[:, :, all_e]], 2)),
                        (1, np.concatenate([model.shapedirs[:, :, all_s], model.exprdirs[:, :, top_e]], 2))):
        log(f"local {'shape' if kind == 0 else 'expression'} models: residuals of the truncated global fit")
        res = _residual(meshes, model, basis.astype(np.float64), fit_rows)
        b, r = _regional_pca(res, weights, st.components_per_region)
        parts.append((b, r, kind))
    basis = np.stack([x for b, _, _ in parts for x in b], axis=2).astype(np.float32)
    return LocalModel(
        basis=basis,
        component_region=np.array([x for _, r, _ in parts for x in r], np.int32),
        component_kind=np.array([k for b, _, k in parts for _ in b], np.int8),
        region_names=list(LOCAL_REGIONS),
        region_weights=weights,
        global_shape=np.arange(n_s, dtype=np.int32),
        global_expr=top_e.astype(np.int32),
        model_hash=model_fingerprint(model),
    )


def load_or_build_local_model(model: HeadModel, path=None, log=print) -> LocalModel:
    """The local model at ``path``, or the cached one for ``model``, building and caching it once."""
    if path is not None:
        return LocalModel.load(path, model)
    cached = cached_local_model_path(model)
    if cached.is_file():
        return LocalModel.load(cached, model)
    log(f"building the local region models for this head model once (cached in {cached})")
    lm = build_local_model(model, log=lambda m: None)
    lm.save(cached)
    return lm

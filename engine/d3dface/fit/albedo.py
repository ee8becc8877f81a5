"""A low-dimensional albedo for the photometric term.

FLAME's texture space is not available, and its mean texture may not ship. The product's albedo
is a flat skin tone with painted eyes (white eyeballs, dark irises), times a global RGB gain,
plus RGB offsets on a per-vertex basis b_k:

    albedo(v) = clip(base(v) * gain + sum_k b_k(v) * offset_k, 0, 1)

3 + 3K parameters. The basis (``FitSettings.albedo_basis``): "regions", the soft partition's
regions (``regions.py``, K = 12); "smooth" (``smooth_albedo_basis``, K = 32), the
lowest-frequency eigenvectors of the mesh's graph Laplacian: it follows red lips, cheeks and a
lit forehead (README: the photometric error on the seen face of the 13 shared photos falls by
9-35%, the shape errors are unchanged), but its global modes carry what the seen skin asks for
over the unseen head, so dark hair at the hairline darkens the scalp and neck of the baked
texture; "regions+smooth" (the default), both, the smooth rows weighted by where the fit's
landmark stage sees the face (``seen_weights``), so the seen face gets the smooth detail (its
photometric error is as low as "smooth"'s) and the unseen head keeps the regional albedo.
``base`` may instead be FLAME's mean texture sampled at each vertex (a research option: the
evaluation renders its synthetic faces with it; the fit measured no better with it, see README
Table 1). Why this form: the gain
absorbs skin tone and white balance; the regional offsets let lips, cheeks or ears differ in
tone, the 32 smooth ones follow the seen skin without being free enough to paint an occluder
or a sharp shadow into it (which a free per-vertex albedo would do, and which would then leak
into the shape), and an unseen region keeps the skin tone.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputFileError
from ..head_model.model import HeadModel

MEAN_TEXTURE_FILE = "mean_texture.jpg"
FALLBACK_SKIN = (0.78, 0.60, 0.50)
SCLERA_RGB = (0.92, 0.90, 0.88)
IRIS_RGB = (0.30, 0.20, 0.12)
PUPIL_RGB = (0.03, 0.03, 0.03)
IRIS_RADIUS_M = 5.9e-3  # a human iris is about 11.8 mm across
PUPIL_RADIUS_M = 2.0e-3


def painted_eyes_albedo(model: HeadModel, vertices: np.ndarray | None = None, skin=FALLBACK_SKIN) -> np.ndarray:
    """(V, 3) RGB: a flat skin tone, with white eyeballs, a dark iris and a black pupil around each
    eyeball's front-most vertex (the head looks down +z). vertices (V, 3) metres (default: the
    template). The albedo the fit starts from when no texture is given (the product's case)."""
    v = model.v_template if vertices is None else vertices
    col = np.tile(np.array(skin, np.float32), (len(v), 1))
    for side in ("left_eyeball", "right_eyeball"):
        idx = model.regions.get(side)
        if idx is None or not len(idx):
            continue
        front = v[idx[np.argmax(v[idx, 2])]]
        d = np.linalg.norm(v[idx] - front, axis=1)
        col[idx] = np.where((d < PUPIL_RADIUS_M)[:, None], PUPIL_RGB,
                            np.where((d < IRIS_RADIUS_M)[:, None], IRIS_RGB, SCLERA_RGB))
    return col


def vertex_mean_albedo(model: HeadModel, texture_path: str | Path | None) -> np.ndarray:
    """(V, 3) RGB in [0, 1]: the mean texture averaged over each vertex's UV corners, or without a
    texture ``painted_eyes_albedo``."""
    if texture_path is None or model.uvs is None or not Path(texture_path).is_file():
        return painted_eyes_albedo(model)
    V = model.num_vertices
    img = cv2.imread(str(texture_path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputFileError(f"cannot read texture {texture_path}")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    h, w = img.shape[:2]
    uv = model.uvs[model.uv_faces.ravel()]
    x = np.clip(uv[:, 0] * (w - 1), 0, w - 1)
    y = np.clip((1 - uv[:, 1]) * (h - 1), 0, h - 1)
    colour = cv2.remap(img, x.astype(np.float32)[None], y.astype(np.float32)[None], cv2.INTER_LINEAR)[0]
    out = np.zeros((V, 3), np.float64)
    count = np.zeros(V)
    np.add.at(out, model.faces.ravel(), colour)
    np.add.at(count, model.faces.ravel(), 1)
    return (out / np.maximum(count, 1)[:, None]).astype(np.float32)


def smooth_albedo_basis(model: HeadModel, k: int) -> np.ndarray:
    """(K, V) float32: the K lowest-frequency eigenvectors of the graph Laplacian of the head without
    its eyeballs (the constant first), each scaled to unit root-mean-square over those vertices and 0
    on the eyeballs, whose painted colours stay as they are."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    from ..head_model.mesh_quality import adjacency
    from .regions import eyeball_vertices

    V = model.num_vertices
    keep = np.ones(V, bool)
    keep[eyeball_vertices(model)] = False
    A = adjacency(model.faces, V)[keep][:, keep]
    L = sp.diags(np.asarray(A.sum(1)).ravel()) - A
    # shift-invert about a small negative sigma finds the smallest eigenvalues of the (singular) L;
    # a fixed start vector (ARPACK's default is random) and a fixed sign make the basis repeatable
    n = int(keep.sum())
    start = 1.0 + 0.5 * np.cos(np.arange(n) * 0.7)
    vals, vecs = eigsh(L.tocsc(), k=k, sigma=-1e-3, which="LM", v0=start)
    vecs = vecs[:, np.argsort(vals)]
    vecs = vecs * np.sign(vecs.T @ start + 1e-30)[None]
    vecs = vecs / np.sqrt((vecs ** 2).mean(0, keepdims=True))
    out = np.zeros((k, V), np.float32)
    out[:, keep] = vecs.T
    return out


class AlbedoModel(torch.nn.Module):
    """albedo(gain, offsets, seen=None) -> (B, V, 3); gain (B, 3), offsets (B, R, 3). region_weights
    (R, V): the soft partition's regions, or ``smooth_albedo_basis``, or both stacked. The last
    ``seen_rows`` rows act only where the face is seen: forward's ``seen`` (V,) weight in [0, 1]
    (``seen_weights``) multiplies them, so the unseen head keeps the other rows' albedo."""

    def __init__(self, mean_albedo: np.ndarray, region_weights: np.ndarray, seen_rows: int = 0):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean_albedo, dtype=torch.float32))
        self.register_buffer("weights", torch.as_tensor(region_weights, dtype=torch.float32))  # (R, V)
        self.seen_rows = int(seen_rows)

    @property
    def num_regions(self) -> int:
        return int(self.weights.shape[0])

    def init_params(self, batch: int = 1) -> dict[str, torch.Tensor]:
        dev = self.mean.device
        return {"gain": torch.ones(batch, 3, device=dev), "offsets": torch.zeros(batch, self.num_regions, 3, device=dev)}

    def forward(self, gain: torch.Tensor, offsets: torch.Tensor, seen: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weights
        if self.seen_rows and seen is not None:
            k = self.num_regions - self.seen_rows
            w = torch.cat([w[:k], w[k:] * seen[None]])
        a = self.mean[None] * gain[:, None] + torch.einsum("rv,brc->bvc", w, offsets)
        return a.clamp(0.0, 1.0)


def seen_weights(faces: np.ndarray, seen: np.ndarray, rings: int = 3) -> np.ndarray:
    """(V,) float32 in [0, 1]: the seen vertices' indicator averaged over ``rings`` neighbour
    rings, so that detail painted on the seen face fades out over a few rings, not at an edge."""
    from ..head_model.mesh_quality import smooth_field

    field = seen.astype(np.float64)[:, None]
    return smooth_field(field, faces, np.ones(len(seen), bool), rings)[:, 0].astype(np.float32)

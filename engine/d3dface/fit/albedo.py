"""A low-dimensional albedo for the photometric term.

FLAME's texture space is not available. The albedo is FLAME's mean texture (the UV image
in the FLAME assets) sampled at each vertex, times a global RGB gain, plus one RGB offset
per region of the soft partition (``regions.py``):

    albedo(v) = clip(mean_texture(v) * gain + sum_r w_r(v) * offset_r, 0, 1)

3 + 3R parameters (R = 12). Why: the mean texture carries the structure a face has
(darker brows, red lips, lighter sclera); the gain absorbs skin tone and white balance; the
regional offsets let lips, cheeks or ears differ in tone without being free enough to paint
an occluder or a shadow into the skin (which a per-vertex albedo would do, and which would
then leak into the shape).
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


def vertex_mean_albedo(model: HeadModel, texture_path: str | Path | None) -> np.ndarray:
    """(V, 3) RGB in [0, 1]: the mean texture averaged over each vertex's UV corners."""
    V = model.num_vertices
    if texture_path is None or model.uvs is None or not Path(texture_path).is_file():
        return np.tile(np.array(FALLBACK_SKIN, np.float32), (V, 1))
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


class AlbedoModel(torch.nn.Module):
    """albedo(params) -> (B, V, 3); params: gain (B, 3), offsets (B, R, 3)."""

    def __init__(self, mean_albedo: np.ndarray, region_weights: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean_albedo, dtype=torch.float32))
        self.register_buffer("weights", torch.as_tensor(region_weights, dtype=torch.float32))  # (R, V)

    @property
    def num_regions(self) -> int:
        return int(self.weights.shape[0])

    def init_params(self, batch: int = 1) -> dict[str, torch.Tensor]:
        dev = self.mean.device
        return {"gain": torch.ones(batch, 3, device=dev), "offsets": torch.zeros(batch, self.num_regions, 3, device=dev)}

    def forward(self, gain: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        a = self.mean[None] * gain[:, None] + torch.einsum("rv,brc->bvc", self.weights, offsets)
        return a.clamp(0.0, 1.0)

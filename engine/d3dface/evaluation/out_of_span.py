"""Ground-truth heads that the fitting model cannot represent exactly (Table 1 out of span).

A head of the linear model ties every face region to every other through its global modes, so a
test head drawn from it flatters whatever was built from it. These heads break that tie in two
ways, each an assumption about how real faces differ from the model:

- region mixing: each local region (fit/regions.py: nose, mouth, cheeks, ...) takes its identity
  offset from its own independent draw of the model, blended across region borders by the soft
  partition. Assumes real faces vary region by region with the model's per-region statistics.
- local detail: a few smooth bumps and dents (Gaussian in distance, along the normal, 1-3 mm high
  and 8-15 mm wide) at random face vertices. Assumes real faces carry localised detail that no
  PCA mode of 100 holds (scars, cheekbones, a bump on the nose).

The eyeballs move rigidly (by the mean offset of their own vertices).
"""

from __future__ import annotations

import numpy as np
import torch

from ..fit.regions import soft_partition
from ..head_model import HeadModel
from ..render.shading import vertex_normals

BUMPS = 4
BUMP_HEIGHT_M = (1e-3, 3e-3)
BUMP_WIDTH_M = (8e-3, 15e-3)


class OutOfSpanOffsets:
    """offset(rng) -> (V, 3) metres added to a model head's identity."""

    def __init__(self, model: HeadModel):
        self.model = model
        self.weights = soft_partition(model).astype(np.float64)  # (R, V), 0 on the eyeballs
        v = torch.as_tensor(model.v_template, dtype=torch.float64)[None]
        self.normals = vertex_normals(v, torch.as_tensor(model.faces, dtype=torch.int64))[0].numpy()
        self.face = model.regions["face"]

    def region_mixed(self, rng: np.random.Generator, beta: np.ndarray) -> np.ndarray:
        """(V, 3): per region r, the identity of an independent draw minus the head's own (beta (S,)),
        weighted by the soft partition, so the head's regions come from different people."""
        m = self.model
        R = self.weights.shape[0]
        draws = rng.standard_normal((R, m.num_shape)) - beta[None]
        per_region = np.einsum("vck,rk->rvc", m.shapedirs.astype(np.float64), draws)  # (R, V, 3)
        return np.einsum("rv,rvc->vc", self.weights, per_region)

    def bumps(self, rng: np.random.Generator) -> np.ndarray:
        v = self.model.v_template.astype(np.float64)
        out = np.zeros_like(v)
        for c in rng.choice(self.face, BUMPS, replace=False):
            h = rng.uniform(*BUMP_HEIGHT_M) * rng.choice([-1.0, 1.0])
            w = rng.uniform(*BUMP_WIDTH_M)
            d2 = ((v - v[c]) ** 2).sum(1)
            out += (h * np.exp(-d2 / (2 * w * w)))[:, None] * self.normals
        return out

    def __call__(self, rng: np.random.Generator, beta: np.ndarray) -> np.ndarray:
        off = self.region_mixed(rng, beta) + self.bumps(rng)
        for side in ("left_eyeball", "right_eyeball"):
            idx = self.model.regions[side]
            off[idx] = off[idx].mean(0)
        return off.astype(np.float32)

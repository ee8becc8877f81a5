"""Training data for the Mesh-VAE: random heads of a head model or registered meshes from
a folder, and contiguous occlusion masks on the mesh (also used by evaluation and tests).

Synthetic heads: identity ~ N(0, shape_sigma^2 I) on every identity mode; expressions are
sparse random ARKit weights in [0, 1] (0 to ``max_active`` shapes at once: neutral,
single and combined expressions); optional small neck and jaw rotations.

Masks (V,) bool, True = occluded:
- "grow": grown over the mesh graph from a seed vertex (the ``k`` graph-nearest vertices,
  a geodesic disc), seeds on the face region by default;
- "cap": the ``k`` vertices furthest along a random direction in the front hemisphere
  (a half-space cut: lower face, one side, brow ...).
``k = round(fraction * V)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import dijkstra

from ..errors import InputFileError
from ..head_model import HeadLayer, HeadModel
from ..complete.mesh_sampling import edge_graph


@dataclass
class SyntheticSettings:
    shape_sigma: float = 1.0  # identity coefficients ~ N(0, sigma^2)
    max_active: int = 4  # at most this many expressions active at once
    p_neutral: float = 0.15  # probability of no expression
    neck_sigma: float = 0.05  # radians, per axis (0: none)
    jaw_max: float = 0.15  # radians, jaw opening ~ U(0, jaw_max) (0: none)


def sample_parameters(model: HeadModel, n: int, rng: np.random.Generator, s: SyntheticSettings = SyntheticSettings()) -> dict[str, np.ndarray]:
    """Random shape (n, S), expression (n, E) in [0, 1], pose (n, 3J) axis-angle."""
    shape = rng.standard_normal((n, model.num_shape)).astype(np.float32) * s.shape_sigma
    E = model.num_expr
    expr = np.zeros((n, E), np.float32)
    for i in range(n):
        if E == 0 or rng.random() < s.p_neutral:
            continue
        k = int(rng.integers(1, s.max_active + 1))
        idx = rng.choice(E, size=min(k, E), replace=False)
        expr[i, idx] = rng.random(len(idx))
    J = model.num_joints if model.has_lbs else 1
    pose = np.zeros((n, 3 * J), np.float32)
    if model.has_lbs and J >= 3:
        pose[:, 3:6] = rng.standard_normal((n, 3)) * s.neck_sigma
        pose[:, 6] = rng.random(n) * s.jaw_max
    return {"shape": shape, "expression": expr, "pose": pose}


class SyntheticHeads:
    """Random heads of a head model: ``batch(n, rng) -> (n, V, 3)`` metres (torch, layer's device)."""

    def __init__(self, model: HeadModel, settings: SyntheticSettings = SyntheticSettings(), device="cpu"):
        self.model, self.settings = model, settings
        self.layer = HeadLayer(model).to(device)

    @torch.no_grad()
    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        p = sample_parameters(self.model, n, rng, self.settings)
        dev = self.layer.v_template.device
        t = {k: torch.as_tensor(v, device=dev) for k, v in p.items()}
        chunk = 256  # bounds the LBS temporaries
        return torch.cat([self.layer(**{k: v[i: i + chunk] for k, v in t.items()}).vertices for i in range(0, n, chunk)])


class MeshFolder:
    """Registered meshes (.ply/.obj, FLAME topology) from a folder: ``batch(n, rng)`` draws n."""

    def __init__(self, folder: str | Path, num_vertices: int, device="cpu"):
        import trimesh

        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".ply", ".obj"))
        if not files:
            raise InputFileError(f"no .ply or .obj meshes in {folder}")
        verts = []
        for f in files:
            try:
                mesh = trimesh.load(f, process=False, force="mesh")
            except Exception as exc:  # trimesh raises many kinds
                raise InputFileError(f"cannot read mesh {f}: {exc}") from None
            v = np.asarray(mesh.vertices, np.float32)
            if v.shape != (num_vertices, 3):
                raise InputFileError(f"{f} has {len(v)} vertices; the head model has {num_vertices}")
            verts.append(v)
        self.files = files
        self.vertices = torch.as_tensor(np.stack(verts), device=device)

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        return self.vertices[torch.as_tensor(rng.integers(0, len(self.vertices), n), device=self.vertices.device)]


# ---- masks -------------------------------------------------------------------------------


@dataclass
class MaskSettings:
    p_cap: float = 0.3  # share of "cap" masks (the rest are grown from a seed)
    seed_region: str = "face"  # region the grown masks start in ("" = anywhere)


class ContiguousMasks:
    """Contiguous occlusion masks on a template mesh (vertices (V, 3), faces (F, 3))."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, regions: dict | None = None,
                 settings: MaskSettings = MaskSettings()):
        self.vertices = np.asarray(vertices, np.float64)
        self.graph: sp.csr_matrix = edge_graph(vertices, faces)
        self.settings = settings
        V = len(self.vertices)
        seeds = (regions or {}).get(settings.seed_region) if settings.seed_region else None
        self.seed_vertices = np.arange(V) if seeds is None or len(seeds) == 0 else np.asarray(seeds, np.int64)
        self.centre = self.vertices[self.seed_vertices].mean(0)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    def grow(self, seed: int, fraction: float) -> np.ndarray:
        """(V,) bool: the round(fraction V) vertices graph-nearest to ``seed``."""
        k = int(round(fraction * self.num_vertices))
        d = dijkstra(self.graph, indices=int(seed))
        mask = np.zeros(self.num_vertices, bool)
        mask[np.argsort(d, kind="stable")[:k]] = True
        return mask

    def cap(self, direction: np.ndarray, fraction: float) -> np.ndarray:
        """(V,) bool: the round(fraction V) vertices furthest along ``direction`` (3,)."""
        k = int(round(fraction * self.num_vertices))
        proj = (self.vertices - self.centre) @ np.asarray(direction, np.float64)
        mask = np.zeros(self.num_vertices, bool)
        mask[np.argsort(-proj, kind="stable")[:k]] = True
        return mask

    def sample(self, n: int, fraction: tuple[float, float] | float, rng: np.random.Generator,
               kind: str = "mixed") -> np.ndarray:
        """(n, V) bool occlusion masks, fractions ~ U(range); kind "grow", "cap" or "mixed"."""
        lo, hi = (fraction, fraction) if np.isscalar(fraction) else fraction
        out = np.zeros((n, self.num_vertices), bool)
        for i in range(n):
            f = float(rng.uniform(lo, hi))
            use_cap = kind == "cap" or (kind == "mixed" and rng.random() < self.settings.p_cap)
            if use_cap:
                d = rng.standard_normal(3)
                d[2] = abs(d[2])  # front hemisphere (+z looks out of the face)
                out[i] = self.cap(d / np.linalg.norm(d), f)
            else:
                out[i] = self.grow(int(rng.choice(self.seed_vertices)), f)
        return out

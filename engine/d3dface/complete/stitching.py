"""Join completions to the partial fit: every sample takes S_m exactly where the photo shows the
face and keeps its own shape where it is hidden.

The raw Algorithm 2 samples agree with S_m on the visible vertices only up to the Mesh-VAE's
reconstruction error (about 1-2 mm, up to centimetres at a mask's border on real photos);
joining removes that disagreement. It is what the product writes by default; the raw samples
remain in the result file and in the evaluation. Two ways:

- ``LaplacianJoin`` (default): the joined sample X equals S_m on the visible vertices and, on
  the hidden ones, keeps the sample's differential coordinates as well as it can: X = S + D
  with D = S_m - S on the visible vertices and D on the hidden ones minimising ||L D||^2 over
  the whole mesh (L the graph Laplacian): a biharmonic correction, so the disagreement at the
  border is spread smoothly over the hidden part instead of being absorbed in a few rings, and
  both the position and the slope of the surface carry across the border. Parts of the mesh
  that share no edge with the rest (FLAME's eyeballs) are tied to it by one link from each of
  their vertices to the nearest vertex of the largest part, so an eyeball moves with its lids
  instead of poking through them.
- ``transition_weights`` + ``stitch`` (the former default): S_m + w (S - S_m) with w rising by
  a smoothstep over a few rings into the hidden part; it creases where fit and sample disagree
  by more than a ring's width can absorb.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from ..head_model.mesh_quality import adjacency
from .settings import JOIN_METHODS

# keeps the hidden block of L^T L invertible where a hidden part touches no visible vertex; a
# relative size this small moves nothing measurable where the block is well posed
REGULARISATION = 1e-8


def linked_adjacency(faces: np.ndarray, vertices: np.ndarray) -> sp.csr_matrix:
    """Mesh adjacency (V, V) plus a link from every vertex of a smaller connected part to the
    nearest vertex (in ``vertices``, metres) of the largest part."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    V = len(vertices)
    A = adjacency(faces, V)
    n, label = connected_components(A, directed=False)
    if n == 1:
        return A
    main = np.argmax(np.bincount(label))
    anchors = np.where(label == main)[0]
    others = np.where(label != main)[0]
    _, nearest = cKDTree(np.asarray(vertices)[anchors]).query(np.asarray(vertices)[others])
    rows, cols = np.r_[others, anchors[nearest]], np.r_[anchors[nearest], others]
    links = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(V, V)).tocsr()
    out = (A + links).tocsr()
    out.data[:] = 1.0
    return out


class LaplacianJoin:
    """Factorised once per (faces, occluded, vertices); ``apply`` joins any number of samples.
    ``vertices`` (V, 3): where the mesh's separate parts are linked (the fit will do)."""

    def __init__(self, faces: np.ndarray, occluded: np.ndarray, vertices: np.ndarray):
        A = linked_adjacency(faces, vertices)
        L = sp.diags(np.asarray(A.sum(1)).ravel()) - A
        Q = (L.T @ L).tocsr()
        self.hidden = np.where(occluded)[0]
        self.visible = np.where(~occluded)[0]
        self._solve = None
        if len(self.hidden):
            Qhh = Q[self.hidden][:, self.hidden]
            scale = REGULARISATION * float(Qhh.diagonal().mean())
            self._solve = splu((Qhh + scale * sp.identity(len(self.hidden))).tocsc()).solve
            self._Qhb = Q[self.hidden][:, self.visible].tocsr()

    def apply(self, samples: np.ndarray, partial: np.ndarray) -> np.ndarray:
        """samples (M, V, 3) or (V, 3), partial (V, 3) metres -> joined, same shape, float32."""
        x = np.array(samples, np.float64)  # a copy: the caller's samples stay as they are
        single = x.ndim == 2
        x = x[None] if single else x
        p = np.asarray(partial, np.float64)
        d_b = p[None, self.visible] - x[:, self.visible]  # (M, B, 3) the disagreement where seen
        x[:, self.visible] = p[self.visible]
        if self._solve is not None:
            rhs = -(self._Qhb @ d_b.transpose(1, 0, 2).reshape(len(self.visible), -1))  # (H, M*3)
            x[:, self.hidden] += self._solve(rhs).reshape(len(self.hidden), x.shape[0], 3).transpose(1, 0, 2)
        out = x.astype(np.float32)
        return out[0] if single else out


def join_to_fit(samples: np.ndarray, partial: np.ndarray, occluded: np.ndarray, faces: np.ndarray,
                method: str = "laplacian", rings: int = 3) -> np.ndarray:
    """Join ``samples`` (M, V, 3) to ``partial`` (V, 3) where ``occluded`` (V,) is False."""
    if method == "laplacian":
        return LaplacianJoin(faces, occluded, partial).apply(samples, partial)
    if method == "smoothstep":
        return stitch(samples, partial, transition_weights(faces, occluded, rings))
    raise ValueError(f"unknown join method {method!r} ({' or '.join(JOIN_METHODS)})")


def transition_weights(faces: np.ndarray, occluded: np.ndarray, rings: int = 3) -> np.ndarray:
    """(V,) weights: 0 on visible vertices, rising smoothly to 1 over ``rings`` rings into the hidden part."""
    V = occluded.shape[0]
    A = adjacency(faces, V)
    depth = np.full(V, np.inf)
    reached = ~occluded.copy()
    depth[reached] = 0
    for r in range(1, rings + 1):
        grow = (A @ reached.astype(float) > 0) & ~reached
        depth[grow] = r
        reached |= grow
    t = np.clip(depth / (rings + 1), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep; inf depth -> 1


def stitch(samples: np.ndarray, partial: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """samples (..., V, 3), partial (V, 3), weights (V,) -> S_m + w * (sample - S_m)."""
    return (partial + weights[:, None] * (samples - partial)).astype(np.float32)

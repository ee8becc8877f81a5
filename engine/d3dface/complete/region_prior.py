"""A Gaussian prior of how a head may differ from its fit, with regions that vary on their own,
and its exact conditioning on the part the photo shows ("gaussian" completion).

The head model's identity modes are global: given the visible half of a model head, its hidden
half is nearly fixed, so no completion drawn from that model can differ where hidden. This prior
assumes instead that real faces vary region by region, each region (``fit/regions.py``: lips,
nose, eyes, forehead, cheeks and chin in "face", ears, scalp, neck) with the head model's own
per-region statistics, blended smoothly across region borders by the soft partition:

    D = sum_r w_r * (B_id c_r) + B_expr (sigma_e c_e),   c_r ~ N(0, I_S), c_e ~ N(0, I_E)

D (V, 3) metres is an offset from the fit; B_id (V, 3, S) the identity modes, w_r (V,) the soft
partition's weight of region r, B_expr (V, 3, E) the expression modes (the hidden mouth may
smile or not). This is the distribution the out-of-span test heads (``evaluation/out_of_span.py``)
draw their region mixing from, and nothing here is learned.

The eyeballs follow their socket rigidly (the eye region's weights, the mean of the eyeball's
own rows). Combinations of modes that cancel where seen and fold where hidden are what Gaussian
conditioning leaves most freedom to, so the prior's precision adds a bending energy,
``bending`` * K / trace(H) * H (``bending_gram``): the prior is N(0, (I + lambda H)^-1), narrower
than the model's own statistics, most of all for wrinkles. Conditioning on D = 0 at the seen
vertices (observation noise ``noise_m``) gives the posterior N(0, P^-1) of the coefficients with
P = I + lambda H + A^T A / noise^2 (A: the basis rows of the seen vertices); a sample is
S_m + G eps with G = B L^-T (P = L L^T) and eps ~ N(0, I), so eps is the whitened coordinate in
which the DPP's quality term is exact (``diversify.diversify_gaussian``).

Assumptions: region independence with the model's per-region statistics (real faces are
neither as tied as the global model nor as free as this); smooth offsets; expression weights
within +-0.3 of the fit's. Test heads made by the same region mixing flatter this prior.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..fit.regions import LOCAL_REGIONS, soft_partition
from ..head_model import HeadModel
from ..head_model.mesh_quality import adjacency
from .settings import RegionPriorSettings

EYE_SOCKETS = {"left_eyeball": "left_eye_region", "right_eyeball": "right_eye_region"}


def region_basis(model: HeadModel, settings: RegionPriorSettings = RegionPriorSettings()) -> np.ndarray:
    """(V * 3, R * S + E) float32: metres per unit coefficient, rows vertex-major (x, y, z)."""
    W = soft_partition(model).astype(np.float64)  # (R, V), 0 on the eyeballs
    ident = model.shapedirs.astype(np.float64) * settings.identity_sigma  # (V, 3, S)
    for ball, socket in EYE_SOCKETS.items():  # rigid, with its socket: every vertex moves by the mean row
        idx = model.regions[ball]
        W[:, idx] = 0.0
        W[LOCAL_REGIONS.index(socket), idx] = 1.0
        ident[idx] = ident[idx].mean(0, keepdims=True)
    V, _, S = ident.shape
    cols = [(W[r][:, None, None] * ident).reshape(V * 3, S) for r in range(W.shape[0]) if W[r].any()]
    expr = model.exprdirs.astype(np.float64) * settings.expression_sigma
    cols.append(expr.reshape(V * 3, -1))
    return np.concatenate(cols, axis=1).astype(np.float32)


def bending_gram(model: HeadModel, basis: np.ndarray) -> np.ndarray:
    """(K, K) float64: H = (L B)^T (L B), so that c^T H c is the bending energy of the offset B c.
    L is the mesh Laplacian with weights 1 / edge length^2 (template), so that a difference across
    a short edge (a lid margin, a nostril) costs what the same fold across a long one does: it
    measures curvature, not displacement."""
    V = model.num_vertices
    A = adjacency(model.faces, V).tocoo()
    v = model.v_template.astype(np.float64)
    w = 1.0 / np.maximum(((v[A.row] - v[A.col]) ** 2).sum(1), 1e-12)
    W = sp.coo_matrix((w / w.mean(), (A.row, A.col)), shape=(V, V)).tocsr()
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    LB = (L @ basis.reshape(V, -1).astype(np.float64)).reshape(V * 3, -1)
    return LB.T @ LB


class ConditionedPrior:
    """The prior conditioned on D = 0 where seen: ``decode(eps)`` (M, K) -> (M, V, 3) offsets."""

    def __init__(self, basis: torch.Tensor, seen: torch.Tensor, noise_m: float, bending: torch.Tensor | None = None):
        """basis (V * 3, K) metres; seen (V,) bool; bending (K, K) an extra precision (smoothness)."""
        K = basis.shape[1]
        rows = seen.repeat_interleave(3)
        A = basis[rows].double()
        P = torch.eye(K, dtype=torch.float64, device=basis.device) + (A.T @ A) / noise_m ** 2
        if bending is not None:
            P = P + bending.double()
        L = torch.linalg.cholesky(P)
        # G^T = L^-1 B^T, so that G eps has covariance B P^-1 B^T
        self.G = torch.linalg.solve_triangular(L, basis.double().T, upper=False).T.to(basis.dtype).contiguous()
        self.num_vertices = seen.shape[0]

    @property
    def num_coefficients(self) -> int:
        return int(self.G.shape[1])

    def decode(self, eps: torch.Tensor) -> torch.Tensor:
        """eps (M, K) -> offsets (M, V, 3) metres."""
        return (eps @ self.G.T).view(eps.shape[0], self.num_vertices, 3)

    def std(self) -> torch.Tensor:
        """(V,) metres: the posterior's RMS over x, y, z at each vertex."""
        return self.G.pow(2).sum(1).view(-1, 3).mean(1).sqrt()


class RegionPrior:
    """The prior's basis and smoothness precision for one head model, on one device (made once
    per engine: about 1.5 s on a CPU)."""

    def __init__(self, model: HeadModel, settings: RegionPriorSettings = RegionPriorSettings(), device="cpu"):
        basis = region_basis(model, settings)
        self.settings = settings
        self.basis = torch.as_tensor(basis, device=device)
        self.bending = None
        if settings.bending > 0:
            H = bending_gram(model, basis)
            # the bending weight is relative: at 1 a prior draw's expected bending energy weighs
            # as much as its coefficients' (trace(H) / K per coefficient)
            scale = settings.bending * basis.shape[1] / max(float(np.trace(H)), 1e-30)
            self.bending = torch.as_tensor(H * scale, device=device)

    @property
    def num_coefficients(self) -> int:
        return int(self.basis.shape[1])

    def condition(self, seen: torch.Tensor) -> ConditionedPrior:
        """The posterior given D = 0 at ``seen`` (V,) bool."""
        return ConditionedPrior(self.basis, seen.to(self.basis.device).bool(), self.settings.noise_m, self.bending)

"""The DPP diversity loss of Algorithm 2 (paper section 4.3, Eqs. 8-10 and 13).

For M samples (meshes decoded from M latents) the L-ensemble kernel is
``L_ij = q_i S_ij q_j`` with

- similarity ``S_ij = exp(-k d_ij)``, ``d_ij`` the distance between samples i and j on
  the occluded vertices only (Eq. 8);
- quality ``q_i = exp(-max(0, excess(z_i)))`` of latent ``z_i`` (Eq. 9);

and the loss is minus the DPP's expected cardinality, ``-tr(I - (L + I)^-1)`` (Eq. 10):
minimising it spreads the samples apart on the occluded vertices while keeping their
latents inside the prior's typical shell.

Choices (see DPPSettings):

- distance ``reduction="rms"`` (default): ``d_ij = ||S_c^i - S_c^j||_2 / sqrt(V_o)``, the
  L2 norm of the paper over the flattened occluded coordinates, divided by sqrt of the
  number of occluded vertices, i.e. the root-mean-square per-vertex distance. This is
  exactly what the authors' code computes (``cdist`` of the flattened occluded vertices
  over ``sqrt(V_o)``) and, with k set from the data, the paper's plain L2 norm gives the
  very same kernel (a constant factor cancels in ``k * d``). ``reduction="mean"`` uses the
  mean per-vertex Euclidean distance instead. The same distance sets k and the kernel.
- ``k = k_scale / median_{i<j} d_ij`` (k_scale 0.5, as in the authors' code), per set,
  without gradient; pass ``k`` to hold it fixed. The median is the usual one (mean of the
  two middle values for an even count); the median is floored at ``min_median``.
- quality ``"chi2"`` (default, the authors' code): excess = ``||z|| - r`` with r the
  radius holding ``mass`` (0.9) of the prior N(0, I_d): ``r = sqrt(chi2.ppf(mass, d))``.
  ``"paper"``: excess = ``z^T z - 3 sqrt(d)`` as printed; note that a prior draw has
  ``z^T z ~ d`` so for d >> 9 this makes every quality ~0 (the kernel vanishes), which is
  why it is not the default. ``"none"``: q = 1.

Both distances give positive-definite similarity kernels (Laplacian kernel of a
Euclidean distance; a product of such kernels over vertices), so ``L + I >= I`` and its
Cholesky factor exists even for identical samples. Computation is in float64; the loss
comes back in the samples' dtype. Identical samples give a finite loss (-M q^2/(1 + M q^2)
with equal q) and zero (not NaN) gradients: by symmetry no direction is preferred. An empty
occluded set gives all distances 0 (the same constant kernel), so only the quality term acts.
Note that quality far outside the shell drives L, and with it the loss and its gradients,
towards 0 (q^2 = exp(-2 excess)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .settings import DPPSettings, QualityMode, Reduction  # noqa: F401  (the settings live there)


@dataclass
class DPPResult:
    """The loss and, detached, what it was made of (for logging). B = leading batch shape."""

    loss: torch.Tensor  # () scalar, mean over the batch, samples' dtype, differentiable
    expected_size: torch.Tensor  # (B...) tr(I - (L+I)^-1), detached
    kernel: torch.Tensor  # (B..., M, M) L, detached float64
    similarity: torch.Tensor  # (B..., M, M) S, detached float64
    distances: torch.Tensor  # (B..., M, M) d_ij in metres, detached float64
    k: torch.Tensor  # (B...) similarity scale, 1/metres
    quality: torch.Tensor  # (B..., M) q_i, detached float64


@lru_cache(maxsize=64)
def quality_radius(dim: int, mass: float = 0.9) -> float:
    """Radius of the ball holding ``mass`` of N(0, I_dim): sqrt(chi2.ppf(mass, dim))."""
    from scipy.stats import chi2

    return float(chi2.ppf(mass, dim)) ** 0.5


def _vertex_weights(occluded: torch.Tensor, batch_shape: torch.Size, num_vertices: int, device) -> torch.Tensor:
    """(B..., V) float64 0/1 weights from a (V,) or (B..., V) bool mask."""
    occ = torch.as_tensor(occluded, device=device)
    if occ.shape[-1] != num_vertices:
        raise ValueError(f"occluded mask has {occ.shape[-1]} entries, samples have {num_vertices} vertices")
    return occ.to(torch.bool).to(torch.float64).expand(*batch_shape, num_vertices)


def pairwise_distances(
    samples: torch.Tensor, occluded: torch.Tensor, reduction: Reduction = "rms", eps: float = 1e-12
) -> torch.Tensor:
    """(B..., M, V, 3) samples, (V,) or (B..., V) bool mask -> (B..., M, M) float64 distances, metres.

    Differentiable; the diagonal is exactly 0 and identical samples give zero gradients.
    """
    x = samples.to(torch.float64)
    batch_shape, M, V = x.shape[:-3], x.shape[-3], x.shape[-2]
    w = _vertex_weights(occluded, batch_shape, V, x.device)  # (B..., V)
    count = w.sum(-1).clamp_min(1.0)  # (B...)
    if reduction == "rms":
        # Centre over samples first so that the Gram form loses no precision to the base shape.
        xc = x - x.mean(dim=-3, keepdim=True)
        g = torch.einsum("...mvc,...nvc,...v->...mn", xc, xc, w) / count[..., None, None]
        sq = g.diagonal(dim1=-2, dim2=-1)
        d2 = (sq[..., :, None] + sq[..., None, :] - 2.0 * g).clamp_min(0.0)
    elif reduction == "mean":
        # Only the union of the masked vertices, and only the pairs i < j.
        keep = (w.reshape(-1, V) > 0).any(0).nonzero().squeeze(-1)
        xs, ws = x.index_select(-2, keep), w.index_select(-1, keep)
        i, j = torch.triu_indices(M, M, offset=1, device=x.device)
        diff = xs[..., i, :, :] - xs[..., j, :, :]  # (B..., P, Vk, 3)
        per_vertex = ((diff * diff).sum(-1) + eps * eps).sqrt() - eps  # (B..., P, Vk)
        dp = (per_vertex * ws[..., None, :]).sum(-1) / count[..., None]  # (B..., P)
        d = x.new_zeros(*batch_shape, M, M)
        d[..., i, j] = dp
        d[..., j, i] = dp
        return d
    else:
        raise ValueError(f"unknown reduction {reduction!r} (use 'rms' or 'mean')")
    d = (d2 + eps * eps).sqrt() - eps
    eye = torch.eye(M, dtype=torch.bool, device=x.device)
    return d.masked_fill(eye, 0.0)


def similarity_scale(distances: torch.Tensor, k_scale: float = 0.5, min_median: float = 1e-9) -> torch.Tensor:
    """k = k_scale / median of the off-diagonal (i < j) distances; (B..., M, M) -> (B...), no gradient."""
    with torch.no_grad():
        M = distances.shape[-1]
        i, j = torch.triu_indices(M, M, offset=1, device=distances.device)
        # the usual median (mean of the two middle values for an even count, as numpy);
        # torch.median, used by the authors' code, would return the lower one
        med = torch.quantile(distances[..., i, j], 0.5, dim=-1)
        return k_scale / med.clamp_min(min_median)


def latent_quality(latents: torch.Tensor, mode: QualityMode = "chi2", mass: float = 0.9) -> torch.Tensor:
    """(B..., M, d) latents of the prior N(0, I_d) -> (B..., M) float64 quality in (0, 1].

    q = 1 inside the shell and decays as exp(-excess) outside; the gradient is zero inside.
    """
    z = latents.to(torch.float64)
    sq = (z * z).sum(-1)
    dim = z.shape[-1]
    if mode == "chi2":
        r = quality_radius(dim, mass)
        # clamp before the square root: exact zero gradient inside, no NaN at z = 0
        excess = sq.clamp_min(r * r).sqrt() - r
    elif mode == "paper":
        excess = (sq - 3.0 * dim**0.5).clamp_min(0.0)
    elif mode == "none":
        return torch.ones_like(sq)
    else:
        raise ValueError(f"unknown quality mode {mode!r} (use 'chi2', 'paper' or 'none')")
    return torch.exp(-excess)


def expected_cardinality(kernel: torch.Tensor) -> torch.Tensor:
    """tr(I - (L + I)^-1) of a (B..., M, M) symmetric PSD L-ensemble kernel, via Cholesky (float64)."""
    L = kernel.to(torch.float64)
    L = 0.5 * (L + L.transpose(-1, -2))
    M = L.shape[-1]
    eye = torch.eye(M, dtype=L.dtype, device=L.device)
    chol = torch.linalg.cholesky(L + eye)  # L + I >= I: always exists
    inv_chol = torch.linalg.solve_triangular(chol, eye.expand_as(L), upper=False)
    trace_inv = (inv_chol * inv_chol).sum((-2, -1))  # tr((C C^T)^-1) = ||C^-1||_F^2
    return M - trace_inv


def dpp_terms(
    samples: torch.Tensor,
    occluded: torch.Tensor,
    latents: torch.Tensor | None = None,
    k: float | torch.Tensor | None = None,
    settings: DPPSettings | None = None,
) -> DPPResult:
    """The DPP loss and its parts.

    samples (B..., M, V, 3) metres; occluded (V,) or (B..., V) bool; latents (B..., M, ...) or
    None (q = 1); k (1/metres) fixed scale, or None for k_scale / median distance.
    """
    s = settings or DPPSettings()
    if samples.ndim < 3 or samples.shape[-1] != 3:
        raise ValueError(f"samples must be (..., M, V, 3), got {tuple(samples.shape)}")
    batch_shape, M = samples.shape[:-3], samples.shape[-3]
    if M < 2:
        raise ValueError("the DPP loss needs at least 2 samples")
    d = pairwise_distances(samples, occluded, s.reduction, s.eps)
    if k is None:
        k_t = similarity_scale(d, s.k_scale, s.min_median)
    else:
        k_t = torch.as_tensor(k, dtype=torch.float64, device=d.device).expand(batch_shape)
    S = torch.exp(-k_t[..., None, None] * d)
    if latents is None:
        q = torch.ones(*batch_shape, M, dtype=torch.float64, device=d.device)
    else:
        z = latents.reshape(*batch_shape, M, -1)
        q = latent_quality(z, s.quality, s.mass)
    L = q[..., :, None] * S * q[..., None, :]
    size = expected_cardinality(L)
    loss = (-size).mean().to(samples.dtype)
    return DPPResult(
        loss=loss,
        expected_size=size.detach(),
        kernel=L.detach(),
        similarity=S.detach(),
        distances=d.detach(),
        k=k_t.detach(),
        quality=q.detach(),
    )


def dpp_loss(
    samples: torch.Tensor,
    occluded: torch.Tensor,
    latents: torch.Tensor | None = None,
    k: float | torch.Tensor | None = None,
    settings: DPPSettings | None = None,
) -> torch.Tensor:
    """Scalar -tr(I - (L+I)^-1), mean over the batch; see dpp_terms for the arguments."""
    return dpp_terms(samples, occluded, latents, k, settings).loss

"""Algorithm 2: M diverse completions of a partial shape (paper section 4.3, Eqs. 8-10, 13).

The M latents start from the encoder's N(mu, sigma^2) for S_m masked by M_o^v and are
optimised together (one batch) to minimise

    lambda_s L_S + lambda_pho L_pho + diversity * lambda_dpp L_dpp

L_S: mean L1 distance (cm) of each decoded sample to S_m on the visible vertices;
L_pho: an optional photometric term given by the caller (a function of the decoded samples);
L_dpp: the DPP loss (``dpp.py``) on the occluded vertices (eyeballs left out, as in the
authors' code), with the latent quality term taken on latents standardised by the
encoder's statistics over head-model samples (the VAE's KL weight is small, so its
latents are not N(0, I) on their own).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from scipy.stats import chi2

from ..errors import Cancelled
from .dpp import dpp_terms
from .settings import DiversifySettings

__all__ = ["Cancelled", "DiversifyResult", "DiversifySettings", "diversify", "diversify_gaussian", "diversify_linear",
           "optimise_diverse"]


@dataclass
class DiversifyResult:
    samples: np.ndarray  # (M, V, 3) metres
    latents: np.ndarray  # (M, 10, 64) Mesh-VAE; (M, 1, K) the "gaussian" model's whitened coefficients
    mu: np.ndarray  # (10, 64) or (1, K): the posterior's mean
    logvar: np.ndarray  # (10, 64) or (1, K): its log variance (0 for "gaussian": whitened)
    mean_completion: np.ndarray  # (V, 3) decode(mu), metres (the fit itself for "gaussian")
    history: dict = field(default_factory=dict)  # loss terms per iteration
    seconds: float = 0.0


@torch.no_grad()
def latent_statistics(vae, meshes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (10, 64) of the encoder's mu over ``meshes`` (N, V, 3) metres (all visible)."""
    mus = torch.cat([vae.encode(meshes[i:i + 16])[0] for i in range(0, len(meshes), 16)])
    return mus.mean(0), mus.std(0).clamp_min(1e-6)


def optimise_diverse(decode: Callable[[torch.Tensor], torch.Tensor], params: torch.Tensor, partial: torch.Tensor,
                     occluded: torch.Tensor, settings: DiversifySettings,
                     standardise: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     exclude_from_dpp: torch.Tensor | None = None,
                     photometric: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     progress: Callable[[str, float], None] | None = None,
                     cancel: Callable[[], bool] | None = None,
                     guard: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """The optimisation of Algorithm 2 for any decoder: ``params`` (M, ...) -> ``decode`` -> (M, V, 3).

    ``standardise`` maps params to the space where the prior is N(0, I) (for the quality term);
    ``guard`` (params -> scalar) an extra plausibility penalty, added as it is.
    Returns the optimised params (detached) and the loss history."""
    st = settings
    dev = partial.device
    occ = occluded.to(dev).bool()
    vis = ~occ
    z = params.detach().clone().requires_grad_(True)
    standardise = standardise or (lambda t: t)
    dpp_vertices = occ if exclude_from_dpp is None else occ & ~exclude_from_dpp.to(dev).bool()
    use_dpp = z.shape[0] >= 2 and bool(dpp_vertices.any()) and st.diversity > 0
    opt = torch.optim.Adam([z], lr=st.lr)
    history = {"l_s": [], "l_dpp": [], "l_pho": [], "expected_size": [], "guard": []}
    target = partial[None]
    n_vis = vis.sum().clamp(min=1)
    for it in range(st.iterations):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        opt.zero_grad()
        x = decode(z)  # (M, V, 3) metres
        l_s = ((x - target).abs().sum(-1) * vis).sum(-1).div(n_vis).mean() * 100  # cm
        loss = st.lambda_s * l_s
        if use_dpp:
            terms = dpp_terms(x, dpp_vertices, standardise(z), settings=st.dpp)
            loss = loss + st.diversity * st.lambda_dpp * terms.loss
            history["l_dpp"].append(float(terms.loss.detach()))
            history["expected_size"].append(float(terms.expected_size))
        if photometric is not None and st.lambda_pho > 0:
            l_pho = photometric(x)
            loss = loss + st.lambda_pho * l_pho
            history["l_pho"].append(float(l_pho.detach()))
        if guard is not None:
            g = guard(z)
            loss = loss + g
            history["guard"].append(float(g.detach()))
        loss.backward()
        opt.step()
        history["l_s"].append(float(l_s.detach()))
        if progress is not None:
            progress("complete: diverse samples", (it + 1) / st.iterations)
    return z.detach(), history


def diversify(vae, partial: torch.Tensor, occluded: torch.Tensor, settings: DiversifySettings | None = None,
              latent_stats: tuple[torch.Tensor, torch.Tensor] | None = None,
              exclude_from_dpp: torch.Tensor | None = None,
              photometric: Callable[[torch.Tensor], torch.Tensor] | None = None,
              progress: Callable[[str, float], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> DiversifyResult:
    """Algorithm 2 with the Mesh-VAE. partial (V, 3) S_m metres; occluded (V,) bool M_o^v;
    exclude_from_dpp (V,) bool (eyeballs, vertices outside the face)."""
    st = settings or DiversifySettings()
    t0 = time.perf_counter()
    dev = partial.device
    vis = ~occluded.to(dev).bool()
    with torch.no_grad():
        mu, logvar = vae.encode(partial[None], vis[None])
        mu, logvar = mu[0], logvar[0]
        mean_completion = vae.decode(mu[None])[0]
    gen = torch.Generator(device="cpu").manual_seed(st.seed)
    eps = torch.randn((st.samples, *mu.shape), generator=gen).to(dev)
    z0 = mu + st.init_spread * torch.exp(0.5 * logvar) * eps
    m_agg, s_agg = latent_stats if latent_stats is not None else (torch.zeros_like(mu), torch.ones_like(mu))
    z, history = optimise_diverse(vae.decode, z0, partial, occluded, st, lambda t: (t - m_agg) / s_agg,
                                  exclude_from_dpp, photometric, progress, cancel)
    with torch.no_grad():
        samples = vae.decode(z)
    return DiversifyResult(
        samples=samples.cpu().numpy(), latents=z.cpu().numpy(), mu=mu.cpu().numpy(),
        logvar=logvar.cpu().numpy(), mean_completion=mean_completion.cpu().numpy(), history=history,
        seconds=time.perf_counter() - t0,
    )


def diversify_linear(basis: torch.Tensor, coef0: torch.Tensor, partial: torch.Tensor, occluded: torch.Tensor,
                     settings: DiversifySettings | None = None, exclude_from_dpp: torch.Tensor | None = None,
                     init_sigma: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The DPP on a linear model's coefficients (the paper's "FLAME + DPP" baselines).

    basis (V, 3, K) metres per unit coefficient (coefficients ~ N(0, 1)); coef0 (K,) the fit's
    coefficients; samples are S_m + basis (c_i - coef0). Returns samples (M, V, 3), coefficients (M, K)."""
    st = settings or DiversifySettings()
    gen = torch.Generator(device="cpu").manual_seed(st.seed)
    c0 = coef0.to(partial.device)
    start = c0 + init_sigma * torch.randn((st.samples, c0.shape[0]), generator=gen).to(partial.device)
    B = basis.reshape(-1, basis.shape[-1]).T.contiguous()  # (K, V*3)
    base = partial.reshape(1, -1)

    def decode(c):
        return torch.addmm(base.expand(c.shape[0], -1), c - c0, B).view(c.shape[0], -1, 3)

    c, _ = optimise_diverse(decode, start, partial, occluded, st, None, exclude_from_dpp)
    with torch.no_grad():
        return decode(c).cpu().numpy(), c.cpu().numpy()


def diversify_gaussian(prior, partial: torch.Tensor, occluded: torch.Tensor, settings: DiversifySettings | None = None,
                       exclude_from_dpp: torch.Tensor | None = None,
                       progress: Callable[[str, float], None] | None = None,
                       cancel: Callable[[], bool] | None = None) -> DiversifyResult:
    """Algorithm 2 with the "gaussian" completion (``region_prior.py``): samples S_m + G eps, eps
    the posterior's whitened coefficients, drawn from N(0, I) and diversified by the same loss.
    prior: a ``RegionPrior``; occluded (V,) bool: what the completion may change.

    The DPP's quality term bounds |eps| over all K coefficients, so the DPP could take the length
    of the many directions that hardly touch the hidden part and put it on the few that move it
    most (8-10 sigma along one, measured). The guard bounds instead the length in the subspace
    that holds ``guard_variance`` of the hidden part's posterior variance (principal directions,
    eigenvectors of G_h^T G_h): |z_top| at most the chi (``guard_mass``) radius of its dimension,
    a quadratic penalty beyond. The coordinates are optimised in that rotated basis."""
    st = settings or DiversifySettings()
    t0 = time.perf_counter()
    dev = partial.device
    occ = occluded.to(dev).bool()
    cond = prior.condition(~occ)
    K = cond.num_coefficients
    gen = torch.Generator(device="cpu").manual_seed(st.seed)
    eps0 = st.init_spread * torch.randn((st.samples, K), generator=gen).to(dev)
    base = partial[None]
    ps = prior.settings  # the guard's settings are the prior's own
    guard, rotate, top = None, (lambda z: z), 0
    if ps.guard_mass > 0 and bool(occ.any()):
        Gh = cond.G.view(-1, 3, K)[occ].reshape(-1, K).double()
        evals, Q = torch.linalg.eigh(Gh.T @ Gh)  # ascending
        evals, Q = evals.flip(0).clamp_min(0), Q.flip(1).to(eps0.dtype)  # (K, K) orthogonal: z = eps Q
        top = int(torch.searchsorted(torch.cumsum(evals, 0) / evals.sum().clamp_min(1e-30),
                                     torch.tensor(ps.guard_variance, dtype=evals.dtype)).item()) + 1
        radius = float(np.sqrt(chi2.ppf(ps.guard_mass, min(top, K))))
        rotate = lambda z: z @ Q.T  # noqa: E731
        eps0 = eps0 @ Q  # the same draws, in the rotated basis (also N(0, I))
        guard = lambda z: ps.guard_weight * torch.relu(z[:, :top].norm(dim=1) - radius).pow(2).mean()  # noqa: E731
    decode = lambda z: base + cond.decode(rotate(z))  # noqa: E731
    z, history = optimise_diverse(decode, eps0, partial, occluded, replace(st, lr=ps.lr), None, exclude_from_dpp, None,
                                  progress, cancel, guard)
    with torch.no_grad():
        samples = decode(z)
        eps = rotate(z)
    history["guard_dimensions"] = top
    zeros = np.zeros((1, K), np.float32)
    return DiversifyResult(
        samples=samples.cpu().numpy(), latents=eps.cpu().numpy()[:, None, :], mu=zeros, logvar=zeros,
        mean_completion=partial.cpu().numpy(), history=history, seconds=time.perf_counter() - t0,
    )

"""The DPP diversity loss (complete/dpp.py) against hand-made cases and an independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from d3dface.complete.dpp import (
    DPPSettings,
    dpp_loss,
    dpp_terms,
    latent_quality,
    pairwise_distances,
    quality_radius,
)

REDUCTIONS = ("rms", "mean")


def _case(M=8, V=40, n_occ=15, d=16, spread=1e-3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(V, 3, generator=g, dtype=torch.float64) * 0.05
    samples = (base + spread * torch.randn(M, V, 3, generator=g, dtype=torch.float64)).to(dtype)
    occ = torch.zeros(V, dtype=torch.bool)
    occ[torch.randperm(V, generator=g)[:n_occ]] = True
    z = torch.randn(M, d, generator=g, dtype=torch.float64).to(dtype)
    return samples, occ, z


def _numpy_loss(samples, occ, z, reduction, quality="chi2", mass=0.9, k_scale=0.5):
    """Written from the equations only: explicit differences, np.linalg.inv."""
    x = samples[:, occ]  # (M, Vo, 3)
    M, Vo = x.shape[:2]
    d = np.zeros((M, M))
    for i in range(M):
        for j in range(M):
            diff = x[i] - x[j]
            if reduction == "rms":
                d[i, j] = np.linalg.norm(diff.ravel()) / np.sqrt(Vo)
            else:
                d[i, j] = np.linalg.norm(diff, axis=1).mean()
    k = k_scale / np.median(d[np.triu_indices(M, 1)])
    S = np.exp(-k * d)
    dim = z.shape[1]
    if quality == "chi2":
        excess = np.maximum(0.0, np.linalg.norm(z, axis=1) - np.sqrt(chi2.ppf(mass, dim)))
    elif quality == "paper":
        excess = np.maximum(0.0, (z * z).sum(1) - 3 * np.sqrt(dim))
    else:
        excess = np.zeros(M)
    q = np.exp(-excess)
    L = q[:, None] * S * q[None, :]
    return -np.trace(np.eye(M) - np.linalg.inv(L + np.eye(M))), k


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("quality", ("chi2", "paper", "none"))
@pytest.mark.parametrize("M", (2, 5, 16))
def test_loss_matches_numpy_reference(reduction, quality, M):
    samples, occ, z = _case(M=M, seed=M)
    # scale latents so that some fall outside the shell in each mode
    z = z * torch.linspace(0.5, 1.6, M, dtype=z.dtype)[:, None]
    if quality == "paper":
        z = z * 0.5
    settings = DPPSettings(reduction=reduction, quality=quality)
    res = dpp_terms(samples, occ, z, settings=settings)
    ref, k_ref = _numpy_loss(samples.numpy(), occ.numpy(), z.numpy(), reduction, quality)
    assert res.loss.item() == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert res.k.item() == pytest.approx(k_ref, rel=1e-8)  # eps smoothing: d - 1e-12 m
    assert res.kernel.shape == (M, M) and res.quality.shape == (M,)
    assert res.expected_size.item() == pytest.approx(-ref, rel=1e-10)


def test_rms_distance_is_the_scaled_l2_norm_of_the_occluded_coordinates():
    samples, occ, _ = _case(M=4)
    d = pairwise_distances(samples, occ, "rms")
    flat = samples[:, occ].reshape(4, -1)
    ref = torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist") / float(occ.sum()) ** 0.5
    torch.testing.assert_close(d, ref, rtol=1e-12, atol=2e-12)  # eps smoothing: d - 1e-12 m
    assert torch.all(d.diagonal() == 0)


def test_k_is_half_over_the_median_and_carries_no_gradient():
    samples, occ, z = _case(M=6)
    samples.requires_grad_(True)
    res = dpp_terms(samples, occ, z)
    d = res.distances
    iu = torch.triu_indices(6, 6, 1)
    assert res.k.item() == pytest.approx(0.5 / d[iu[0], iu[1]].median().item())
    assert not res.k.requires_grad
    # holding k at the value the data gave changes nothing in value or gradient
    g_auto = torch.autograd.grad(res.loss, samples)[0]
    res_fixed = dpp_terms(samples, occ, z, k=res.k)
    g_fixed = torch.autograd.grad(res_fixed.loss, samples)[0]
    assert res_fixed.loss.item() == pytest.approx(res.loss.item())
    torch.testing.assert_close(g_auto, g_fixed)


def test_k_is_invariant_to_the_units_of_the_samples():
    samples, occ, z = _case(M=8)
    base = samples.mean(0)
    a = dpp_loss(samples, occ, z)
    b = dpp_loss(base + 1000.0 * (samples - base), occ, z)  # same shapes, spread x1000
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_with_fixed_k(reduction):
    samples, occ, z = _case(M=4, V=8, n_occ=4, d=3, spread=1e-2, seed=5)
    z = z * 2.0  # some outside the 90% shell, so the quality term is active
    samples.requires_grad_(True)
    z.requires_grad_(True)
    settings = DPPSettings(reduction=reduction)
    assert torch.autograd.gradcheck(lambda s, l: dpp_loss(s, occ, l, k=40.0, settings=settings), (samples, z))


def _pairwise(x):
    flat = x.reshape(x.shape[0], -1)
    d = torch.cdist(flat, flat)
    iu = torch.triu_indices(x.shape[0], x.shape[0], 1)
    return d[iu[0], iu[1]]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spread", (1e-6, 1e-3))
def test_gradient_step_pushes_nearly_identical_samples_apart(reduction, spread):
    samples, occ, z = _case(M=8, spread=spread, seed=11)
    samples = samples.clone().requires_grad_(True)
    loss = dpp_loss(samples, occ, z * 0.1, settings=DPPSettings(reduction=reduction))
    (g,) = torch.autograd.grad(loss, samples)
    assert torch.isfinite(g).all()
    step = 0.02 * spread * g / g.abs().max()  # a small step relative to the spread
    before, after = _pairwise(samples.detach()[:, occ]), _pairwise((samples - step).detach()[:, occ])
    assert after.mean() > before.mean()
    assert after.min() > before.min()
    assert g[:, ~occ].abs().max() == 0


@pytest.mark.parametrize("mode", ("chi2", "paper"))
def test_quality_gradient_points_outward_outside_the_shell_and_is_zero_inside(mode):
    M, dim = 6, 12
    samples, occ, _ = _case(M=M, d=dim, seed=3)
    g = torch.Generator().manual_seed(4)
    dirs = torch.randn(M, dim, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    if mode == "chi2":
        r = quality_radius(dim)
        radii = torch.tensor([0.0, 0.5 * r, 0.99 * r, 1.01 * r, 1.5 * r, 2.0 * r], dtype=torch.float64)
    else:
        r = (3 * dim**0.5) ** 0.5  # z^T z = 3 sqrt(d) on the shell
        radii = torch.tensor([0.0, 0.5 * r, 0.99 * r, 1.01 * r, 1.2 * r, 1.5 * r], dtype=torch.float64)
    z = (dirs * radii[:, None]).requires_grad_(True)
    loss = dpp_loss(samples, occ, z, settings=DPPSettings(quality=mode))
    (gz,) = torch.autograd.grad(loss, z)
    inside = radii < r
    assert torch.all(gz[inside] == 0)
    outside = ~inside
    cos = (gz[outside] * z[outside]).sum(1) / (gz[outside].norm(dim=1) * z[outside].norm(dim=1))
    # the loss rises along +z, so a descent step (-grad) moves z back toward the shell
    torch.testing.assert_close(cos, torch.ones_like(cos))
    q = latent_quality(z.detach(), mode)
    assert torch.all(q[inside] == 1) and torch.all(q[outside] < 1)


def test_quality_radius_is_the_chi2_quantile():
    assert quality_radius(1) == pytest.approx(1.6448536, rel=1e-6)  # 95% two-sided normal quantile
    assert quality_radius(640) == pytest.approx(np.sqrt(chi2.ppf(0.9, 640)))
    z = torch.randn(20000, 64, generator=torch.Generator().manual_seed(0))
    inside = (z.norm(dim=1) <= quality_radius(64)).float().mean().item()
    assert inside == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("M", (4, 16))
def test_loss_falls_monotonically_as_samples_spread(reduction, M):
    samples, occ, z = _case(M=M, seed=M + 1)
    base, offsets = samples.mean(0), samples - samples.mean(0)
    settings = DPPSettings(reduction=reduction)
    ts = np.linspace(0, 5, 21)
    losses = [dpp_loss(base + t * offsets, occ, z * 0.1, k=400.0, settings=settings).item() for t in ts]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[0] == pytest.approx(-M / (M + 1))  # identical: one eigenvalue M
    assert losses[-1] > -M / 2  # never beyond M independent items, L -> I


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("M", (2, 8, 16, 32))
def test_stable_for_identical_and_nearly_identical_samples(reduction, M):
    settings = DPPSettings(reduction=reduction)
    _, occ, z = _case(M=M, d=32, seed=M)
    base = torch.randn(40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.05 + 1.4
    for spread in (0.0, 1e-12, 1e-9, 1e-6, 1e-2):
        for dtype in (torch.float64, torch.float32):
            x = (base + spread * torch.randn(M, 40, 3, dtype=torch.float64)).to(dtype).requires_grad_(True)
            zz = (2 * z).to(dtype).requires_grad_(True)  # well outside the shell: q small but positive
            loss = dpp_loss(x, occ, zz, settings=settings)
            gx, gz = torch.autograd.grad(loss, (x, zz))
            assert loss.dtype == dtype
            assert torch.isfinite(loss) and torch.isfinite(gx).all() and torch.isfinite(gz).all()
            assert -M / 2 - 1e-6 <= loss.item() < 0
    x = base.expand(M, 40, 3).clone()
    loss = dpp_loss(x, occ, z * 0.1, settings=settings)
    assert loss.item() == pytest.approx(-M / (M + 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_non_occluded_vertices_do_not_influence_the_loss(reduction):
    samples, occ, z = _case(M=8, seed=21)
    settings = DPPSettings(reduction=reduction)
    a = samples.clone().requires_grad_(True)
    loss_a = dpp_loss(a, occ, z, settings=settings)
    (ga,) = torch.autograd.grad(loss_a, a)
    b = samples.clone()
    b[:, ~occ] += torch.randn_like(b[:, ~occ])  # visible vertices moved by ~1 m per sample
    loss_b = dpp_loss(b, occ, z, settings=settings)
    assert loss_a.item() == loss_b.item() or loss_a.item() == pytest.approx(loss_b.item(), rel=1e-12)
    assert torch.all(ga[:, ~occ] == 0)
    assert ga[:, occ].abs().max() > 0


def test_batched_equals_one_set_at_a_time():
    sets = [_case(M=6, seed=s) for s in range(3)]
    samples = torch.stack([s[0] for s in sets])
    latents = torch.stack([s[2] for s in sets])
    occ = torch.stack([s[1] for s in sets])  # a different mask per set
    res = dpp_terms(samples, occ, latents)
    singles = [dpp_terms(s, o, z) for s, o, z in sets]
    assert res.loss.item() == pytest.approx(np.mean([r.loss.item() for r in singles]))
    torch.testing.assert_close(res.k, torch.stack([r.k for r in singles]))
    torch.testing.assert_close(res.kernel, torch.stack([r.kernel for r in singles]))
    shared = dpp_terms(samples, sets[0][1], latents)  # one (V,) mask for every set
    assert shared.kernel.shape == (3, 6, 6)


def test_latents_with_a_structured_shape_are_flattened():
    samples, occ, z = _case(M=4, d=12)
    a = dpp_loss(samples, occ, z)
    b = dpp_loss(samples, occ, z.reshape(4, 3, 4))
    assert a.item() == pytest.approx(b.item())


def test_rejects_bad_input():
    samples, occ, z = _case(M=4)
    with pytest.raises(ValueError):
        dpp_loss(samples[:1], occ, z[:1])
    with pytest.raises(ValueError):
        dpp_loss(samples, occ[:-1], z)
    with pytest.raises(ValueError):
        dpp_loss(samples, occ, z, settings=DPPSettings(reduction="max"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    samples, occ, z = _case(M=16, seed=2)
    cpu = dpp_loss(samples, occ, z)
    xs = samples.cuda().requires_grad_(True)
    gpu = dpp_loss(xs, occ.cuda(), z.cuda())
    gpu.backward()
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-9)
    assert torch.isfinite(xs.grad).all()

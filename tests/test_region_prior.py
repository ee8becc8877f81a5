"""The "gaussian" completion (complete/region_prior.py): its conditioning against the textbook
conditional-Gaussian formula, its basis against the head model and the soft partition, its
bending energy against an edge-by-edge sum, and Algorithm 2 on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d3dface.complete.diversify import Cancelled, diversify_gaussian
from d3dface.complete.region_prior import ConditionedPrior, RegionPrior, bending_gram, region_basis
from d3dface.complete.settings import DiversifySettings, RegionPriorSettings
from d3dface.evaluation.metrics import diversity_metrics
from d3dface.fit.regions import soft_partition
from d3dface.head_model import load_head_model


@pytest.fixture(scope="module")
def model():
    return load_head_model()


@pytest.fixture(scope="module")
def prior(model):
    return RegionPrior(model, RegionPriorSettings())


@pytest.mark.parametrize("with_bending", [False, True])
def test_conditioning_equals_the_conditional_gaussian_formula(with_bending):
    rng = np.random.default_rng(3)
    V, K, noise = 30, 12, 0.05
    B = rng.normal(size=(V * 3, K))
    seen = np.zeros(V, bool)
    seen[rng.choice(V, 18, replace=False)] = True
    Hm = rng.normal(size=(K, K))
    H = Hm @ Hm.T if with_bending else np.zeros((K, K))
    cp = ConditionedPrior(torch.tensor(B), torch.tensor(seen), noise, torch.tensor(H) if with_bending else None)
    G = cp.G.numpy()
    # textbook: x = B c, c ~ N(0, (I + H)^-1); y = x[seen] + n, n ~ N(0, noise^2 I); Cov(x | y)
    Sx = B @ np.linalg.inv(np.eye(K) + H) @ B.T
    o = np.repeat(seen, 3)
    expected = Sx - Sx[:, o] @ np.linalg.solve(Sx[np.ix_(o, o)] + noise ** 2 * np.eye(o.sum()), Sx[o])
    np.testing.assert_allclose(G @ G.T, expected, atol=1e-9 * np.abs(Sx).max())
    eps = torch.tensor(rng.normal(size=(2, K)))
    np.testing.assert_allclose(cp.decode(eps).numpy().reshape(2, -1), eps.numpy() @ G.T, atol=1e-12)
    np.testing.assert_allclose(cp.std().numpy() ** 2, np.diag(expected).reshape(V, 3).mean(1), rtol=1e-9, atol=1e-15)


def test_the_basis_mixes_the_models_identity_by_region(model):
    B = region_basis(model, RegionPriorSettings(expression_sigma=0.5)).reshape(model.num_vertices, 3, -1)
    S, E = model.num_shape, model.num_expr
    W = soft_partition(model)
    R = B.shape[2] // S
    assert B.shape[2] == R * S + E and R == int((W.sum(1) > 0).sum())
    # the same identity in every region is the model's own identity (the partition sums to 1)
    c = np.random.default_rng(0).normal(size=S)
    same = np.einsum("vcrk,k->vc", B[:, :, :R * S].reshape(model.num_vertices, 3, R, S), c)
    skin = W.sum(0) > 0
    np.testing.assert_allclose(same[skin], np.einsum("vck,k->vc", model.shapedirs, c)[skin], atol=1e-6)
    # one region's columns vanish where its weight does
    r = int(np.argmax(W.sum(1) > 0))
    np.testing.assert_array_equal(B[W[r] == 0, :, r * S:(r + 1) * S], 0)
    # the expression columns are the model's, scaled by their sigma
    np.testing.assert_allclose(B[:, :, R * S:], 0.5 * model.exprdirs, rtol=1e-6, atol=1e-9)
    # each eyeball moves rigidly
    for ball in ("left_eyeball", "right_eyeball"):
        rows = B[model.regions[ball]]
        np.testing.assert_allclose(rows, np.broadcast_to(rows[:1], rows.shape), atol=1e-9)


def test_bending_energy_is_the_edge_weighted_laplacian_energy(model):
    rng = np.random.default_rng(1)
    V = model.num_vertices
    basis = rng.normal(size=(V * 3, 3)) * 1e-3
    basis[:, 2] = np.tile([1e-3, -2e-3, 5e-4], V)  # a rigid shift bends nothing
    H = bending_gram(model, basis)
    assert abs(H[2, 2]) < 1e-12 * abs(H[0, 0])
    # the energy of column 0, summed vertex by vertex from the unique edges
    v = model.v_template.astype(np.float64)
    edges = {tuple(sorted((int(f[a]), int(f[b])))) for f in model.faces for a, b in ((0, 1), (1, 2), (2, 0))}
    i, j = np.array(sorted(edges)).T
    w = 1.0 / ((v[i] - v[j]) ** 2).sum(1)
    w /= np.r_[w, w].mean()  # normalised over the symmetric adjacency's entries, as the module
    d = basis[:, 0].reshape(V, 3)
    lap = np.zeros((V, 3))
    np.add.at(lap, i, w[:, None] * (d[i] - d[j]))
    np.add.at(lap, j, w[:, None] * (d[j] - d[i]))
    np.testing.assert_allclose(H[0, 0], (lap ** 2).sum(), rtol=1e-9)


def test_completions_keep_the_seen_part_and_vary_the_hidden_one(model, prior):
    occ = np.zeros(model.num_vertices, bool)
    occ[model.regions["nose"]] = True
    occ[model.regions["lips"]] = True
    std = prior.condition(torch.as_tensor(~occ)).std().numpy() * 1e3  # mm
    face = np.zeros(model.num_vertices, bool)
    face[model.regions["face"]] = True
    assert np.median(std[~occ]) < 0.05 and np.median(std[occ & face]) > 5 * np.median(std[~occ])
    # the nose of the template may differ from the fit by more than the lid margins, far from any seen vertex
    assert np.median(std[model.regions["nose"]]) > 0.1
    excl = torch.ones(model.num_vertices, dtype=torch.bool)
    excl[model.regions["face"]] = False
    S = torch.as_tensor(model.v_template)
    st = DiversifySettings(samples=4, iterations=30, seed=2)
    res = diversify_gaussian(prior, S, torch.as_tensor(occ), st, excl)
    assert res.samples.shape == (4, model.num_vertices, 3) and res.latents.shape == (4, 1, prior.num_coefficients)
    d = diversity_metrics(res.samples, occ, region=model.regions["face"])
    assert d.asd_v < 0.2 and d.asd_o > 5 * d.asd_v
    # the DPP spreads the hidden part beyond the posterior's own draws (its starting point)
    start = diversify_gaussian(prior, S, torch.as_tensor(occ), DiversifySettings(samples=4, iterations=30, seed=2,
                                                                                diversity=0.0), excl)
    assert d.asd_o > 1.2 * diversity_metrics(start.samples, occ, region=model.regions["face"]).asd_o
    again = diversify_gaussian(prior, S, torch.as_tensor(occ), st, excl)
    np.testing.assert_array_equal(again.samples, res.samples)
    np.testing.assert_array_equal(res.mean_completion, model.v_template)
    with pytest.raises(Cancelled):
        diversify_gaussian(prior, S, torch.as_tensor(occ), st, excl, cancel=lambda: True)

"""Joining completions to the fit (complete/stitching.py) and the crease count that judges it
(evaluation/metrics.creased_edges), against independent computations on small meshes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from d3dface.complete.stitching import LaplacianJoin, join_to_fit
from d3dface.evaluation.metrics import creased_edges, dihedral_angles


@pytest.fixture(scope="module")
def sphere():
    m = trimesh.creation.icosphere(subdivisions=3)
    occluded = m.vertices[:, 2] > 0.4  # a cap is hidden
    return m, occluded


def _dense_reference(mesh, occluded, sample, partial):
    """min ||L D||^2 over the hidden D with D = partial - sample where seen, by dense least squares
    (L = degree - adjacency built here from trimesh's unique edges)."""
    V = len(mesh.vertices)
    L = np.zeros((V, V))
    for a, b in mesh.edges_unique:
        L[a, b] = L[b, a] = -1.0
    L[np.arange(V), np.arange(V)] = -L.sum(1)
    h, v = np.where(occluded)[0], np.where(~occluded)[0]
    d_v = partial[v] - sample[v]
    d_h = np.linalg.lstsq(L[:, h], -L[:, v] @ d_v, rcond=None)[0]
    out = sample.copy()
    out[v] = partial[v]
    out[h] += d_h
    return out


def test_the_join_is_the_fit_where_seen_and_the_least_squares_solution_where_hidden(sphere):
    m, occ = sphere
    rng = np.random.default_rng(0)
    partial = m.vertices + rng.normal(0, 0.01, m.vertices.shape)
    samples = partial[None] + rng.normal(0, 0.02, (3, *partial.shape))
    out = LaplacianJoin(m.faces, occ, partial).apply(samples, partial)
    assert out.shape == samples.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, ~occ], np.broadcast_to(partial[~occ], out[:, ~occ].shape).astype(np.float32))
    for k in range(3):
        np.testing.assert_allclose(out[k], _dense_reference(m, occ, samples[k], partial), atol=2e-6)


def test_a_sample_moved_rigidly_comes_back_as_the_fit_and_inner_detail_is_kept(sphere):
    m, occ = sphere
    partial = np.asarray(m.vertices, np.float64)
    moved = partial + [0.03, -0.01, 0.02]  # the whole sample shifted: a constant has no Laplacian
    np.testing.assert_allclose(join_to_fit(moved[None], partial, occ, m.faces)[0], partial, atol=1e-6)
    # a sample that already agrees where seen keeps its hidden shape exactly
    bump = partial.copy()
    bump[occ] *= 1.1
    np.testing.assert_allclose(join_to_fit(bump, partial, occ, m.faces), bump, atol=1e-6)
    samples = np.stack([moved, bump])
    before = samples.copy()
    LaplacianJoin(m.faces, occ, partial).apply(samples, partial)
    np.testing.assert_array_equal(samples, before)  # the caller's arrays are left alone


def test_a_separate_part_moves_with_the_surface_around_it():
    """An eyeball-like part (its own component, all hidden, inside a hidden cap) follows the
    correction of the surface next to it: a sample that is the fit shifted everywhere comes
    back as the fit, the separate part too (it would keep the shift if it were not linked)."""
    head = trimesh.creation.icosphere(subdivisions=3)
    eye = trimesh.creation.icosphere(subdivisions=1, radius=0.15)
    eye.vertices += [0, 0, 0.8]
    m = trimesh.util.concatenate([head, eye])
    occ = np.zeros(len(m.vertices), bool)
    occ[len(head.vertices):] = True
    occ[np.where(head.vertices[:, 2] > 0.5)[0]] = True
    partial = np.asarray(m.vertices, np.float64)
    shifted = partial + [0.02, 0.01, -0.03]
    out = join_to_fit(shifted, partial, occ, m.faces)
    np.testing.assert_allclose(out, partial, atol=1e-5)
    # and a sample that differs only inside the separate part keeps that difference
    inner = partial.copy()
    inner[len(head.vertices):] *= 1.05
    np.testing.assert_allclose(join_to_fit(inner, partial, occ, m.faces), inner, atol=1e-5)


def test_the_smoothstep_join_is_still_there_and_unknown_methods_are_refused(sphere):
    m, occ = sphere
    partial = np.asarray(m.vertices, np.float64)
    out = join_to_fit(partial[None] + 0.01, partial, occ, m.faces, method="smoothstep")
    np.testing.assert_allclose(out[0, ~occ], partial[~occ], atol=1e-7)
    with pytest.raises(ValueError, match="join method"):
        join_to_fit(partial[None], partial, occ, m.faces, method="poisson")


def test_dihedral_angles_match_trimesh_and_a_spike_creases():
    m = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(2)
    v = m.vertices * (1 + rng.uniform(-0.05, 0.05, (len(m.vertices), 1)))
    ours, edges = dihedral_angles(v, m.faces)
    ref = trimesh.Trimesh(v, m.faces, process=False)
    np.testing.assert_allclose(np.sort(ours), np.sort(np.degrees(ref.face_adjacency_angles)), atol=1e-9)
    assert len(edges) == len(ref.face_adjacency)
    assert creased_edges(v, v, m.faces).tolist() == [0]
    spike = v.copy()
    spike[0] *= 1.6  # a sharp tip: the edges around vertex 0 and its ring fold
    n = creased_edges(np.stack([v, spike]), v, m.faces)
    assert n[0] == 0 and n[1] >= 5
    # restricted to a region away from the spike: nothing
    far = np.where(np.linalg.norm(m.vertices - m.vertices[0], axis=1) > 1.0)[0]
    assert creased_edges(spike, v, m.faces, region=far).tolist() == [0]

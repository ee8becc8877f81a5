"""Section-5 metrics and Procrustes alignment (complete/metrics.py) on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from d3dface.evaluation.metrics import (
    DiversityMetrics,
    align_to,
    average_sample_distance,
    closest_sample_error,
    diversity_metrics,
    procrustes,
    sample_distance_matrix,
)

V = 60


def _head(seed=0):
    return np.random.default_rng(seed).normal(scale=0.05, size=(V, 3)) + np.array([0.0, 1.5, 0.0])


def _occluded():
    occ = np.zeros(V, bool)
    occ[:20] = True
    return occ


def test_translation_on_occluded_vertices_only_gives_asd_v_zero_and_asd_o_the_distance_in_mm():
    base, occ = _head(), _occluded()
    shift = np.array([0.003, -0.004, 0.0])  # 5 mm
    other = base.copy()
    other[occ] += shift
    samples = np.stack([base, other])
    for reduction in ("mean", "rms"):
        m = diversity_metrics(samples, occ, reduction=reduction)
        assert m.asd_v == 0.0
        assert m.asd_o == pytest.approx(5.0, rel=1e-9)
        assert m.ratio == float("inf")
        assert m.num_samples == 2 and m.closest == -1 and np.isnan(m.cse)
    d = m.as_dict()
    assert d["asd_o_mm"] == pytest.approx(5.0) and d["asd_v_mm"] == 0.0 and set(d) >= {"cse_mm", "asd_ratio"}


def test_asd_uses_the_nearest_other_sample_and_averages_over_samples():
    base, occ = _head(1), _occluded()
    # three samples on the occluded vertices at offsets 0, 2 mm and 7 mm along x
    offsets = [0.0, 0.002, 0.007]
    samples = np.stack([base + np.where(occ[:, None], [o, 0, 0], 0.0) for o in offsets])
    # nearest others: 0 -> 2 mm, 1 -> 2 mm, 2 -> 5 mm; mean 3 mm
    assert average_sample_distance(samples, occ) == pytest.approx(3.0)
    assert average_sample_distance(samples, ~occ) == 0.0
    m = diversity_metrics(samples, np.flatnonzero(occ))  # an index array works as well as a mask
    assert m.asd_o == pytest.approx(3.0)
    D = sample_distance_matrix(samples, occ)
    np.testing.assert_allclose(D, [[0, 2, 7], [2, 0, 5], [7, 5, 0]], atol=1e-9)


def test_asd_is_nearest_on_each_vertex_set_separately():
    base, occ = _head(2), _occluded()
    a = base.copy()
    b = base.copy()
    b[~occ] += [0.001, 0, 0]  # b: 1 mm away on the visible vertices
    c = base.copy()
    c[occ] += [0, 0.004, 0]  # c: 4 mm away on the occluded vertices
    m = diversity_metrics(np.stack([a, b, c]), occ)
    # visible: a-b 1, a-c 0, b-c 1 -> nearest 0, 1, 0 -> 1/3 mm
    assert m.asd_v == pytest.approx(1.0 / 3.0)
    # occluded: a-b 0, a-c 4, b-c 4 -> nearest 0, 0, 4 -> 4/3 mm
    assert m.asd_o == pytest.approx(4.0 / 3.0)
    assert m.ratio == pytest.approx(4.0)


def test_cse_picks_the_closest_sample_in_mm():
    gt, occ = _head(3), _occluded()
    region = np.zeros(V, bool)
    region[10:50] = True
    samples = np.stack([gt + [0.004, 0, 0], gt + [0, 0.001, 0], gt + [0, 0, -0.0025]])
    cse, i = closest_sample_error(samples, gt, region)
    assert (cse, i) == (pytest.approx(1.0), 1)
    m = diversity_metrics(samples, occ, gt=gt, region=region)
    assert m.cse == pytest.approx(1.0) and m.closest == 1


def test_cse_on_a_vertex_set_mean_versus_rms():
    gt = _head(4)
    sample = gt.copy()
    sample[0] += [0.003, 0, 0]  # 3 mm on one vertex, 0 on the other three in the set
    sample[1] += [0, 0.004, 0]  # outside the set
    vertices = np.array([0, 2, 3, 4])
    assert closest_sample_error(sample[None], gt, vertices, "mean")[0] == pytest.approx(3.0 / 4.0)
    assert closest_sample_error(sample[None], gt, vertices, "rms")[0] == pytest.approx(3.0 / 2.0)
    assert closest_sample_error(sample[None], gt, None, "mean")[0] == pytest.approx(7.0 / V)


def test_torch_inputs_give_the_same_numbers():
    gt, occ = _head(5), _occluded()
    rng = np.random.default_rng(5)
    samples = gt + rng.normal(scale=0.002, size=(4, V, 3))
    a = diversity_metrics(samples, occ, gt=gt).as_dict()
    b = diversity_metrics(torch.tensor(samples, dtype=torch.float64), torch.tensor(occ), gt=torch.tensor(gt)).as_dict()
    assert a == pytest.approx(b)


def _random_similarity(seed, scale=True):
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    t = rng.normal(scale=0.1, size=3)
    s = float(rng.uniform(0.7, 1.4)) if scale else 1.0
    return R, t, s


@pytest.mark.parametrize("scale", (False, True))
def test_procrustes_recovers_a_known_transform_exactly(scale):
    x = _head(6)
    R, t, s = _random_similarity(6, scale)
    y = s * x @ R.T + t
    T = procrustes(x, y, scale=scale)
    np.testing.assert_allclose(T.rotation, R, atol=1e-12)
    np.testing.assert_allclose(T.translation, t, atol=1e-12)
    assert float(T.scale) == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(T.apply(x), y, atol=1e-12)
    assert np.linalg.det(T.rotation) == pytest.approx(1.0)


def test_procrustes_weighted_subset_ignores_other_vertices():
    x = _head(7)
    R, t, s = _random_similarity(7)
    y = s * x @ R.T + t
    subset = np.zeros(V, bool)
    subset[:25] = True
    y_bad = y.copy()
    y_bad[~subset] += np.random.default_rng(7).normal(scale=0.05, size=((~subset).sum(), 3))  # garbage off the subset
    T = procrustes(x, y_bad, weights=subset, scale=True)
    np.testing.assert_allclose(T.rotation, R, atol=1e-12)
    np.testing.assert_allclose(T.translation, t, atol=1e-12)
    assert float(T.scale) == pytest.approx(s, rel=1e-12)
    np.testing.assert_allclose(align_to(x, y_bad, np.flatnonzero(subset), scale=True)[subset], y[subset], atol=1e-12)


def test_procrustes_never_returns_a_reflection():
    x = _head(8)
    y = x * np.array([-1.0, 1.0, 1.0])  # a mirror image: the best proper rotation is not a reflection
    T = procrustes(x, y)
    assert np.linalg.det(T.rotation) == pytest.approx(1.0)


def test_procrustes_torch_batched_matches_numpy():
    x = _head(9)
    ys, Ts = [], []
    for seed in range(3):
        R, t, s = _random_similarity(seed)
        ys.append(s * x @ R.T + t)
        Ts.append((R, t, s))
    xb = torch.tensor(np.stack([x] * 3))
    yb = torch.tensor(np.stack(ys))
    T = procrustes(xb, yb, scale=True)
    assert isinstance(T.rotation, torch.Tensor) and T.rotation.shape == (3, 3, 3)
    for b, (R, t, s) in enumerate(Ts):
        np.testing.assert_allclose(T.rotation[b].numpy(), R, atol=1e-12)
        np.testing.assert_allclose(T.translation[b].numpy(), t, atol=1e-12)
        assert T.scale[b].item() == pytest.approx(s)
    torch.testing.assert_close(T.apply(xb), yb)


def test_alignment_removes_a_rigid_motion_before_the_errors():
    gt, occ = _head(10), _occluded()
    sample = gt.copy()
    sample[occ] += [0.0, 0.0, 0.002]  # 2 mm only where hidden
    R, t, _ = _random_similarity(10, scale=False)
    moved = sample @ R.T + t  # then a whole-head rigid motion
    unaligned = diversity_metrics(np.stack([moved, sample]), occ, gt=gt)
    assert unaligned.cse == pytest.approx(2.0 * occ.mean())  # the unmoved copy is the closest
    for align in ("rigid", "similarity"):
        m = diversity_metrics(np.stack([moved, sample]), occ, gt=gt, align=align)
        # aligned on the visible vertices (where both equal gt): both samples coincide with `sample`
        assert m.cse == pytest.approx(2.0 * occ.mean(), abs=1e-9)
        assert m.asd_v == pytest.approx(0.0, abs=1e-9) and m.asd_o == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        diversity_metrics(np.stack([moved, sample]), occ, align="rigid")  # no ground truth


def test_units_metres_in_millimetres_out():
    gt, occ = _head(11), _occluded()
    samples = np.stack([gt + [0.001, 0, 0], gt - [0.001, 0, 0]])  # 1 mm each side of gt, 2 mm apart
    m = diversity_metrics(samples, occ, gt=gt)
    assert isinstance(m, DiversityMetrics)
    assert m.cse == pytest.approx(1.0)
    assert m.asd_v == pytest.approx(2.0) and m.asd_o == pytest.approx(2.0) and m.ratio == pytest.approx(1.0)

"""evaluation/plausibility.py: a completion equal to the fit passes; one whose lips are pushed
through each other fails on the lips, one with a forehead triangle turned over on flipped
triangles only."""

from __future__ import annotations

import numpy as np

from d3dface.evaluation.plausibility import sample_health
from d3dface.head_model import load_head_model


def test_health_counts_what_a_sample_adds_to_its_fit():
    m = load_head_model()
    fit = m.v_template.astype(np.float64)
    lips = np.asarray(m.regions["lips"])
    crossed = fit.copy()
    upper = lips[fit[lips, 1] > np.median(fit[lips, 1])]
    crossed[upper, 1] -= 0.012  # the upper lip 12 mm down, through the lower one
    crossed[upper, 2] += 0.002
    turned = fit.copy()
    tri = m.faces[np.flatnonzero(np.isin(m.faces, m.regions["forehead"]).all(1))[0]]
    n = np.cross(fit[tri[1]] - fit[tri[0]], fit[tri[2]] - fit[tri[0]])
    turned[tri[0]] -= 3 * (fit[tri[0]] - fit[tri[[1, 2]]].mean(0))  # across the opposite edge: the triangle turns over
    assert np.dot(np.cross(turned[tri[1]] - turned[tri[0]], turned[tri[2]] - turned[tri[0]]), n) < 0
    h = sample_health(np.stack([fit, crossed, turned]), fit, m)
    same, lip, flip = h["samples"]
    assert same == h["fit"]
    assert lip["lip_pairs"] > h["fit"]["lip_pairs"] + 10
    assert flip["flipped"] >= 1 and flip["lip_pairs"] == h["fit"]["lip_pairs"]
    assert h["valid"] == 1 and h["worst"]["lip_pairs"] == lip["lip_pairs"]

"""The open model's eyes (head_model/open_model/eyes.py): eyeballs seated behind the lids, and
eyeBlink shapes that close the lids over them without crossing them. Checked on the shipped
model with references written here: trimesh's signed distance to the eyeball mesh, the exact
triangle-pair test, rays cast with trimesh from the front, and scipy's rotations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh
from scipy.spatial.transform import Rotation

from d3dface.evaluation.expression_checks import random_identities
from d3dface.head_model import HeadModel
from d3dface.head_model.load import DEFAULT_MODEL_FILE
from d3dface.head_model.mesh_quality import degenerate_triangles, flipped_triangles
from d3dface.head_model.open_model.build import _landmarks
from d3dface.head_model.open_model.eyes import EyeballProfile, _harmonic, _rings_from, _rotate_x, closing_blink
from d3dface.head_model.self_intersection import intersecting_triangle_pairs

MM = 1e-3
SIDES = (("left", "eyeBlink_L"), ("right", "eyeBlink_R"))
WEIGHTS = (0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def model() -> HeadModel:
    return HeadModel.load(DEFAULT_MODEL_FILE)


def _faces_within(F: np.ndarray, ids) -> np.ndarray:
    inside = np.zeros(F.max() + 1, bool)
    inside[np.asarray(ids)] = True
    return np.flatnonzero(inside[F].all(1))


def _lid_faces(model, side) -> np.ndarray:
    """Triangles touching the lid region, with no corner on the eyeball or inside its mesh on the
    template (FLAME's socket skin lies behind the eyeball by design)."""
    F = model.faces
    t = model.v_template.astype(np.float64)
    eye = model.regions[f"{side}_eyeball"]
    mesh = trimesh.Trimesh(t, F[_faces_within(F, eye)], process=False)
    behind = trimesh.proximity.signed_distance(mesh, t) > 0
    behind[eye] = True
    return np.flatnonzero(np.isin(F, model.regions[f"{side}_eye_region"]).any(1) & ~behind[F].any(1))


def _blink(model, key) -> np.ndarray:
    return model.exprdirs[:, :, model.expr_names.index(key)].astype(np.float64)


def _front_hidden(v: np.ndarray, F: np.ndarray, eyeball) -> float:
    """Share of the eyeball's vertices seen from straight ahead (the first hit of a ray down -z
    is an eyeball triangle) that skin hides; visible = within 7 mm of the eyeball's front."""
    eyeball = np.asarray(eyeball)
    front = eyeball[v[eyeball, 2] > v[eyeball, 2].max() - 7 * MM]
    mesh = trimesh.Trimesh(v, F, process=False)
    origins = v[front] + [0.0, 0.0, 0.2]
    tri, ray = mesh.ray.intersects_id(origins, np.tile([0.0, 0.0, -1.0], (len(front), 1)), multiple_hits=False)[:2]
    is_eye = np.zeros(len(v), bool)
    is_eye[eyeball] = True
    hidden = np.zeros(len(front), bool)
    hidden[ray] = ~is_eye[F[tri]].all(1)
    return float(hidden.mean())


def test_eyeballs_sit_behind_the_lids(model):
    """Every lid vertex lies outside its eyeball's mesh, by half a millimetre or more, on the
    template and on random identities (coefficients ~ N(0, 1))."""
    F = model.faces
    for v in [model.v_template.astype(np.float64), *random_identities(model, 4, 1.0, seed=3)]:
        for side, _ in SIDES:
            eye = trimesh.Trimesh(v, F[_faces_within(F, model.regions[f"{side}_eyeball"])], process=False)
            assert eye.is_watertight
            sd = trimesh.proximity.signed_distance(eye, v[model.regions[f"{side}_eye_region"]])  # > 0 inside
            assert sd.max() < -0.3 * MM, (side, sd.max())
    t = model.v_template.astype(np.float64)
    for side, _ in SIDES:
        eye = trimesh.Trimesh(t, F[_faces_within(F, model.regions[f"{side}_eyeball"])], process=False)
        sd = trimesh.proximity.signed_distance(eye, t[model.regions[f"{side}_eye_region"]])
        print(f"\n{side}: lids clear the eyeball by {-sd.max() / MM:.2f} mm or more")
        assert sd.max() < -0.5 * MM


@pytest.mark.parametrize("side,key", SIDES)
def test_blink_closes_the_lids_without_crossing_the_eyeball(model, side, key):
    """At every weight the lid triangles stay clear of the eyeball's; at weight 1 the lids hide
    nearly all of the eyeball's front that they leave open at rest; no triangle folds over."""
    F = model.faces
    t = model.v_template.astype(np.float64)
    d = _blink(model, key)
    lid_f = _lid_faces(model, side)
    eye_f = _faces_within(F, model.regions[f"{side}_eyeball"])
    for w in (0.0, *WEIGHTS):
        v = t + w * d
        assert len(intersecting_triangle_pairs(v, F, lid_f, eye_f)) == 0, w
        assert len(flipped_triangles(t, v, F)) == 0 and len(degenerate_triangles(v, F)) == 0, w
    eyeball = model.regions[f"{side}_eyeball"]
    rest, closed = _front_hidden(t, F, eyeball), _front_hidden(t + d, F, eyeball)
    print(f"\n{key}: front of the eyeball hidden {rest:.0%} at rest, {closed:.0%} closed")
    assert rest < 0.6 and closed >= 0.95


def test_blink_keeps_clear_of_the_eyeball_on_other_identities(model):
    """The blink is one shape for all heads: on random identities it still closes most of the
    eye and adds no lid triangle crossing an eyeball triangle, halfway or closed, to those the
    head has at rest (where identity modes bend the socket's rim, a few can cross at rest)."""
    F = model.faces
    for v in random_identities(model, 4, 1.0, seed=11):
        for side, key in SIDES:
            d = _blink(model, key)
            lid_f = _lid_faces(model, side)
            eye_f = _faces_within(F, model.regions[f"{side}_eyeball"])
            rest = {tuple(p) for p in intersecting_triangle_pairs(v, F, lid_f, eye_f)}
            for w in (0.5, 1.0):
                added = {tuple(p) for p in intersecting_triangle_pairs(v + w * d, F, lid_f, eye_f)} - rest
                assert not added, (side, w, sorted(added))
            assert _front_hidden(v + d, F, model.regions[f"{side}_eyeball"]) >= 0.85


@pytest.mark.parametrize("side,key", SIDES)
def test_blink_is_continuous_across_the_eyeballs_surface(model, side, key):
    """The socket skin right at the eyeball's surface: moved 0.02 mm inside it and 0.02 mm
    outside (what a rebuild on another CPU can do), the blink built from either template
    differs there by well under a millimetre, not by the lid's whole motion (a vertex once
    switched between still and turning, 4.6 mm, and failed the rebuild check on CI)."""
    F, t = model.faces, model.v_template.astype(np.float64)
    V = len(t)
    eye, lid = model.regions[f"{side}_eyeball"], model.regions[f"{side}_eye_region"]
    prof = EyeballProfile.of(t[eye])
    clear = prof.clearance(t)
    cand = np.flatnonzero((_rings_from(F, V, lid, 2) < 2) & ~np.isin(np.arange(V), np.r_[lid, eye]))
    v = cand[np.abs(clear[cand]).argmin()]
    assert abs(clear[v]) < 0.1 * MM, clear[v]  # such a vertex exists on this mesh
    outward = (t[v] - prof.centre) / np.linalg.norm(t[v] - prof.centre)
    landmarks = _landmarks(model, t)
    blinks = []
    for target in (-0.02 * MM, 0.02 * MM):
        moved = t.copy()
        moved[v] += (target - clear[v]) * outward
        assert np.sign(prof.clearance(moved[v][None])[0]) == np.sign(target)
        blinks.append(closing_blink(moved, F, _blink(model, key), eye, lid, landmarks))
    d = np.linalg.norm(blinks[0] - blinks[1], axis=1)
    print(f"\n{key}: v{v} at {clear[v] / MM:+.3f} mm; blink moves it {np.linalg.norm(blinks[1][v]) / MM:.2f} mm "
          f"outside, differs by {d[v] / MM:.3f} mm there and {d.max() / MM:.3f} mm at most")
    assert d[v] < 0.3 * MM and d.max() < 1.0 * MM


def test_turns_about_the_x_axis_match_scipy():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(50, 3))
    centre = np.array([0.03, 0.05, 0.06])
    angle = rng.uniform(-40, 40, 50)
    ours = _rotate_x(p + centre, centre, angle)
    # positive turns lift the front (+z) up (+y): a rotation by -angle about +x, right-handed
    ref = np.stack([Rotation.from_euler("x", -a, degrees=True).apply(q) for a, q in zip(angle, p)]) + centre
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_harmonic_interpolation_on_a_path_is_linear():
    """On a path graph with its ends fixed the harmonic interpolation is the straight line; the
    fixed vertices keep their values."""
    n = 11
    A = sp.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tocsr()
    values = np.zeros((n, 2))
    values[0] = [2.0, -1.0]
    values[-1] = [4.0, 3.0]
    free = np.ones(n, bool)
    free[[0, -1]] = False
    out = _harmonic(A, free, values)
    s = np.linspace(0, 1, n)[:, None]
    np.testing.assert_allclose(out, (1 - s) * values[0] + s * values[-1], atol=1e-12)

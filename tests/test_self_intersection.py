"""Self-intersection checks: triangle/triangle crossings, sphere fits, eyelid penetration.

Expected answers come from independent constructions (hand-placed triangles, spheres whose
overlap is known, a strip folded through itself, a scalar interval-overlap reference test),
never from the module's own output.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import trimesh

from d3dface.errors import ModelFileError
from d3dface.head_model.self_intersection import (
    eyelid_penetration,
    fit_sphere,
    intersecting_triangle_pairs,
    points_inside_sphere,
)

MM = 1e-3


def _pairs(vertices, faces, *args):
    out = intersecting_triangle_pairs(np.asarray(vertices, float), np.asarray(faces), *args)
    assert out.dtype == np.int64 and out.ndim == 2 and out.shape[1] == 2
    return out


# --------------------------------------------------------------------------- two triangles

FLOOR = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], float) * MM           # in the plane z = 0
# a vertical-ish triangle whose lower part passes through the floor's interior
SPIKE = np.array([[2, 2, -3], [4, 2, 5], [2, 4, 5]], float) * MM


def _two(t1, t2):
    return np.concatenate([t1, t2]), np.array([[0, 1, 2], [3, 4, 5]])


def test_piercing_triangles_are_one_pair():
    v, f = _two(FLOOR, SPIKE)
    np.testing.assert_array_equal(_pairs(v, f), [[0, 1]])
    # the order of the faces does not matter
    v, f = _two(SPIKE, FLOOR)
    np.testing.assert_array_equal(_pairs(v, f), [[0, 1]])


def test_separated_by_one_mm_is_no_pair():
    lifted = SPIKE + [0, 0, -SPIKE[:, 2].min() + 1 * MM]                      # lowest point 1 mm above
    assert len(_pairs(*_two(FLOOR, lifted))) == 0
    # slide the spike past the hypotenuse x + y = 10 mm so its crossing with z = 0 ends 1 mm outside
    cross = SPIKE[[0]] + (SPIKE[[1, 2]] - SPIKE[[0]]) * (3 / 8)             # where its edges meet z = 0
    reach = (cross[:, 0] + cross[:, 1]).max()
    shift = (10 * MM - reach) / 2 + 1 * MM / np.sqrt(2)
    beside = SPIKE + [shift, shift, 0]
    assert len(_pairs(*_two(FLOOR, beside))) == 0
    # ... and just inside (1 mm the other way) it crosses again
    inside = SPIKE + [shift - 2 * MM / np.sqrt(2), shift - 2 * MM / np.sqrt(2), 0]
    assert len(_pairs(*_two(FLOOR, inside))) == 1


def test_mirror_pair_crossing_edge_on_edge_is_one_pair():
    # mirror images across x = 0: the crossing segment ends on edges of both triangles, so no
    # edge pierces either triangle's interior, yet the two sheets cross like an X
    t1 = np.array([[-6, 0, 0], [6, 6, 3], [6, -6, 3]], float) * MM
    t2 = t1 * [-1, 1, 1]
    np.testing.assert_array_equal(_pairs(*_two(t1, t2)), [[0, 1]])
    # no longer mirror images, still crossing
    assert len(_pairs(*_two(t1 + [0, 0, 1 * MM], t2))) == 1
    # one lifted 1 mm clear of the other (both span z in [0, 3] mm)
    assert len(_pairs(*_two(t1 + [0, 0, 4 * MM], t2))) == 0


def _rot_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("angle", [0, 1, 10, 45, 90, 135, 179, 180, 181, 270, 300, 359])
def test_triangles_sharing_an_edge_are_never_a_pair(angle):
    # hinge along the x axis; the second triangle is the first mirrored, then rotated about the hinge
    a, b = np.array([0, 0, 0.0]), np.array([10 * MM, 0, 0])
    c = np.array([4 * MM, 6 * MM, 0])
    d = _rot_x(angle) @ np.array([6 * MM, -6 * MM, 0])
    shared = np.stack([a, b, c, d])
    assert len(_pairs(shared, [[0, 1, 2], [1, 0, 3]])) == 0
    # the same geometry with the hinge vertices duplicated (no shared indices): still only contact
    dup = np.stack([a, b, c, b, a, d])
    assert len(_pairs(dup, [[0, 1, 2], [3, 4, 5]])) == 0


def test_coplanar_and_grazing_contact_is_not_a_pair():
    # coplanar, touching along an edge
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 0, 0], [0, 10, 0], [10, 10, 0]], float) * MM
    assert len(_pairs(v, [[0, 1, 2], [3, 4, 5]])) == 0
    # coplanar, the tip of one on the edge of the other
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [5, 5, 0], [12, 6, 0], [6, 12, 0]], float) * MM
    assert len(_pairs(v, [[0, 1, 2], [3, 4, 5]])) == 0
    # coplanar and overlapping: no crossing of surfaces either (treated as contact)
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [2, 2, 0], [12, 2, 0], [2, 12, 0]], float) * MM
    assert len(_pairs(v, [[0, 1, 2], [3, 4, 5]])) == 0
    # a vertex resting on the other's face (T contact), the rest above it
    v = np.concatenate([FLOOR, np.array([[3, 3, 0], [6, 3, 5], [3, 6, 5]], float) * MM])
    assert len(_pairs(v, [[0, 1, 2], [3, 4, 5]])) == 0
    # an edge lying in the other's face, the triangle standing up from it
    v = np.concatenate([FLOOR, np.array([[2, 2, 0], [5, 2, 0], [3, 3, 5]], float) * MM])
    assert len(_pairs(v, [[0, 1, 2], [3, 4, 5]])) == 0


# --------------------------------------------------------------------------- a scalar reference

def _reference_crossing(t1: np.ndarray, t2: np.ndarray) -> bool:
    """Interval-overlap test (Möller 1997): both triangles straddle the other's plane and their
    cuts along the planes' common line overlap. Scalar, for generic (non-degenerate) input."""
    def plane(t):
        n = np.cross(t[1] - t[0], t[2] - t[0])
        return n, n @ t[0]

    def cut(t, n, d):
        s = t @ n - d
        if (s > 0).all() or (s < 0).all():
            return None
        pts = []
        for i in range(3):
            j = (i + 1) % 3
            if s[i] * s[j] < 0:
                pts.append(t[i] + (t[j] - t[i]) * (s[i] / (s[i] - s[j])))
        return np.array(pts)

    n1, d1 = plane(t1)
    n2, d2 = plane(t2)
    c1, c2 = cut(t1, n2, d2), cut(t2, n1, d1)
    if c1 is None or c2 is None or len(c1) < 2 or len(c2) < 2:
        return False
    line = np.cross(n1, n2)
    i1, i2 = c1 @ line, c2 @ line
    lo, hi = max(i1.min(), i2.min()), min(i1.max(), i2.max())
    return hi > lo


def test_random_triangle_soup_matches_a_scalar_reference():
    rng = np.random.default_rng(7)
    n = 160
    centres = rng.uniform(0, 0.05, (n, 1, 3))
    tris = centres + rng.normal(0, 0.006, (n, 3, 3))
    v, f = tris.reshape(-1, 3), np.arange(3 * n).reshape(n, 3)
    expected = {(i, j) for i in range(n) for j in range(i + 1, n) if _reference_crossing(tris[i], tris[j])}
    assert len(expected) > 20                                   # the soup is dense enough to test
    got = _pairs(v, f)
    assert set(map(tuple, got.tolist())) == expected
    assert (got[:, 0] < got[:, 1]).all()
    # restricted to two sets: exactly the crossings with one triangle in each set
    a, b = np.arange(0, 100), np.arange(60, n)                  # overlapping sets
    got_ab = _pairs(v, f, a, b)
    assert np.isin(got_ab[:, 0], a).all() and np.isin(got_ab[:, 1], b).all()
    as_sets = {frozenset(p) for p in got_ab.tolist()}
    assert len(as_sets) == len(got_ab)                          # each unordered pair once
    want = {frozenset((i, j)) for i, j in expected if (i in a and j in b) or (j in a and i in b)}
    assert as_sets == want
    # only faces_a: pairs within that set
    within = _pairs(v, f, a)
    assert set(map(tuple, within.tolist())) == {(i, j) for i, j in expected if i < 100 and j < 100}


# --------------------------------------------------------------------------- closed meshes

def _sphere(radius, centre=(0, 0, 0), subdivisions=3):
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(s.vertices) + centre, np.asarray(s.faces)


def test_closed_sphere_has_no_pairs():
    v, f = _sphere(0.012)
    assert len(_pairs(v, f)) == 0


def test_two_overlapping_spheres_cross_only_each_other():
    r = 0.012
    for gap, crossing in ((1.5, True), (2.5, False)):
        v1, f1 = _sphere(r)
        v2, f2 = _sphere(r, centre=(gap * r, 0, 0))
        v, f = np.concatenate([v1, v2]), np.concatenate([f1, f2 + len(v1)])
        n1 = len(f1)
        got = _pairs(v, f)
        if not crossing:
            assert len(got) == 0
            continue
        assert len(got) > 0
        assert ((got[:, 0] < n1) != (got[:, 1] < n1)).all()      # one triangle from each sphere
        # every reported triangle touches the intersection circle, in the plane x = gap r / 2
        tri = v[f[got.ravel()]]
        assert (tri[..., 0].min(1) <= gap * r / 2).all() and (tri[..., 0].max(1) >= gap * r / 2).all()
        # the circle is closed: the crossings go all the way round it (every 30 degrees sector)
        mid = tri.mean(1)
        sectors = np.floor((np.degrees(np.arctan2(mid[:, 2], mid[:, 1])) + 180) / 30) % 12
        assert len(np.unique(sectors)) == 12
        # restricted to one sphere against the other: the same pairs
        ab = _pairs(v, f, np.arange(n1), np.arange(n1, len(f)))
        np.testing.assert_array_equal(ab, got)


def _strip(profile_xz, ys):
    """Extrude a polyline in the xz plane along y into a triangle strip grid."""
    p = np.asarray(profile_xz, float)
    verts = np.array([[x, y, z] for x, z in p for y in ys])
    ny = len(ys)
    faces = []
    for i in range(len(p) - 1):
        for k in range(ny - 1):
            a, b, c, d = i * ny + k, i * ny + k + 1, (i + 1) * ny + k, (i + 1) * ny + k + 1
            faces += [[a, c, b], [b, c, d]]
    return verts, np.array(faces)


def test_strip_folded_through_itself_is_found():
    s = 0.01                                                   # 1 cm units
    flat = [(x, 0.0) for x in np.arange(0, 3.01, 0.5)]          # near part, z = 0
    up = [(3.0, 0.5), (3.0, 1.0)]                              # bends up at the far end ...
    down = [(3 - 0.3 * k, 1 - 0.4 * k) for k in range(1, 6)]   # ... and back down through z = 0 at x = 2.25
    profile = np.array(flat + up + down) * s
    ys = np.linspace(0, 1, 5) * s
    v, f = _strip(profile, ys)
    got = _pairs(v, f)
    assert len(got) > 0
    cols = len(ys) - 1
    seg = np.arange(len(f)) // (2 * cols)                      # which profile segment a face is on
    col = (np.arange(len(f)) % (2 * cols)) // 2
    crossing_flat = 4                                           # flat segment x in [2.0, 2.5]
    crossing_down = len(flat) - 1 + len(up) + 2                # down segment from z = 0.2 to -0.2
    assert set(map(tuple, np.sort(seg[got], axis=1).tolist())) == {(crossing_flat, crossing_down)}
    assert set(col[got[:, 0]].tolist()) == set(range(cols))     # along the whole width of the strip
    # the same strip, unfolded (the far end continues flat), does not cross itself
    v2, f2 = _strip(np.array(flat + [(3.5, 0), (4.0, 0)]) * s, ys)
    assert len(_pairs(v2, f2)) == 0


# --------------------------------------------------------------------------- spheres, eyelids

def _on_sphere(rng, n, centre, radius, noise=0.0, cap_deg=180.0):
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    if cap_deg < 180:
        d = d[np.degrees(np.arccos(d[:, 2])) <= cap_deg]
    return centre + d * (radius + rng.normal(0, noise, len(d))[:, None])


def test_fit_sphere_recovers_centre_and_radius():
    rng = np.random.default_rng(3)
    centre, radius = np.array([0.03, 0.055, 0.06]), 0.0125
    c, r = fit_sphere(_on_sphere(rng, 2000, centre, radius, noise=2e-5))
    assert np.abs(c - centre).max() < 1e-4 and abs(r - radius) < 1e-4
    # a cap (like the visible front of an eye) is enough too
    c, r = fit_sphere(_on_sphere(rng, 4000, centre, radius, noise=1e-5, cap_deg=70))
    assert np.abs(c - centre).max() < 1e-4 and abs(r - radius) < 1e-4
    assert isinstance(r, float) and c.shape == (3,)


def test_points_inside_sphere_depths():
    centre = np.array([1.0, 2.0, 3.0])
    pts = centre + np.array([[0, 0, 0], [0.004, 0, 0], [0, -0.01, 0], [0, 0, 0.02]])
    np.testing.assert_allclose(points_inside_sphere(pts, centre, 0.01), [0.01, 0.006, 0.0, 0.0], atol=1e-12)


def test_eyelid_penetration_returns_the_deepest_lid_point():
    rng = np.random.default_rng(5)
    centre, radius = np.array([-0.03, 0.05, 0.06]), 0.0126
    eye = _on_sphere(rng, 600, centre, radius, noise=5e-6)
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    depths = np.array([0.2, 1.1, 0.7, -2.0, -0.5, 0.0]) * MM    # negative: outside the eyeball
    lid = centre + dirs * (radius - depths)[:, None]
    v = np.concatenate([eye, lid])
    eye_idx, lid_idx = np.arange(len(eye)), np.arange(len(eye), len(v))
    assert eyelid_penetration(v, eye_idx, lid_idx) == pytest.approx(1.1 * MM, abs=2e-5)
    outside = lid_idx[depths < 0]
    assert eyelid_penetration(v, eye_idx, outside) == 0.0


# --------------------------------------------------------------------------- the FLAME template

@pytest.fixture(scope="module")
def head():
    from d3dface.head_model.load import load_head_model
    try:
        return load_head_model()
    except ModelFileError as exc:
        pytest.skip(str(exc))


def _faces_touching(faces, vertex_idx, num_vertices, rings=0):
    mask = np.zeros(num_vertices, bool)
    mask[vertex_idx] = True
    sel = mask[faces].any(1)
    for _ in range(rings):
        mask[faces[sel].ravel()] = True
        sel = mask[faces].any(1)
    return np.where(sel)[0]


def test_template_pairs_and_timing(head):
    v, f = head.v_template, head.faces
    assert f.shape == (9976, 3)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        whole = intersecting_triangle_pairs(v, f)
        times.append(time.perf_counter() - t0)
    lips_faces = _faces_touching(f, head.regions["lips"], len(v), rings=1)
    t0 = time.perf_counter()
    lips = intersecting_triangle_pairs(v, f, lips_faces)
    t_lips = time.perf_counter() - t0
    eyeballs = _faces_touching(f, np.concatenate([head.regions["left_eyeball"], head.regions["right_eyeball"]]), len(v))
    with_eyeball = np.isin(whole, eyeballs).any(1)
    print(f"\nneutral template: {len(whole)} intersecting pairs in the whole mesh "
          f"({with_eyeball.sum()} involve an eyeball triangle) in {min(times):.3f} s; "
          f"{len(lips)} within the {len(lips_faces)} lips+surrounding faces in {t_lips:.3f} s")
    assert min(times) < 2.0
    # a neutral face's lips do not cross each other
    assert len(lips) == 0


def test_pushing_the_lower_lip_up_crosses_the_upper_lip(head):
    v0, f = head.v_template.astype(np.float64), head.faces
    lips = head.regions["lips"]
    lower = lips[v0[lips, 1] < np.median(v0[lips, 1])]
    v = v0.copy()
    v[lower, 1] += 4 * MM                                     # lower lip 4 mm up, through the upper one
    lips_faces = _faces_touching(f, lips, len(v), rings=1)
    got = intersecting_triangle_pairs(v, f, lips_faces)
    is_lower = np.zeros(len(v), bool)
    is_lower[lower] = True
    is_lips = np.zeros(len(v), bool)
    is_lips[lips] = True
    lower_face = is_lower[f].all(1)
    upper_face = is_lips[f].all(1) & ~is_lower[f].any(1)
    lower_upper = (lower_face[got[:, 0]] & upper_face[got[:, 1]]) | (lower_face[got[:, 1]] & upper_face[got[:, 0]])
    assert lower_upper.any()


def _eyelid_depths(head):
    v = head.v_template
    return {side: eyelid_penetration(v, head.regions[f"{side}_eyeball"], head.regions[f"{side}_eye_region"])
            for side in ("left", "right")}


def test_template_eyelid_depth_agrees_with_the_eyeball_mesh(head):
    """The sphere-based depth matches the signed distance to the actual eyeball mesh to within the
    eyeball's deviation from a sphere (the fitted sphere's largest residual), on the template
    with its eyeballs moved 4 mm forward, through the lids."""
    pytest.importorskip("rtree")
    v, f = head.v_template.astype(np.float64), head.faces
    for side in ("left", "right"):
        v[head.regions[f"{side}_eyeball"], 2] += 4 * MM
    depths = {side: eyelid_penetration(v, head.regions[f"{side}_eyeball"], head.regions[f"{side}_eye_region"])
              for side in ("left", "right")}
    for side in ("left", "right"):
        assert depths[side] > 1 * MM
        eb = head.regions[f"{side}_eyeball"]
        inside = np.zeros(len(v), bool)
        inside[eb] = True
        eye = trimesh.Trimesh(v, f[inside[f].all(1)], process=False)
        assert eye.is_watertight
        sd = trimesh.proximity.signed_distance(eye, v[head.regions[f"{side}_eye_region"]])   # > 0 inside
        c, r = fit_sphere(v[eb])
        residual = np.abs(np.linalg.norm(v[eb] - c, axis=1) - r).max()
        print(f"\n{side}: lid depth {depths[side] / MM:.3f} mm (fitted sphere), "
              f"{max(sd.max(), 0) / MM:.3f} mm (eyeball mesh); sphere residual {residual / MM:.3f} mm")
        assert abs(depths[side] - max(sd.max(), 0.0)) <= residual + 1e-6


def test_template_eyelids_are_not_inside_the_eyeballs(head):
    """The open model seats its eyeballs behind the lids (head_model/open_model/eyes.py)."""
    depths = _eyelid_depths(head)
    print(f"\nneutral eyelid penetration: left {depths['left'] / MM:.3f} mm, right {depths['right'] / MM:.3f} mm")
    assert max(depths.values()) == 0.0

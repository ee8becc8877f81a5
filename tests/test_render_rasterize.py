"""The rasteriser against independent point-in-polygon tests and analytic depths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from d3dface.render import RasterSettings, rasterize

H, W = 40, 48


def _pixel_centres():
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float64)  # pixel (r, c) centre at (c, r)


def _inside_reference(tri_xy: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixel centres inside the triangle, by matplotlib's point-in-polygon test."""
    return MplPath(tri_xy).contains_points(_pixel_centres()).reshape(H, W)


def _min_edge_distance(tri_xy: np.ndarray) -> float:
    """Smallest distance of any pixel centre to the triangle's edges (test cases keep it > 1e-3)."""
    p = _pixel_centres()
    best = np.inf
    for a, b in [(0, 1), (1, 2), (2, 0)]:
        A, B = tri_xy[a], tri_xy[b]
        t = np.clip(((p - A) @ (B - A)) / ((B - A) @ (B - A)), 0, 1)
        best = min(best, np.linalg.norm(p - (A + t[:, None] * (B - A)), axis=1).min())
    return best


def _raster(tris_xy, tris_z, cull=False, **kw):
    """Rasterise separate triangles: tris_xy (T, 3, 2) pixels, tris_z (T, 3) depths."""
    tris_xy = np.asarray(tris_xy, dtype=np.float64)
    T = tris_xy.shape[0]
    pix = torch.tensor(tris_xy.reshape(1, T * 3, 2), dtype=torch.float32)
    depth = torch.tensor(np.asarray(tris_z, dtype=np.float64).reshape(1, T * 3), dtype=torch.float32)
    faces = torch.arange(T * 3).view(T, 3)
    return rasterize(pix, depth, faces, (H, W), RasterSettings(cull_backfaces=cull, **kw))


def _area2(tri):
    """Twice the signed area of a pixel-space triangle."""
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    return e1[0] * e2[1] - e1[1] * e2[0]


def _ccw_in_world(tri):
    """Order a pixel-space triangle so it is front-facing (negative signed area in y-down pixels)."""
    tri = np.asarray(tri, dtype=np.float64)
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    return tri if e1[0] * e2[1] - e1[1] * e2[0] < 0 else tri[[0, 2, 1]]


def test_coverage_of_random_triangles_matches_point_in_polygon():
    rng = np.random.default_rng(1)
    checked = 0
    while checked < 12:
        tri = rng.uniform([-8, -8], [W + 8, H + 8], size=(3, 2))  # may stick out of the image
        if _min_edge_distance(tri) < 1e-3 or abs(_area2(tri)) < 4:
            continue
        frags = _raster(tri[None], np.full((1, 3), 2.0))
        got = frags.tri_id[0].numpy() == 0
        np.testing.assert_array_equal(got, _inside_reference(tri))
        checked += 1


def test_tiny_and_offscreen_triangles():
    # a triangle smaller than a pixel that holds one pixel centre, one that holds none, one off screen
    tris = [
        [[9.8, 9.7], [10.4, 9.8], [10.1, 10.5]],
        [[20.2, 20.2], [20.6, 20.3], [20.4, 20.7]],
        [[-30, -30], [-20, -30], [-25, -20]],
    ]
    frags = _raster(tris, np.full((3, 3), 1.0))
    ids = frags.tri_id[0].numpy()
    assert ids[10, 10] == 0 and (ids == 0).sum() == 1
    assert (ids == 1).sum() == 0 and (ids == 2).sum() == 0


def test_nearer_triangle_wins_regardless_of_order_and_ties_go_to_lowest_id():
    big = [[2.3, 3.1], [45.2, 5.4], [20.7, 37.9]]
    for near_first in (True, False):
        z = [[1.0] * 3, [2.0] * 3] if near_first else [[2.0] * 3, [1.0] * 3]
        frags = _raster([big, big], z)
        inside = _inside_reference(np.array(big))
        want = 0 if near_first else 1
        assert (frags.tri_id[0].numpy()[inside] == want).all()
        np.testing.assert_allclose(frags.depth[0].numpy()[inside], 1.0)
    # equal depths: the lower triangle id wins every pixel (deterministic)
    frags = _raster([big, big, big], [[1.5] * 3] * 3)
    assert (frags.tri_id[0].numpy()[_inside_reference(np.array(big))] == 0).all()


def test_interpenetrating_triangles_split_by_depth():
    # two triangles over the same pixels, one tilted in depth: the z-buffer picks per pixel
    quad = [[1.3, 1.2], [46.6, 1.4], [1.1, 38.7]]
    z_flat = [1.0, 1.0, 1.0]
    z_tilt = [0.5, 1.5, 0.5]  # nearer at the left, farther at the right
    frags = _raster([quad, quad], [z_flat, z_tilt])
    inside = _inside_reference(np.array(quad))
    # reference depth of the tilted triangle: 1/z is affine in screen space
    p = _pixel_centres()
    A = np.array(quad)
    M = np.stack([A[1] - A[0], A[2] - A[0]], 1)
    b12 = np.linalg.solve(M, (p - A[0]).T).T
    bary = np.column_stack([1 - b12.sum(1), b12])
    z_ref = (1.0 / (bary @ (1.0 / np.array(z_tilt)))).reshape(H, W)
    ids = frags.tri_id[0].numpy()
    want = np.where(z_ref < 1.0, 1, 0)
    sel = inside & (np.abs(z_ref - 1.0) > 1e-4)
    np.testing.assert_array_equal(ids[sel], want[sel])
    np.testing.assert_allclose(frags.depth[0].numpy()[sel], np.minimum(z_ref, 1.0)[sel], rtol=1e-5)


def test_backface_culling_uses_world_winding():
    tri = _ccw_in_world([[5.2, 5.1], [40.3, 8.2], [12.6, 33.3]])
    front = _raster(tri[None], np.ones((1, 3)), cull=True)
    back = _raster(tri[None, [0, 2, 1]], np.ones((1, 3)), cull=True)
    both = _raster(tri[None, [0, 2, 1]], np.ones((1, 3)), cull=False)
    inside = _inside_reference(tri)
    np.testing.assert_array_equal(front.tri_id[0].numpy() == 0, inside)
    assert (back.tri_id < 0).all()
    np.testing.assert_array_equal(both.tri_id[0].numpy() == 0, inside)


def test_near_plane_and_empty_buffers():
    tri = _ccw_in_world([[5.2, 5.1], [40.3, 8.2], [12.6, 33.3]])
    frags = _raster(tri[None], [[1.0, -1.0, 1.0]])
    assert (frags.tri_id < 0).all() and torch.isinf(frags.depth).all()
    assert frags.tri_id.dtype == torch.int64 and frags.mask.sum() == 0


def test_chunked_large_triangles_equal_unchunked():
    rng = np.random.default_rng(5)
    tris = rng.uniform([-20, -20], [W + 20, H + 20], size=(30, 3, 2))
    z = rng.uniform(1, 3, size=(30, 3))
    one = _raster(tris, z)
    many = _raster(tris, z, max_candidates=500)  # far fewer than one big triangle's box
    torch.testing.assert_close(one.tri_id, many.tri_id)
    torch.testing.assert_close(one.depth, many.depth)


def test_batch_items_are_independent():
    tri_a = np.array([[3.3, 4.1], [30.2, 6.6], [9.9, 30.4]])
    tri_b = np.array([[40.1, 35.3], [10.2, 30.6], [44.9, 2.4]])
    pix = torch.tensor(np.stack([tri_a, tri_b]), dtype=torch.float32)  # B=2, V=3
    depth = torch.ones(2, 3)
    frags = rasterize(pix, depth, torch.tensor([[0, 1, 2]]), (H, W), RasterSettings(cull_backfaces=False))
    np.testing.assert_array_equal(frags.tri_id[0].numpy() == 0, _inside_reference(tri_a))
    np.testing.assert_array_equal(frags.tri_id[1].numpy() == 0, _inside_reference(tri_b))


def test_shared_edge_leaves_no_crack():
    # a quad split along its diagonal: every pixel centre inside the quad is covered once
    # (the diagonal runs exactly through the pixel centres (k, k))
    quad = np.array([[3.5, 3.5], [35.5, 3.5], [35.5, 35.5], [3.5, 35.5]])
    tris = np.stack([quad[[0, 1, 2]], quad[[0, 2, 3]]])
    frags = _raster(tris, np.ones((2, 3)))
    inside = MplPath(quad).contains_points(_pixel_centres()).reshape(H, W)
    np.testing.assert_array_equal(frags.tri_id[0].numpy() >= 0, inside)
    assert all(frags.tri_id[0, k, k] >= 0 for k in range(4, 36))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(7)
    tris = rng.uniform([0, 0], [W, H], size=(40, 3, 2))
    z = rng.uniform(1, 3, size=(40, 3))
    cpu = _raster(tris, z)
    pix = torch.tensor(tris.reshape(1, -1, 2), dtype=torch.float32, device="cuda")
    depth = torch.tensor(z.reshape(1, -1), dtype=torch.float32, device="cuda")
    gpu = rasterize(pix, depth, torch.arange(120, device="cuda").view(40, 3), (H, W), RasterSettings(cull_backfaces=False))
    torch.testing.assert_close(gpu.tri_id.cpu(), cpu.tri_id)

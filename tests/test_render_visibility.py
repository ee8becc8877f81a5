"""Per-vertex visibility against geometry known by construction, and a FLAME smoke test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from d3dface.head_model.lbs import axis_angle_to_matrix
from d3dface.render import PerspectiveCamera, Renderer, default_light, head_camera

F_PIX, CX, CY, H, W = 50.0, 23.5, 23.5, 48, 48


def _camera():
    T = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    return PerspectiveCamera(T([F_PIX, F_PIX]), T([CX, CY]), T([0.0, 0.0, 0.0]), T([0.0, 0.0, 0.0]), (H, W))


def _grid(u0, u1, v0, v1, depth, n, facing_camera=True):
    """An n x n vertex grid spanning pixels [u0, u1] x [v0, v1] at constant depth, triangulated."""
    us, vs = np.meshgrid(np.linspace(u0, u1, n), np.linspace(v0, v1, n))
    pix = np.stack([us.ravel(), vs.ravel()], 1)
    verts = np.column_stack([(pix[:, 0] - CX) * depth / F_PIX, -(pix[:, 1] - CY) * depth / F_PIX, np.full(len(pix), -depth)])
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            # rows go down the image (world -y): (a, d, b) is counter-clockwise seen from +z
            faces += [[a, d, b], [b, d, e]]
    faces = np.array(faces)
    if not facing_camera:
        faces = faces[:, [0, 2, 1]]
    return verts, faces, pix


def _scene(back_facing_camera=True):
    back_v, back_f, back_pix = _grid(2.3, 45.6, 2.2, 45.4, 1.0, 9, facing_camera=back_facing_camera)
    front_v, front_f, front_pix = _grid(14.1, 33.2, 13.7, 32.8, 0.6, 3)
    verts = np.concatenate([back_v, front_v])
    faces = np.concatenate([back_f, front_f + len(back_v)])
    return verts, faces, back_pix, front_pix


def test_vertex_behind_another_surface_is_invisible():
    verts, faces, back_pix, front_pix = _scene()
    r = Renderer(faces)
    vis = r.vertex_visibility(torch.tensor(verts)[None], _camera())[0].numpy()
    front_rect = MplPath(front_pix[[0, 2, 8, 6]])  # corners of the 3x3 front grid
    hidden = front_rect.contains_points(back_pix, radius=-1.0) | front_rect.contains_points(back_pix, radius=1.0)
    hidden_strict = front_rect.contains_points(back_pix)
    assert hidden_strict.sum() >= 4
    nb = len(back_pix)
    assert not vis[:nb][hidden_strict].any()
    assert vis[:nb][~hidden].all()
    assert vis[nb:].all()


def test_back_faces_are_invisible():
    verts, faces, back_pix, _ = _scene(back_facing_camera=False)
    r = Renderer(faces)
    out = r(torch.tensor(verts)[None], _camera())
    vis = r.vertex_visibility(torch.tensor(verts)[None], _camera(), out.fragments)[0].numpy()
    nb = len(back_pix)
    assert not vis[:nb].any()
    assert vis[nb:].all()
    # culled: only the front grid is drawn
    assert set(np.unique(out.tri_id.numpy())) - {-1} <= set(range(len(faces) - 8, len(faces)))


def test_vertices_outside_the_image_are_invisible():
    verts, faces, _, _ = _scene()
    shifted = verts + np.array([2.0, 0.0, 0.0])  # far to the right, out of view
    vis = Renderer(faces).vertex_visibility(torch.tensor(shifted)[None], _camera())
    assert not vis.any()


@pytest.fixture(scope="module")
def flame(topology):
    return topology, Renderer.from_head_model(topology), torch.tensor(topology.v_template)[None]


def _turn(v, angle):
    R = axis_angle_to_matrix(torch.tensor([[0.0, angle, 0.0]], dtype=v.dtype))
    return v @ R.transpose(1, 2)


def test_flame_front_view_renders_a_symmetric_lit_head(flame):
    m, r, v = flame
    v = v.clone().requires_grad_(True)
    cam = head_camera(96, head_size=0.33)
    out = r(v, cam, light=default_light(1), vertex_colors=torch.full((1, 5023, 3), 0.7))
    mask = out.mask[0, 0].numpy() > 0
    assert 0.3 < mask.mean() < 0.8
    iou = (mask & mask[:, ::-1]).sum() / (mask | mask[:, ::-1]).sum()  # the template is left-right symmetric
    assert iou > 0.97
    lit = out.image[0].detach().numpy()[:, mask]
    assert np.isfinite(lit).all() and 0.3 < lit.mean() < 1.0
    out.image.sum().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0

    vis = r.vertex_visibility(v.detach(), cam, out.fragments)[0].numpy()
    z = m.v_template[:, 2]
    assert vis[np.argmax(z)]  # nose tip
    back_of_head = (z < -0.05) & (m.v_template[:, 1] > -0.05)  # z spans -0.11..0.11; not the neck's base
    assert back_of_head.sum() > 100 and not vis[back_of_head].any()
    assert vis[m.regions["forehead"]].mean() > 0.98
    assert vis[m.regions["nose"]].mean() > 0.6  # the nostrils and the underside are hidden


def test_flame_three_quarter_view_hides_the_far_ear(flame):
    m, r, v = flame
    cam = head_camera(128, head_size=0.33)
    # +0.7 rad about y turns the face toward image right: the left ear (x > 0) goes away
    vis = r.vertex_visibility(_turn(v, 0.7), cam)[0].numpy()
    left, right = m.regions["left_ear"], m.regions["right_ear"]
    near, far = (right, left) if m.v_template[left, 0].mean() > 0 else (left, right)
    assert vis[far].mean() < 0.02
    assert vis[near].mean() > 0.3
    assert vis[m.regions["face"]].mean() > 0.5

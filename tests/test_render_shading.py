"""Shading against independent computations: ray-triangle intersection for perspective-correct
interpolation, hand-computed spherical-harmonics values, and finite-difference gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from d3dface.render import PerspectiveCamera, RasterSettings, Renderer, RenderSettings, SH_CONSTANTS, sh_basis, vertex_normals

F_PIX, CX, CY, H, W = 60.0, 15.5, 13.5, 28, 32


def _camera(dtype=torch.float64):
    T = lambda x: torch.tensor([x], dtype=dtype)  # noqa: E731
    return PerspectiveCamera(T([F_PIX, F_PIX]), T([CX, CY]), T([0.0, 0.0, 0.0]), T([0.0, 0.0, 0.0]), (H, W))


def _unproject(uv, d):
    """Pixel (u, v) at depth d -> world point for the identity camera at the origin."""
    u, v = uv
    return [(u - CX) * d / F_PIX, -(v - CY) * d / F_PIX, -d]


def _ray_hit(tri3d: np.ndarray, u: float, v: float):
    """Intersect the pixel-centre ray with the 3D triangle -> (point, barycentrics)."""
    direction = np.array([(u - CX) / F_PIX, -(v - CY) / F_PIX, -1.0])
    A, B, C = tri3d
    M = np.stack([direction, -(B - A), -(C - A)], 1)
    s, b1, b2 = np.linalg.solve(M, A)
    return s * direction, np.array([1 - b1 - b2, b1, b2])


def _tilted_triangle():
    """A front-facing triangle strongly tilted in depth (so perspective correction matters)."""
    tri = np.array([_unproject((2.2, 3.1), 0.5), _unproject((8.3, 25.6), 0.9), _unproject((30.4, 6.7), 1.6)])
    n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    if n[2] < 0:  # make it counter-clockwise seen from the camera (+z side)
        tri = tri[[0, 2, 1]]
    return tri


def test_interpolated_colours_positions_normals_match_ray_intersection():
    tri = _tilted_triangle()
    colours = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.4], [0.3, 0.1, 1.0]])
    r = Renderer(np.array([[0, 1, 2]]))
    out = r(torch.tensor(tri)[None], _camera(), vertex_colors=torch.tensor(colours)[None], aux=True)
    covered = np.argwhere(out.tri_id[0].numpy() == 0)
    assert len(covered) > 100
    face_n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    face_n /= np.linalg.norm(face_n)
    for row, col in covered:
        point, bary = _ray_hit(tri, col, row)
        np.testing.assert_allclose(out.image[0, :, row, col].numpy(), bary @ colours, atol=1e-9)
        np.testing.assert_allclose(out.positions[0, :, row, col].numpy(), point, atol=1e-9)
        np.testing.assert_allclose(out.normals[0, :, row, col].numpy(), face_n, atol=1e-9)
    # outside: background zero and mask zero
    empty = out.tri_id[0].numpy() < 0
    assert (out.image[0].numpy()[:, empty] == 0).all() and (out.mask[0, 0].numpy()[empty] == 0).all()
    assert (out.mask[0, 0].numpy()[~empty] == 1).all()


def test_sh_basis_hand_computed():
    # DECA/3DDFA constants written out by hand
    c = [0.28209479177387814, 1.0233267079464885, 1.0233267079464885, 1.0233267079464885,
         0.8580855308097834, 0.8580855308097834, 0.8580855308097834, 0.4290427654048917, 0.2477079561003757]
    np.testing.assert_allclose(SH_CONSTANTS, c, rtol=1e-12)
    s = 1 / math.sqrt(3)
    n = torch.tensor([[0.0, 0.0, 1.0], [s, s, s], [0.6, -0.8, 0.0]], dtype=torch.float64)
    want = np.array(
        [
            [c[0], 0, 0, c[3], 0, 0, 0, 0, 2 * c[8]],
            [c[0], c[1] * s, c[2] * s, c[3] * s, c[4] / 3, c[5] / 3, c[6] / 3, 0, 0],
            [c[0], 0.6 * c[1], -0.8 * c[2], 0, -0.48 * c[4], 0, 0, (0.36 - 0.64) * c[7], -c[8]],
        ]
    )
    np.testing.assert_allclose(sh_basis(n).numpy(), want, atol=1e-12)


def test_sh_lit_flat_triangle_has_the_hand_computed_colour():
    # a triangle facing the camera: world normal (0, 0, 1) everywhere
    tri = np.array([_unproject((3.0, 3.2), 0.8), _unproject((3.1, 24.7), 0.8), _unproject((28.6, 12.3), 0.8)])
    if np.cross(tri[1] - tri[0], tri[2] - tri[0])[2] < 0:
        tri = tri[[0, 2, 1]]
    light = torch.zeros(1, 9, 3, dtype=torch.float64)
    light[0, 0] = torch.tensor([1.0, 2.0, 0.5])
    light[0, 3] = torch.tensor([0.3, 0.0, -0.2])
    light[0, 1] = torch.tensor([5.0, 5.0, 5.0])  # x-band: zero for this normal
    light[0, 8] = torch.tensor([0.1, 0.2, 0.3])
    albedo = torch.tensor([[0.5, 0.25, 1.0]], dtype=torch.float64).expand(3, 3)[None]
    out = Renderer(np.array([[0, 1, 2]]))(torch.tensor(tri)[None], _camera(), light=light, vertex_colors=albedo)
    shading = 0.28209479177387814 * np.array([1.0, 2.0, 0.5]) + 1.0233267079464885 * np.array([0.3, 0.0, -0.2])
    shading += 0.2477079561003757 * 2 * np.array([0.1, 0.2, 0.3])
    want = np.array([0.5, 0.25, 1.0]) * shading
    covered = out.tri_id[0].numpy() == 0
    assert covered.sum() > 50
    np.testing.assert_allclose(out.image[0].numpy()[:, covered].T, np.broadcast_to(want, (covered.sum(), 3)), atol=1e-12)


def test_texture_lookup_of_a_linear_ramp_equals_interpolated_uv():
    tri = _tilted_triangle()
    uvs = np.array([[0.1, 0.2], [0.8, 0.3], [0.4, 0.9]])
    Ht, Wt = 64, 128
    tex = torch.zeros(1, 3, Ht, Wt, dtype=torch.float64)
    tex[0, 0] = ((torch.arange(Wt) + 0.5) / Wt)[None, :]  # red = u at texel centres
    tex[0, 1] = (1 - (torch.arange(Ht) + 0.5) / Ht)[:, None]  # green = v (row 0 is the top, v = 1)
    r = Renderer(np.array([[0, 1, 2]]), uvs=uvs, uv_faces=np.array([[0, 1, 2]]))
    out = r(torch.tensor(tri)[None], _camera(), texture=tex)
    for row, col in np.argwhere(out.tri_id[0].numpy() == 0):
        _, bary = _ray_hit(tri, col, row)
        np.testing.assert_allclose(out.image[0, :2, row, col].numpy(), bary @ uvs, atol=1e-9)


def test_vertex_normals_point_outward_on_a_sphere():
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    v = torch.tensor(s.vertices)[None]
    n = vertex_normals(v, torch.tensor(s.faces))[0].numpy()
    radial = s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", n, radial) > 0.999).all()
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-12)


def _small_scene(dtype=torch.float64):
    ico = trimesh.creation.icosahedron()
    verts = torch.tensor(ico.vertices * 0.1, dtype=dtype)[None]
    T = lambda x: torch.tensor([x], dtype=dtype)  # noqa: E731
    cam = dict(f=T([36.0, 36.0]), c=T([5.5, 5.5]), r=T([0.1, 0.2, 0.05]), t=T([0.01, -0.01, -0.6]))
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(1, 12, 3, generator=g, dtype=dtype)
    light = torch.randn(1, 9, 3, generator=g, dtype=dtype) * 0.3
    light[0, 0] += 2.0
    return ico.faces, verts, colours, light, cam


def test_gradcheck_vertices_camera_light_albedo():
    faces, verts, colours, light, cam = _small_scene()
    r = Renderer(faces)

    def image(v, col, li, f, c, rot, t):
        out = r(v, PerspectiveCamera(f, c, rot, t, (12, 12)), light=li, vertex_colors=col)
        return out.image

    covered = image(verts, colours, light, *cam.values()).abs().sum(1) > 0
    assert covered.sum() > 40  # the icosahedron fills a good part of the 12x12 image
    inputs = tuple(x.clone().requires_grad_(True) for x in (verts, colours, light, *cam.values()))
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-5, fast_mode=True)
    # and the full Jacobian for the vertices alone
    assert torch.autograd.gradcheck(lambda v: image(v, *inputs[1:]), (inputs[0],), eps=1e-6, atol=1e-5)


def test_gradients_reach_texture_and_background():
    faces, verts, colours, light, cam = _small_scene()
    ico = trimesh.creation.icosahedron()
    uv = (ico.vertices[:, :2] * 0.4 + 0.5)
    r = Renderer(faces, uvs=uv, uv_faces=faces)
    tex = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    bg = torch.rand(1, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    out = r(verts, PerspectiveCamera(cam["f"], cam["c"], cam["r"], cam["t"], (12, 12)), light=light, texture=tex, background=bg)
    out.image.sum().backward()
    assert tex.grad.abs().sum() > 0
    # background gradient is 1 exactly where nothing covers the pixel
    np.testing.assert_array_equal(bg.grad[0, 0].numpy(), 1.0 - out.mask[0, 0].numpy())


def test_batch_equals_items_and_float32():
    faces, verts, colours, light, cam = _small_scene(torch.float32)
    r = Renderer(faces, settings=RenderSettings(raster=RasterSettings()))
    v2 = torch.cat([verts, verts * 1.1 + 0.01])
    c2 = torch.cat([colours, colours.flip(-1)])
    l2 = torch.cat([light, light * 0.5])
    camera = PerspectiveCamera(cam["f"], cam["c"], cam["r"], cam["t"], (12, 12))  # batch 1, expanded
    both = r(v2, camera, light=l2, vertex_colors=c2)
    for i in range(2):
        one = r(v2[i : i + 1], camera, light=l2[i : i + 1], vertex_colors=c2[i : i + 1])
        torch.testing.assert_close(both.image[i], one.image[0])
        torch.testing.assert_close(both.tri_id[i], one.tri_id[0])
    assert both.image.dtype == torch.float32 and both.image.shape == (2, 3, 12, 12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_gradients():
    faces, verts, colours, light, cam = _small_scene(torch.float32)
    r = Renderer(faces)

    def run(device):
        v, col, li = (x.detach().clone().to(device).requires_grad_(True) for x in (verts, colours, light))
        camera = PerspectiveCamera(*(cam[k].to(device) for k in ("f", "c", "r", "t")), (40, 48))
        out = r(v, camera, light=li, vertex_colors=col)
        (out.image * torch.linspace(0, 1, 48, device=device)).sum().backward()
        return out.image.detach().cpu(), out.tri_id.cpu(), v.grad.cpu(), li.grad.cpu()

    cpu, gpu = run("cpu"), run("cuda")
    assert (cpu[1] == gpu[1]).float().mean() > 0.995  # rounding may flip a pixel on an edge
    same = (cpu[1] == gpu[1]).unsqueeze(1).expand(-1, 3, -1, -1)
    torch.testing.assert_close(gpu[0][same], cpu[0][same], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(gpu[3], cpu[3], atol=1e-2, rtol=1e-3)


def test_nothing_in_view_renders_the_background():
    faces, verts, colours, light, cam = _small_scene()
    camera = PerspectiveCamera(cam["f"], cam["c"], cam["r"], cam["t"], (12, 12))
    bg = torch.full((1, 3, 12, 12), 0.25, dtype=torch.float64)
    behind = verts + torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)  # behind the camera
    out = Renderer(faces)(behind.requires_grad_(True), camera, light=light, vertex_colors=colours, background=bg, aux=True)
    assert (out.tri_id < 0).all() and (out.mask == 0).all()
    torch.testing.assert_close(out.image, bg)
    out.image.sum().backward()  # no pixel: a zero gradient, not an error

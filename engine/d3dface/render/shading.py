"""Differentiable shading pieces: vertex normals, perspective-correct attribute interpolation
at pixel centres (per-triangle planes), and spherical-harmonics lighting.

SH lighting follows DECA / 3DDFA: the real SH basis of band <= 2 evaluated at the unit
normal n = (x, y, z), in the order

    [1, x, y, z, xy, xz, yz, x^2 - y^2, 3 z^2 - 1]

times the constants ``SH_CONSTANTS`` (the basis normalisation times the Lambertian
convolution factors pi, 2pi/3, pi/4), so that ``shading = sum_k c_k basis_k(n) * L_k``
for 9 coefficients per colour channel, light (B, 9, 3). The rendered colour is
``albedo * shading``. Normals, hence the light, are in world coordinates (the same as
camera coordinates while the camera's rotation is zero, as in ``head_camera``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .indexing import take_rows

_PI = math.pi
SH_CONSTANTS = (
    1 / math.sqrt(4 * _PI),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (3 / 2) * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (1 / 2) * math.sqrt(5 / (4 * _PI)),
)


def sh_basis(normals: torch.Tensor, scaled: bool = True) -> torch.Tensor:
    """normals (..., 3) unit -> (..., 9) SH basis, times ``SH_CONSTANTS`` when ``scaled``."""
    x, y, z = normals.unbind(-1)
    basis = torch.stack([torch.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], dim=-1)
    return basis * basis.new_tensor(SH_CONSTANTS) if scaled else basis


def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """normals (B, N, 3) unit, light (B, 9, 3) -> shading (B, N, 3)."""
    return torch.bmm(sh_basis(normals), light)


def default_light(
    batch: int = 1,
    ambient: float = 0.6,
    directional: float = 0.45,
    direction=(0.3, 0.4, 0.87),
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """(B, 9, 3) a soft white light for previews: ``ambient`` plus ``directional * dot(n, direction)``
    (world ``direction``, by default from the camera side, above and to the right)."""
    d = torch.as_tensor(direction, dtype=torch.float64)
    d = d / d.norm()
    light = torch.zeros(batch, 9, 3, device=device, dtype=dtype)
    light[:, 0] = ambient / SH_CONSTANTS[0]
    for k in range(3):
        light[:, 1 + k] = float(d[k]) * directional / SH_CONSTANTS[1 + k]
    return light


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """vertices (B, V, 3), faces (F, 3) -> (B, V, 3) unit area-weighted vertex normals
    (outward for counter-clockwise faces)."""
    B, V = vertices.shape[:2]
    Fn = faces.shape[0]
    corners = take_rows(vertices.transpose(0, 1), faces)  # (F, 3, B, 3): rows on dim 0 are fast
    fn = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1).reshape(Fn, B * 3)
    vn = vertices.new_zeros(V, B * 3).index_add(0, faces.T.reshape(-1), fn.repeat(3, 1))
    return F.normalize(vn.view(V, B, 3).transpose(0, 1), dim=-1, eps=1e-12)


def attribute_planes(tri_xy: torch.Tensor, tri_depth: torch.Tensor, tri_attr: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """Per-triangle planes for perspective-correct interpolation at pixel centres.

    tri_xy (T, 3, 2) projected vertices in pixels, tri_depth (T, 3) metres, tri_attr (T, 3, C)
    values at the corners, origin (T, 2) a constant reference pixel per triangle
    -> planes (T, 3, C + 1). For a pixel centre p = origin + (dx, dy) of triangle t,
    ``q = dx * planes[t, 0] + dy * planes[t, 1] + planes[t, 2]`` and the interpolated value is
    ``q[:C] / q[C]``: screen barycentrics b_i are affine in p, so are b_i / depth_i, and the
    perspective-correct weights are (b_i / depth_i) / sum_j (b_j / depth_j).
    """
    v0 = tri_xy[:, 0]
    e1 = tri_xy[:, 1] - v0
    e2 = tri_xy[:, 2] - v0
    r = origin - v0
    inv_a = 1.0 / (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    # screen barycentrics b1, b2 as (d/dx, d/dy, value at origin); b0 = 1 - b1 - b2
    b1 = torch.stack([e2[:, 1], -e2[:, 0], r[:, 0] * e2[:, 1] - r[:, 1] * e2[:, 0]], dim=1) * inv_a[:, None]
    b2 = torch.stack([-e1[:, 1], e1[:, 0], e1[:, 0] * r[:, 1] - e1[:, 1] * r[:, 0]], dim=1) * inv_a[:, None]
    b0 = torch.zeros_like(b1)
    b0[:, 2] = 1.0
    b0 = b0 - b1 - b2
    w = torch.stack([b0, b1, b2], dim=2) / tri_depth[:, None, :]  # (T, 3 coefficients, 3 corners)
    ones = torch.ones_like(tri_attr[..., :1])
    corner = torch.cat([tri_attr, ones], dim=-1)  # (T, 3 corners, C + 1)
    return (w.unsqueeze(-1) * corner.unsqueeze(1)).sum(dim=2)  # (T, 3, C + 1); tiny bmm is slower


def evaluate_planes(planes: torch.Tensor, offset: torch.Tensor, skip: int = 0) -> torch.Tensor:
    """planes (P, 3, C + 1) rows of ``attribute_planes`` for each pixel, offset (P, 2) pixel
    centre minus origin -> (P, C) interpolated values. The first ``skip`` channels are left
    unnormalised (a positive multiple of the value: enough for a direction that is normalised
    afterwards, and cheaper)."""
    # (mul + sum and split: slicing a big tensor would zero-fill a full-size gradient per slice)
    xy1 = torch.cat([offset, torch.ones_like(offset[:, :1])], dim=1)  # (P, 3), no gradient
    q = (xy1.unsqueeze(-1) * planes).sum(dim=1)  # (P, C + 1)
    C = q.shape[1] - 1
    if skip == 0:
        num, den = q.split([C, 1], dim=1)
        return num / den
    if skip == C:
        return q.split([C, 1], dim=1)[0]
    raw, num, den = q.split([skip, C - skip, 1], dim=1)
    return torch.cat([raw, num / den], dim=1)

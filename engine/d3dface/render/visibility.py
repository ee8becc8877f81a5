"""Per-vertex visibility from a rasterised triangle-id / depth buffer (no gradients).

A vertex is visible when it is front-facing (its normal points toward the camera centre),
projects inside the image, and is not hidden at its own pixel: the triangle that won the
pixel nearest to its projection is one of its own triangles, or the pixel is empty, or its
depth is within ``depth_tol`` metres of the z-buffer there.
"""

from __future__ import annotations

import torch

from .rasterize import Fragments


@torch.no_grad()
def vertex_visibility(
    pix: torch.Tensor,
    depth: torch.Tensor,
    normals: torch.Tensor,
    vertices: torch.Tensor,
    camera_centre: torch.Tensor,
    faces: torch.Tensor,
    fragments: Fragments,
    depth_tol: float = 2e-3,
) -> torch.Tensor:
    """pix (B, V, 2), depth (B, V), normals and vertices (B, V, 3) world, camera_centre (B, 3),
    faces (F, 3), fragments of the same mesh and camera -> (B, V) bool."""
    B, H, W = fragments.tri_id.shape
    V = vertices.shape[1]
    front = ((camera_centre[:, None, :] - vertices) * normals).sum(-1) > 0
    col = pix[..., 0].round().long()
    row = pix[..., 1].round().long()
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (depth > 0)
    flat = torch.arange(B, device=pix.device)[:, None] * (H * W) + row.clamp(0, H - 1) * W + col.clamp(0, W - 1)
    winner = fragments.tri_id.reshape(-1)[flat]  # (B, V)
    zbuf = fragments.depth.reshape(-1)[flat]
    vid = torch.arange(V, device=pix.device)
    own = (winner >= 0) & (faces[winner.clamp(min=0)] == vid[None, :, None]).any(-1)
    unhidden = own | (depth.float() <= zbuf + depth_tol)  # empty pixels have zbuf = inf
    return front & inside & unhidden

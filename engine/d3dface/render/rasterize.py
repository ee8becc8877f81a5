"""Rasterisation without gradients: which triangle is nearest at each pixel centre.

All triangles are processed at once, with no per-triangle Python loop: each surviving
triangle's screen bounding box is split into rows (``repeat_interleave`` of the box heights);
each row computes, from the three edge functions, the exact span of pixel centres inside the
triangle; the spans are expanded into pixels (a second ``repeat_interleave``). Work is cut into
chunks of at most ``max_candidates`` bounding-box pixels, so memory stays bounded however
large a triangle is. Visibility is one ``scatter_reduce(amin)`` on an int64 key
``(float32 depth bits << 32) | triangle id``: positive float bit patterns sort like the
floats, so the nearest triangle wins and equal depths go to the lowest triangle id
(deterministic).

Pixel centres sit at integer coordinates (see ``cameras``); depth is interpolated
perspective-correctly (1/depth is affine in screen space).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .indexing import take_batched

_EMPTY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


@dataclass
class RasterSettings:
    """cull_backfaces: drop triangles facing away from the camera (FLAME's faces are
    counter-clockwise seen from outside); near: metres, triangles with a vertex closer are
    dropped; max_candidates: bounding-box pixels handled per chunk (bounds memory); slack:
    pixels, a centre this close outside an edge still counts as inside (no cracks on shared
    edges from rounding)."""

    cull_backfaces: bool = True
    near: float = 1e-3
    max_candidates: int = 1 << 22
    slack: float = 1e-4


@dataclass
class Fragments:
    """tri_id (B, H, W) int64 face index (-1: empty); depth (B, H, W) float32 metres (inf: empty)."""

    tri_id: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool coverage."""
        return self.tri_id >= 0


def signed_area2(tri_xy: torch.Tensor) -> torch.Tensor:
    """tri_xy (..., 3, 2) pixel coordinates -> twice the signed area (...,).

    In pixel coordinates (y down) a triangle that is counter-clockwise in the y-up world,
    seen from its front, has a *negative* value.
    """
    e1 = tri_xy[..., 1, :] - tri_xy[..., 0, :]
    e2 = tri_xy[..., 2, :] - tri_xy[..., 0, :]
    return e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]


@torch.no_grad()
def rasterize(
    pix: torch.Tensor,
    depth: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    settings: RasterSettings | None = None,
) -> Fragments:
    """pix (B, V, 2) pixel coordinates, depth (B, V) metres, faces (F, 3) int64 -> Fragments."""
    s = settings or RasterSettings()
    H, W = image_size
    B = pix.shape[0]
    device = pix.device
    pix = pix.detach().float()
    depth = depth.detach().float()

    Fn = faces.shape[0]
    tri_xy = take_batched(pix, faces).view(B * Fn, 3, 2)
    tri_z = take_batched(depth, faces).view(B * Fn, 3)
    v0, e1, e2, area2, lo, hi, keep = _triangle_boxes(tri_xy, tri_z, H, W, s)

    sel = keep.nonzero(as_tuple=True)[0]  # surviving triangles in the flat (B*F) list
    buf = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=device)
    if sel.numel():
        table = _triangle_table(v0, e1, e2, area2, tri_z, lo, hi).index_select(0, sel)
        ints = table[:, 9:].long()
        bi = torch.div(sel, Fn, rounding_mode="floor")
        base = bi * (H * W) + ints[:, 1] * W + ints[:, 0]
        meta = torch.stack([base, ints[:, 2], sel - bi * Fn], dim=1)  # (T, 3): box origin pixel, width, face
        _scatter_chunks(buf, table[:, :9].contiguous(), meta, ints[:, 3], W, s)
    return _fragments(buf, B, H, W)


def _triangle_boxes(tri_xy: torch.Tensor, tri_z: torch.Tensor, H: int, W: int, s: RasterSettings):
    """tri_xy (N, 3, 2) pixels, tri_z (N, 3) metres, float32 -> v0 (N, 2), edges e1 = v1 - v0 and
    e2 = v2 - v0 (N, 2), twice the signed area (N,), the box of pixel centres lo, hi (N, 2) clamped
    to the image (float, integral values), and keep (N,) bool: in front of ``near``, a non-empty
    box, a finite area, front-facing (or, without culling, not degenerate)."""
    v0 = tri_xy[:, 0]
    e1 = tri_xy[:, 1] - v0
    e2 = tri_xy[:, 2] - v0
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    lo = tri_xy.amin(dim=1).ceil_()
    hi = tri_xy.amax(dim=1).floor_()
    lo = torch.maximum(lo, lo.new_zeros(()))  # box of pixel centres, clamped to the image
    hi[:, 0].clamp_(max=W - 1)
    hi[:, 1].clamp_(max=H - 1)
    keep = (tri_z.amin(dim=1) > s.near) & (hi >= lo).all(dim=1) & torch.isfinite(area2)
    keep &= (area2 < 0) if s.cull_backfaces else (area2 != 0)
    return v0, e1, e2, area2, lo, hi, keep


def _triangle_table(v0, e1, e2, area2, tri_z, lo, hi) -> torch.Tensor:
    """Per triangle (N,) -> (N, 13) float32: sx, sy, a1, c1, a2, c2, gx, gy, iz0 (the edge and
    1/depth coefficients, 1/metres) then the box's x0, y0, width, height (exact small integers).

    From v0, d = (dx, dy): b1 = cross(d, e2) / a = dx a1 + dy c1, b2 = cross(e1, d) / a = dx a2 + dy c2,
    1/depth = iz0 + dx gx + dy gy; the box origin (x0, y0) is at d = (sx, sy)."""
    inv_a = 1.0 / area2
    iz = 1.0 / tri_z
    a1, c1 = e2[:, 1] * inv_a, -e2[:, 0] * inv_a
    a2, c2 = -e1[:, 1] * inv_a, e1[:, 0] * inv_a
    d1, d2 = iz[:, 1] - iz[:, 0], iz[:, 2] - iz[:, 0]
    return torch.stack(
        [
            lo[:, 0] - v0[:, 0],
            lo[:, 1] - v0[:, 1],
            a1,
            c1,
            a2,
            c2,
            a1 * d1 + a2 * d2,
            c1 * d1 + c2 * d2,
            iz[:, 0],
            lo[:, 0],
            lo[:, 1],
            hi[:, 0] - lo[:, 0] + 1,
            hi[:, 1] - lo[:, 1] + 1,
        ],
        dim=1,
    )


def _fragments(buf: torch.Tensor, B: int, H: int, W: int) -> Fragments:
    """The z-buffer (B*H*W,) int64 of (depth bits << 32) | face keys (_EMPTY: none) -> Fragments."""
    empty = buf == _EMPTY
    tri_id = torch.where(empty, torch.full_like(buf, -1), buf & _LOW32)
    zbits = (buf >> 32).to(torch.int32)
    z = zbits.view(torch.float32).masked_fill(empty, float("inf"))
    return Fragments(tri_id=tri_id.view(B, H, W), depth=z.view(B, H, W))


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """counts (N,) -> for every one of sum(counts) items: its owner in [0, N) and its rank within it."""
    n = int(counts.sum())
    owner = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts, output_size=n)
    start = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(n, device=counts.device) - start.index_select(0, owner)


def _scatter_chunks(buf, coef, meta, heights, W, s: RasterSettings) -> None:
    """Expand triangles into rows, rows into inside pixel spans, and z-test the pixels into buf.

    coef (T, 9) float: sx, sy, a1, c1, a2, c2, gx, gy, iz0 (see ``_triangle_table``); meta (T, 3)
    int64: box origin pixel index, box width, face id; heights (T,) box heights.
    """
    T = heights.shape[0]
    ends = torch.cumsum(meta[:, 1] * heights, 0)  # bounding-box pixels, for chunking
    total = int(ends[-1])
    cuts = [0]
    if total > s.max_candidates:
        marks = torch.arange(s.max_candidates, total, s.max_candidates, device=ends.device)
        cuts += torch.searchsorted(ends, marks, right=True).tolist()
    cuts.append(T)
    inf = float("inf")
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        # rows: one per box row of each triangle
        tri, oy = _expand(heights[a:b])
        c = coef[a:b].index_select(0, tri)  # (R, 9)
        m = meta[a:b].index_select(0, tri)  # (R, 3)
        sx, dy = c[:, 0], oy.float() + c[:, 1]
        # edge functions along the row: b_i(ox) = A_i (ox + sx) + K_i >= 0 for i = 1, 2, 0
        A = torch.stack([c[:, 2], c[:, 4], -(c[:, 2] + c[:, 4])], dim=1)
        K = torch.stack([dy * c[:, 3], dy * c[:, 5], 1 - dy * (c[:, 3] + c[:, 5])], dim=1)
        t = -K / torch.where(A == 0, torch.ones_like(A), A) - sx[:, None]  # crossing, box-local x
        lo = torch.where(A > 0, t, -inf).amax(dim=1)
        hi = torch.where(A < 0, t, inf).amin(dim=1)
        x_lo = (lo - s.slack).ceil_().clamp_(min=0)
        x_hi = torch.minimum((hi + s.slack).floor_(), (m[:, 1] - 1).float())
        span = (x_hi - x_lo + 1).clamp_(min=0)
        span = torch.where(((A == 0) & (K < 0)).any(dim=1), 0, span).long()  # empty rows expand to nothing
        # per row: first pixel index, 1/depth there and its step along x, face id
        gx = c[:, 6]
        z0 = c[:, 8] + (x_lo + c[:, 0]) * gx + dy * c[:, 7]
        rowf = torch.stack([z0, gx], dim=1)
        rowi = torch.stack([m[:, 0] + oy * W + x_lo.long(), m[:, 2]], dim=1)
        # pixels
        row, k = _expand(span)
        if not row.numel():
            continue
        f = rowf.index_select(0, row)
        i = rowi.index_select(0, row)
        z = 1.0 / (f[:, 0] + k.float() * f[:, 1])
        key = (z.view(torch.int32).to(torch.int64) << 32) | i[:, 1]
        buf.scatter_reduce_(0, i[:, 0] + k, key, reduce="amin", include_self=True)

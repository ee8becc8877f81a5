"""The renderer's one interface: ``Renderer`` (deferred, pure torch, batched, CPU or CUDA).

1. ``rasterize`` (no gradients): triangle id and depth per pixel centre.
2. shading (with gradients): perspective-correct barycentrics recomputed from the
   differentiable projected vertices of each pixel's triangle; albedo (per-vertex colours or
   a UV texture sampled with ``grid_sample``), normals and positions interpolated; SH
   lighting. Gradients reach vertices, camera, light, albedo / texture and background;
   there are no silhouette gradients.

Tensors follow the input's device; static buffers (faces, face UVs) are cached per device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .cameras import PerspectiveCamera
from .indexing import take_rows
from .rasterize import Fragments, RasterSettings, rasterize
from .shading import SH_CONSTANTS, attribute_planes, evaluate_planes, sh_basis, vertex_normals
from .visibility import vertex_visibility


@dataclass
class RenderSettings:
    """raster: rasteriser settings; visibility_depth_tol: metres a vertex may lie behind the
    z-buffer and still count as visible."""

    raster: RasterSettings = field(default_factory=RasterSettings)
    visibility_depth_tol: float = 2e-3


@dataclass
class RenderResult:
    """image (B, 3, H, W) ``albedo * shading`` over the background (0 by default);
    mask (B, 1, H, W) float coverage (no gradient); tri_id (B, H, W) int64 (-1 empty);
    depth (B, H, W) z-buffer metres (inf empty, no gradient); pix (B, V, 2) and
    vertex_depth (B, V) the differentiable projected vertices.
    With ``aux=True`` also albedo, normals (world, unit), positions (world, metres) and
    shading, each (B, 3, H, W) and zero where empty; otherwise None."""

    image: torch.Tensor
    mask: torch.Tensor
    tri_id: torch.Tensor
    depth: torch.Tensor
    pix: torch.Tensor
    vertex_depth: torch.Tensor
    albedo: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    shading: torch.Tensor | None = None

    @property
    def fragments(self) -> Fragments:
        return Fragments(tri_id=self.tri_id, depth=self.depth)


class Renderer:
    """faces (F, 3) int; optional uvs (T, 2) in [0, 1] (v up, OBJ style) with uv_faces (F, 3)
    for texture rendering."""

    def __init__(self, faces, uvs=None, uv_faces=None, settings: RenderSettings | None = None):
        self.settings = settings or RenderSettings()
        self._faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64).contiguous()
        self._face_grid = None
        if uvs is not None and uv_faces is not None:
            uv = torch.as_tensor(np.asarray(uvs, dtype=np.float64))
            corner = uv[torch.as_tensor(np.asarray(uv_faces), dtype=torch.int64)]  # (F, 3, 2)
            # grid_sample coordinates: x = 2u - 1, y = 1 - 2v (texture row 0 is the top, v = 1)
            self._face_grid = torch.stack([2 * corner[..., 0] - 1, 1 - 2 * corner[..., 1]], dim=-1)
        self._cache: dict = {}

    @classmethod
    def from_head_model(cls, model, settings: RenderSettings | None = None) -> "Renderer":
        """A renderer for a ``HeadModel`` (its faces and, when present, UVs)."""
        return cls(model.faces, getattr(model, "uvs", None), getattr(model, "uv_faces", None), settings)

    @property
    def num_faces(self) -> int:
        return self._faces.shape[0]

    def _faces_on(self, device) -> torch.Tensor:
        key = ("faces", str(device))
        if key not in self._cache:
            self._cache[key] = self._faces.to(device)
        return self._cache[key]

    def _grid_on(self, device, dtype) -> torch.Tensor:
        if self._face_grid is None:
            raise ValueError("this renderer has no UVs: pass uvs and uv_faces to render a texture")
        key = ("grid", str(device), dtype)
        if key not in self._cache:
            self._cache[key] = self._face_grid.to(device=device, dtype=dtype)
        return self._cache[key]

    # ---- stages -----------------------------------------------------------------------
    def project(self, vertices: torch.Tensor, camera: PerspectiveCamera) -> tuple[torch.Tensor, torch.Tensor]:
        """vertices (B, V, 3) world -> pix (B, V, 2), depth (B, V) (differentiable)."""
        return camera.expand(vertices.shape[0]).project(vertices)

    def rasterize(self, vertices: torch.Tensor, camera: PerspectiveCamera) -> Fragments:
        """vertices (B, V, 3) -> Fragments (no gradients)."""
        pix, depth = self.project(vertices, camera)
        return rasterize(pix, depth, self._faces_on(vertices.device), camera.image_size, self.settings.raster)

    def vertex_visibility(
        self, vertices: torch.Tensor, camera: PerspectiveCamera, fragments: Fragments | None = None
    ) -> torch.Tensor:
        """vertices (B, V, 3) -> (B, V) bool: front-facing and not self-occluded."""
        with torch.no_grad():
            cam = camera.expand(vertices.shape[0])
            pix, depth = cam.project(vertices)
            faces = self._faces_on(vertices.device)
            if fragments is None:
                fragments = rasterize(pix, depth, faces, cam.image_size, self.settings.raster)
            normals = vertex_normals(vertices, faces)
            return vertex_visibility(
                pix, depth, normals, vertices, cam.centre(), faces, fragments, self.settings.visibility_depth_tol
            )

    def render(
        self,
        vertices: torch.Tensor,
        camera: PerspectiveCamera,
        light: torch.Tensor | None = None,
        vertex_colors: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        background: torch.Tensor | None = None,
        aux: bool = False,
    ) -> RenderResult:
        """Render B meshes.

        vertices (B, V, 3) world metres; camera of batch B or 1; light (B or 1, 9, 3) SH
        coefficients (None: unlit, shading = 1); vertex_colors (B or 1, V, 3) or texture
        (B or 1, 3, Ht, Wt) albedo, sampled bilinearly at the interpolated UVs (neither: white);
        background (B or 1, 3, H, W) or None (0). ``aux`` also returns the albedo, normal,
        position and shading images.
        """
        B, V = vertices.shape[:2]
        device, dtype = vertices.device, vertices.dtype
        cam = camera.expand(B)
        H, W = cam.image_size
        faces = self._faces_on(device)
        pix, depth = cam.project(vertices)
        frags = rasterize(pix, depth, faces, (H, W), self.settings.raster)
        cov = _coverage(frags.tri_id, faces, B, V, H, W)
        use_texture = texture is not None and vertex_colors is None
        attrs, vertex_colors = self._pixel_attributes(vertices, pix, depth, faces, cov, vertex_colors, aux, use_texture)
        n, albedo, positions, counts = _split_attributes(attrs, cov, B, vertex_colors is not None, aux, use_texture,
                                                         texture, dtype)
        shading, color = _shade(n, albedo, light, cov, B, counts, dtype)
        planar = _planar_writer(cov, color.shape[1], B, H, W)
        if background is None:
            image = planar(color)
        else:
            image = planar(color, background.to(dtype).expand(B, color.shape[1], H, W).contiguous())
        mask = (frags.tri_id >= 0).to(dtype).unsqueeze(1)
        return RenderResult(
            image=image,
            mask=mask,
            tri_id=frags.tri_id,
            depth=frags.depth,
            pix=pix,
            vertex_depth=depth,
            albedo=planar(albedo) if aux else None,
            normals=planar(n) if aux else None,
            positions=planar(positions) if aux else None,
            shading=planar(shading) if aux and shading is not None else None,
        )

    def _pixel_attributes(self, vertices, pix, depth, faces, cov: _Coverage, vertex_colors, aux: bool,
                          use_texture: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Perspective-correct interpolation at the P covered pixels (differentiable) ->
        (P, C) attributes: unnormalised normal (3), then albedo (3) when vertex_colors, world
        position (3, metres) when aux, grid_sample UV (2) when use_texture; and vertex_colors as
        (B or 1, V, 3) (a (V, 3) input gains a batch axis)."""
        B, V = vertices.shape[:2]
        dtype = vertices.dtype
        tri_xy = take_rows(pix.reshape(B * V, 2), cov.corner)  # (U, 3, 2)
        tri_z = take_rows(depth.reshape(B * V), cov.corner)
        origin = tri_xy[:, 0].detach().round()  # (U, 2) constant reference pixel
        offset = torch.stack([cov.x, cov.y], dim=1).to(dtype) - origin.index_select(0, cov.row)  # (P, 2) small integers

        normals_v = vertex_normals(vertices, faces)
        per_vertex = [normals_v]
        if vertex_colors is not None:
            if vertex_colors.dim() == 2:
                vertex_colors = vertex_colors[None]
            per_vertex.append(vertex_colors.to(dtype).expand(B, V, -1))
        if aux:
            per_vertex.append(vertices)
        flat = torch.cat(per_vertex, dim=-1).reshape(B * V, -1)
        tri_attr = take_rows(flat, cov.corner)  # (U, 3, C)
        if use_texture:  # UVs per face corner
            tri_attr = torch.cat([tri_attr, take_rows(self._grid_on(vertices.device, dtype), cov.uf)], dim=-1)
        planes = attribute_planes(tri_xy, tri_z, tri_attr, origin)
        attrs = evaluate_planes(take_rows(planes, cov.row), offset, skip=3)  # (P, C); normals unnormalised
        return attrs, vertex_colors

    __call__ = render


@dataclass
class _Coverage:
    """The P covered pixels (sorted by batch) and the U distinct triangles that won them (no gradients).

    b, rem, x, y (P,) int64: batch, pixel index y * W + x within the image, column, row;
    row (P,): index of the pixel's triangle among the U; uf (U,): face index of each used
    triangle; corner (U, 3): its vertices' rows in the flat (B*V) vertex arrays."""

    b: torch.Tensor
    rem: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    row: torch.Tensor
    uf: torch.Tensor
    corner: torch.Tensor


@torch.no_grad()
def _coverage(tri_id: torch.Tensor, faces: torch.Tensor, B: int, V: int, H: int, W: int) -> _Coverage:
    """tri_id (B, H, W) int64 (-1 empty), faces (F, 3) -> the covered pixels and their triangles,
    compacted: attribute planes are computed for the used triangles only."""
    device = tri_id.device
    Fn = faces.shape[0]
    tri = tri_id.view(-1)
    pidx = (tri >= 0).nonzero(as_tuple=True)[0]  # (P,) covered pixels, sorted by batch
    b = torch.div(pidx, H * W, rounding_mode="floor")
    rem = pidx - b * (H * W)
    gtri = b * Fn + tri.index_select(0, pidx)  # (P,) triangle of each pixel in the flat (B*F) list
    used = torch.zeros(B * Fn, dtype=torch.bool, device=device)
    used[gtri] = True
    used = used.nonzero(as_tuple=True)[0]  # (U,)
    slot = torch.empty(B * Fn, dtype=torch.int64, device=device)
    slot[used] = torch.arange(used.shape[0], device=device)
    row = slot.index_select(0, gtri)  # (P,) index into the U used triangles
    ub = torch.div(used, Fn, rounding_mode="floor")
    uf = used - ub * Fn
    corner = ub[:, None] * V + take_rows(faces, uf)  # (U, 3) rows of the flat (B*V) vertex arrays
    y = torch.div(rem, W, rounding_mode="floor")
    x = rem - y * W
    return _Coverage(b=b, rem=rem, x=x, y=y, row=row, uf=uf, corner=corner)


def _split_attributes(attrs: torch.Tensor, cov: _Coverage, B: int, has_colors: bool, aux: bool, use_texture: bool,
                      texture: torch.Tensor | None, dtype: torch.dtype):
    """attrs (P, C) from ``_pixel_attributes`` -> n (P, 3) unit normals, albedo (P, 3) (vertex
    colours, the texture's samples, or white), positions (P, 3) metres or None, and the covered
    pixels per batch item (list of B ints) when already counted, else None."""
    sizes = [3] + [3] * has_colors + [3] * aux + [2] * use_texture
    parts = attrs.split(sizes, dim=1)
    n = F.normalize(parts[0], dim=-1, eps=1e-12)
    k = 1
    counts = None
    positions = None
    if has_colors:
        albedo, k = parts[1], 2
    if aux:
        positions, k = parts[k], k + 1
    if not has_colors:
        if use_texture:
            counts = torch.bincount(cov.b, minlength=B).tolist()
            albedo = _sample_texture(texture.to(dtype), parts[k], counts)
        else:
            albedo = torch.ones_like(n)
    return n, albedo, positions, counts


def _shade(n: torch.Tensor, albedo: torch.Tensor, light: torch.Tensor | None, cov: _Coverage, B: int,
           counts: list[int] | None, dtype: torch.dtype) -> tuple[torch.Tensor | None, torch.Tensor]:
    """n (P, 3) unit normals, albedo (P, 3), light (B or 1, 9, 3) SH or None -> shading (P, 3)
    (None when unlit) and colour (P, 3) = albedo * shading."""
    if light is None:
        return None, albedo
    light = (light.to(dtype) * light.new_tensor(SH_CONSTANTS, dtype=dtype)[:, None]).expand(B, 9, -1)
    basis = sh_basis(n, scaled=False)
    if counts is None:
        counts = torch.bincount(cov.b, minlength=B).tolist()
    shading = torch.cat([bs @ light[i] for i, bs in enumerate(basis.split(counts))], dim=0)
    return shading, albedo * shading


def _planar_writer(cov: _Coverage, C: int, B: int, H: int, W: int):
    """A function (P, C) values [, base (B, C, H, W)] -> (B, C, H, W) image with the values at the
    covered pixels (zero, or base, elsewhere)."""
    with torch.no_grad():  # planar (B, C, H, W) destinations of the covered pixels
        dest = ((cov.b * (C * H * W) + cov.rem)[:, None] + torch.arange(C, device=cov.b.device) * (H * W)).view(-1)

    def planar(v, base=None):
        out = v.new_zeros(B * C * H * W) if base is None else base.reshape(-1)
        return out.index_put((dest,), v.reshape(-1)).view(B, C, H, W)

    return planar


def _sample_texture(texture: torch.Tensor, grid: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """texture (B or 1, C, Ht, Wt), grid (P, 2) in grid_sample coordinates, pixels grouped by
    batch with ``counts`` -> (P, C) bilinear samples."""
    out = []
    for i, g in enumerate(grid.split(counts)):
        tex = texture[i if texture.shape[0] > 1 else 0][None]
        s = F.grid_sample(tex, g.view(1, 1, -1, 2), mode="bilinear", padding_mode="border", align_corners=False)
        out.append(s[0, :, 0].T)
    return torch.cat(out, dim=0)

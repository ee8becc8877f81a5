"""Render stage: perspective camera, pure-torch deferred rasteriser, SH shading, vertex visibility.

    from d3dface.render import Renderer, head_camera, default_light
    renderer = Renderer.from_head_model(model)
    out = renderer(vertices, head_camera(224, batch=B), light=default_light(B), vertex_colors=colours)
    out.image (B, 3, H, W), out.mask (B, 1, H, W), out.tri_id (B, H, W)
    visible = renderer.vertex_visibility(vertices, camera, out.fragments)  # (B, V) bool
"""

from .cameras import PerspectiveCamera, head_camera
from .rasterize import Fragments, RasterSettings, rasterize
from .renderer import Renderer, RenderResult, RenderSettings
from .shading import SH_CONSTANTS, default_light, sh_basis, sh_shading, vertex_normals
from .visibility import vertex_visibility

__all__ = [
    "Fragments",
    "PerspectiveCamera",
    "RasterSettings",
    "RenderResult",
    "RenderSettings",
    "Renderer",
    "SH_CONSTANTS",
    "default_light",
    "head_camera",
    "rasterize",
    "sh_basis",
    "sh_shading",
    "vertex_normals",
    "vertex_visibility",
]

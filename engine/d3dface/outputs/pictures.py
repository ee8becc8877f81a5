"""Pictures of heads: shaded previews from chosen views, and labelled contact-sheet grids."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..atomic import write_bytes_atomic
from ..errors import OutputError
from ..head_model.lbs import axis_angle_to_matrix
from ..render import Renderer, default_light, head_camera

VIEW_YAW_DEG = {"front": 0.0, "three_quarter": 35.0, "side": 90.0}
SKIN = (0.80, 0.66, 0.58)


@torch.no_grad()
def render_views(vertices: np.ndarray | torch.Tensor, faces: np.ndarray, views=("front", "side"), size: int = 256,
                 colors: np.ndarray | None = None, head_size: float = 0.27, centre=None) -> np.ndarray:
    """Shaded previews. vertices (N, V, 3) metres (FLAME axes); colors (N or 1, V, 3) in [0, 1] or None
    (skin tone). Returns (N, len(views), size, size, 3) uint8 RGB on a light grey background.
    Each head is turned about the vertical axis through its bounding-box centre, or through
    ``centre`` (3,) metres, which then sits in the middle of the picture (a close-up with a small
    ``head_size``, the metres the picture spans)."""
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    N, V = v.shape[:2]
    if centre is None:
        centre = 0.5 * (v.amin(1, keepdim=True) + v.amax(1, keepdim=True))
    else:
        centre = torch.as_tensor(np.asarray(centre), dtype=torch.float32).reshape(1, 1, 3)
    renderer = Renderer(faces)
    out = np.zeros((N, len(views), size, size, 3), np.uint8)
    col = torch.tensor(SKIN).expand(1, V, 3) if colors is None else torch.as_tensor(np.asarray(colors), dtype=torch.float32)
    for j, view in enumerate(views):
        yaw = math.radians(VIEW_YAW_DEG[view] if isinstance(view, str) else float(view))
        R = axis_angle_to_matrix(torch.tensor([[0.0, yaw, 0.0]]))[0]
        turned = (v - centre) @ R.T
        cam = head_camera(size, batch=N, head_size=head_size)
        res = renderer.render(turned, cam, light=default_light(N), vertex_colors=col.expand(N, V, 3),
                              background=torch.full((1, 3, size, size), 0.93))
        img = res.image.clamp(0, 1).permute(0, 2, 3, 1).numpy()
        out[:, j] = (img * 255 + 0.5).astype(np.uint8)
    return out


def label(image: np.ndarray, text: str, scale: float = 0.4) -> np.ndarray:
    """Write ``text`` in the top-left corner of an RGB uint8 image (copy)."""
    img = np.ascontiguousarray(image.copy())
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return img


def grid(tiles: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Rows of equally sized RGB tiles -> one image (short rows padded with white)."""
    h, w = tiles[0][0].shape[:2]
    cols = max(len(r) for r in tiles)
    sheet = np.full((len(tiles) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            sheet[y:y + h, x:x + w] = tile
    return sheet


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode PNG for {path}")
    return write_bytes_atomic(path, buf.tobytes())

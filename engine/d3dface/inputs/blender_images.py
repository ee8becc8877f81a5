"""Images that come from Blender, turned into PNG files the engine reads.

Two sources: an image of the .blend sent as its ``Image.pixels`` (an ``.npy`` of (H, W, C)
floats in 0..1, C = 1, 3 or 4, bottom row first, as Blender stores them), or an ordinary
image file. Two results: the picture itself (RGB), or the painted mask.

The painted mask: the user erases alpha (brush blend "Erase Alpha") over what hides the face.
A pixel whose alpha is below half of full scale is erased, hence occluded: white (255) in the
mask, everything else black (0). One rule for both sources: ``alpha < 0.5`` in float pixels,
``alpha < 128`` in 8-bit ones. An image without alpha is fully opaque (nothing occluded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import InputFileError

ERASED_BELOW = 0.5  # alpha (as a fraction of full scale) below which a pixel counts as erased


def read_blender_pixels(path) -> np.ndarray:
    """(H, W, C) float pixels in 0..1, top row first, from an ``.npy`` of Blender pixels or an image file."""
    if str(path).lower().endswith(".npy"):
        try:
            px = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputFileError(f"cannot read the image pixels {path}: {exc}") from None
        if px.ndim != 3 or px.shape[2] not in (1, 3, 4) or px.size == 0:
            raise InputFileError(f"image pixels {path} have shape {px.shape}, expected (H, W, 1|3|4)")
        return px[::-1]  # Blender stores the bottom row first
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"), np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read the image {path}: {exc}") from None


def erased_mask(pixels: np.ndarray) -> np.ndarray:
    """(H, W) uint8: 255 where the alpha of float ``pixels`` (H, W, C) is erased (below
    ``ERASED_BELOW``), else 0; pixels without an alpha channel are opaque."""
    if pixels.shape[2] != 4:
        return np.zeros(pixels.shape[:2], np.uint8)
    return np.where(pixels[..., 3] < ERASED_BELOW, 255, 0).astype(np.uint8)


def blender_image_to_png(path, out: Path, mask_from_alpha: bool = False) -> Path:
    """Write ``path`` (Blender pixels ``.npy`` or an image file) as the PNG ``out``: the RGB
    picture, or with ``mask_from_alpha`` the painted mask (erased alpha = occluded = white)."""
    from PIL import Image

    px = read_blender_pixels(path)
    if mask_from_alpha:
        img = Image.fromarray(erased_mask(px), "L")
    else:
        rgb = np.repeat(px, 3, 2) if px.shape[2] == 1 else px[..., :3]
        img = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    return write_atomic(out, lambda p: img.save(p))

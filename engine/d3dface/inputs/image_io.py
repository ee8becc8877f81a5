"""Load any image a user may give as RGB uint8 (H, W, 3).

Handles EXIF orientation, grayscale, RGBA / LA / palette with transparency (composited
onto grey), 16-bit and float images, CMYK JPEGs and the first frame of animated GIFs.
Empty, truncated, non-image, too small or absurdly large files give one-line
``InputFileError``s.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputFileError
from .settings import ImageSettings

_GIF_MAGIC = (b"GIF87a", b"GIF89a")


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if a.dtype in (np.int8, np.int16, np.int32, np.uint32, np.int64):
        info = np.iinfo(a.dtype)
        lo, hi = max(info.min, 0), info.max
        return np.clip((a.astype(np.float64) - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float32))
        scale = 255.0 if a.max(initial=0.0) <= 1.0 + 1e-6 else 1.0
        return np.clip(a * scale + 0.5, 0, 255).astype(np.uint8)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    raise InputFileError(f"unsupported pixel type {a.dtype}")


def _composite(rgb: np.ndarray, alpha: np.ndarray, background: int) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = rgb.astype(np.float32) * a + float(background) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def array_to_rgb(a: np.ndarray, settings: ImageSettings | None = None, bgr: bool = False) -> np.ndarray:
    """Any numeric (H, W), (H, W, 1/2/3/4) array as RGB uint8; ``bgr`` says channel order is BGR(A)."""
    settings = settings or ImageSettings()
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        g = _to_uint8(a)
        return np.repeat(g[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (2, 3, 4):
        raise InputFileError(f"not an image array: shape {a.shape}")
    a = _to_uint8(a)
    if a.shape[2] == 2:  # gray + alpha
        return np.repeat(_composite(a[..., :1], a[..., 1], settings.alpha_background), 3, axis=2)
    rgb = a[..., 2::-1] if bgr else a[..., :3]
    if a.shape[2] == 4:
        return _composite(rgb, a[..., 3], settings.alpha_background)
    return np.ascontiguousarray(rgb)


def _check_size(h: int, w: int, name: str, settings: ImageSettings) -> None:
    if min(h, w) < settings.min_side:
        raise InputFileError(f"{name} is too small ({w}x{h} px); a face needs at least {settings.min_side} px")
    if h * w > settings.max_pixels:
        raise InputFileError(
            f"{name} is too large ({w}x{h} px, over {settings.max_pixels // 1_000_000} megapixels); downscale it first"
        )


def _decode_with_pillow(data: bytes, name: str, settings: ImageSettings) -> np.ndarray | None:
    try:
        from PIL import Image, ImageOps
    except ImportError:  # pillow is optional: opencv covers the common formats
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            _check_size(h, w, name, settings)
            im.seek(0)  # first frame of animations
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return array_to_rgb(np.asarray(im).astype(np.uint16 if im.mode != "I" else np.int32), settings)
            if im.mode == "F":
                return array_to_rgb(np.asarray(im), settings)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            return array_to_rgb(np.asarray(im), settings)
    except InputFileError:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure means "cannot decode"
        return None


def _decode_with_opencv(data: bytes, name: str, settings: ImageSettings) -> np.ndarray | None:
    buf = np.frombuffer(data, np.uint8)
    raw = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None
    _check_size(raw.shape[0], raw.shape[1], name, settings)
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        return array_to_rgb(raw, settings, bgr=True)
    # IMREAD_COLOR applies EXIF orientation and converts gray/CMYK; ANYDEPTH keeps 16-bit precision.
    oriented = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if oriented is None:
        oriented = raw
    return array_to_rgb(oriented, settings, bgr=oriented.ndim == 3)


def load_image(source, settings: ImageSettings | None = None) -> np.ndarray:
    """An image file path, encoded bytes, or an array, as RGB uint8 (H, W, 3).

    Arrays are taken as RGB(A) (or gray) in any numeric type; files are decoded by
    opencv, or by Pillow (when installed) for GIF and what opencv cannot read.
    """
    settings = settings or ImageSettings()
    if isinstance(source, np.ndarray):
        if source.size == 0:
            raise InputFileError("empty image array")
        out = array_to_rgb(source, settings)
        _check_size(out.shape[0], out.shape[1], "image", settings)
        return out
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "image data"
    else:
        path = Path(os.fspath(source)).expanduser()
        name = str(path)
        if not path.exists():
            raise InputFileError(f"image not found: {path}")
        if path.is_dir():
            raise InputFileError(f"image path is a folder: {path}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise InputFileError(f"{name} is empty (0 bytes)")
    if data[:2] == b"\xff\xd8" and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        # the last scan (after any EXIF thumbnail) has no end-of-image marker
        raise InputFileError(f"{name} is a truncated JPEG (the file ends before the image does)")
    out = None
    if data[:6] in _GIF_MAGIC:
        out = _decode_with_pillow(data, name, settings)
    if out is None:
        out = _decode_with_opencv(data, name, settings)
    if out is None:
        out = _decode_with_pillow(data, name, settings)
    if out is None:
        raise InputFileError(f"{name} is not a readable image (unknown format, or truncated/corrupt)")
    return out

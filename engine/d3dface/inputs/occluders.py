"""Synthetic occluders of the paper's three types: glasses, face masks, random objects.

Each is placed from 68 iBUG landmarks (so a renderer of synthetic heads can place one
on its projected landmarks), drawn with a hard-edged alpha so that its mask is exact,
and is fully determined by ``seed``: shape, size, colour and texture (crops of the
photos in ``shared/images/backgrounds`` when given, procedural otherwise) all come
from ``numpy.random.default_rng([seed, kind])``.

``apply_occluder`` returns the occluded image and a mask equal to exactly the pixels it
changed; ``hidden_vertices`` turns the mask into a per-vertex "hidden" flag for
projected mesh vertices (3D metrics, Mesh-VAE training masks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputFileError
from ..paths import find_assets_dir
from .landmarks_base import inter_ocular_distance

KINDS = ("glasses", "face_mask", "object")
_SHIFT = 4                   # cv2 sub-pixel bits for polygon vertices
_ONE = float(1 << _SHIFT)


@dataclass
class OccluderLayer:
    """An occluder drawn on an (H, W) canvas: colour, opacity and its exact mask."""

    kind: str
    seed: int
    rgb: np.ndarray     # (H, W, 3) uint8
    alpha: np.ndarray   # (H, W) float32 in [0, 1]; 0 outside the occluder
    params: dict

    @property
    def mask(self) -> np.ndarray:
        return self.alpha > 0


@dataclass
class Occluded:
    """An image with an occluder: ``mask`` is True exactly where ``image`` differs from the input."""

    image: np.ndarray   # (H, W, 3) uint8
    mask: np.ndarray    # (H, W) bool
    layer: OccluderLayer


# --------------------------------------------------------------------------- textures

def default_texture_dir() -> Path | None:
    assets = find_assets_dir(required=False)
    if assets is None:
        return None
    d = assets.parent / "images" / "backgrounds"
    return d if d.is_dir() else None


def load_textures(folder: str | os.PathLike | None = None, max_side: int = 512) -> list[np.ndarray]:
    """RGB uint8 textures from an image folder (sorted by name; default: shared/images/backgrounds)."""
    from .image_io import load_image

    folder = Path(folder) if folder is not None else default_texture_dir()
    if folder is None:
        return []
    if not folder.is_dir():
        raise InputFileError(f"texture folder not found: {folder}")
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
            img = load_image(p)
            s = max_side / max(img.shape[:2])
            if s < 1:
                img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            out.append(img)
    return out


def _procedural_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth coloured noise with stripes: a texture when no photos are available."""
    small = rng.random((max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    base = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f, ang = rng.uniform(0.05, 0.4), rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin(f * (xx * np.cos(ang) + yy * np.sin(ang)))
    col = rng.uniform(0, 1, 3).astype(np.float32)
    out = 0.5 * base + 0.5 * stripes[..., None] * col
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def _texture_patch(rng: np.random.Generator, textures, h: int, w: int) -> np.ndarray:
    """An (h, w, 3) uint8 patch: a random crop of a random texture, rescaled, flipped, colour-jittered."""
    h, w = max(h, 1), max(w, 1)
    if not textures:
        return _procedural_texture(rng, h, w)
    tex = textures[int(rng.integers(len(textures)))]
    s = rng.uniform(0.5, 1.5) * max(h / tex.shape[0], w / tex.shape[1], 0.25)
    tex = cv2.resize(tex, (max(1, int(tex.shape[1] * s)), max(1, int(tex.shape[0] * s))), interpolation=cv2.INTER_AREA)
    reps = (int(np.ceil(h / tex.shape[0])) + 1, int(np.ceil(w / tex.shape[1])) + 1, 1)
    tiled = np.tile(tex, reps)
    y0 = int(rng.integers(0, tiled.shape[0] - h + 1))
    x0 = int(rng.integers(0, tiled.shape[1] - w + 1))
    patch = tiled[y0:y0 + h, x0:x0 + w].astype(np.float32)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    gain = rng.uniform(0.6, 1.3, 3).astype(np.float32)
    return np.clip(patch * gain, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- geometry helpers

def _face_frame(points68: np.ndarray):
    p = np.asarray(points68, np.float64)
    eye_r, eye_l = p[36:42].mean(0), p[42:48].mean(0)
    axis = eye_l - eye_r
    iod = inter_ocular_distance(p)
    if not np.isfinite(iod) or iod < 2:
        raise InputFileError("landmarks too small or degenerate to place an occluder")
    ux = axis / max(np.linalg.norm(axis), 1e-9)      # image direction of the face's x axis
    uy = np.array([-ux[1], ux[0]])                   # face "down" in the image
    return p, eye_r, eye_l, iod, ux, uy


def _local(centre, ux, uy, xy: np.ndarray) -> np.ndarray:
    """Local (x, y) offsets in the face frame -> image points."""
    xy = np.asarray(xy, np.float64)
    return centre + xy[..., :1] * ux + xy[..., 1:2] * uy


def _poly(canvas: np.ndarray, pts: np.ndarray, value=1) -> None:
    cv2.fillPoly(canvas, [np.round(np.asarray(pts) * _ONE).astype(np.int32)], value, cv2.LINE_8, _SHIFT)


def _line(canvas: np.ndarray, a, b, thickness: float, value=1) -> None:
    a = tuple(int(v) for v in np.round(np.asarray(a) * _ONE))
    b = tuple(int(v) for v in np.round(np.asarray(b) * _ONE))
    cv2.line(canvas, a, b, value, max(1, int(round(thickness))), cv2.LINE_8, _SHIFT)


def _superellipse(a: float, b: float, n: float, taper: float, k: int = 64) -> np.ndarray:
    """(k, 2) outline, half-axes a, b, exponent n (2 ellipse ... 6 rounded rectangle);
    ``taper`` > 0 narrows the lower half (aviator), < 0 the upper half."""
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / n)
    y = b * np.sign(s) * np.abs(s) ** (2 / n)
    x = x * (1 - taper * np.clip(y / b, 0, 1) * 0.35)
    return np.stack([x, y], 1)


def _random_colour(rng, palette=None) -> np.ndarray:
    if palette is not None and rng.random() < 0.6:
        return np.asarray(palette[int(rng.integers(len(palette)))], np.float32)
    return rng.uniform(0, 255, 3).astype(np.float32)


# --------------------------------------------------------------------------- the three types

def _glasses(rng, hw, points68, textures) -> tuple[np.ndarray, np.ndarray, dict]:
    h, w = hw
    p, eye_r, eye_l, iod, ux, uy = _face_frame(points68)
    a = iod * rng.uniform(0.2, 0.29)
    b = a * rng.uniform(0.55, 0.95)
    n = rng.uniform(2.0, 6.0)
    taper = rng.uniform(-0.3, 0.8)
    drop = iod * rng.uniform(-0.02, 0.06)
    spread = iod * rng.uniform(-0.02, 0.03)
    t = max(1.0, iod * rng.uniform(0.02, 0.06))
    lens_alpha = rng.uniform(0.3, 0.95)
    lens_col = _random_colour(rng, [(20, 20, 25), (40, 30, 20), (30, 45, 35), (60, 60, 70), (90, 60, 30)])
    frame_col = _random_colour(rng, [(10, 10, 10), (60, 35, 20), (180, 150, 60), (120, 120, 130), (150, 20, 20)])
    textured_frame = bool(rng.random() < 0.35)

    lens = np.zeros(hw, np.uint8)
    frame = np.zeros(hw, np.uint8)
    outline = _superellipse(a, b, n, taper)
    centres = []
    for eye, sign in ((eye_r, -1.0), (eye_l, 1.0)):
        c = eye + uy * drop + ux * sign * spread
        centres.append(c)
        # mirror the outline for the left lens so both taper symmetrically
        pts = _local(c, ux, uy, outline * np.array([sign, 1.0]))
        _poly(lens, pts)
        cv2.polylines(frame, [np.round(pts * _ONE).astype(np.int32)], True, 1, max(1, int(round(t))), cv2.LINE_8, _SHIFT)
    # bridge between the inner tops of the lenses, temples toward the ears (jaw 0 / 16)
    inner_r = _local(centres[0], ux, uy, np.array([a * 0.95, -b * 0.3]))
    inner_l = _local(centres[1], ux, uy, np.array([-a * 0.95, -b * 0.3]))
    _line(frame, inner_r, inner_l, t)
    outer_r = _local(centres[0], ux, uy, np.array([-a, -b * 0.2]))
    outer_l = _local(centres[1], ux, uy, np.array([a, -b * 0.2]))
    ear_r = p[0] + (p[1] - p[0]) * rng.uniform(0.0, 0.5)
    ear_l = p[16] + (p[15] - p[16]) * rng.uniform(0.0, 0.5)
    _line(frame, outer_r, ear_r, t)
    _line(frame, outer_l, ear_l, t)

    alpha = np.where(lens > 0, lens_alpha, 0.0).astype(np.float32)
    alpha[frame > 0] = 1.0
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = lens_col
    if textured_frame:
        fr = _texture_patch(rng, textures, h, w).astype(np.float32) * 0.5 + frame_col * 0.5
    else:
        fr = np.broadcast_to(frame_col, (h, w, 3))
    rgb[frame > 0] = fr[frame > 0]
    # a soft reflection across the lenses
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = (xx - eye_r[0]) * ux[0] + (yy - eye_r[1]) * ux[1]
    rgb += (lens > 0)[..., None] * (frame == 0)[..., None] * (40 * np.exp(-((d % (1.2 * a)) / (0.3 * a)) ** 2))[..., None]
    params = dict(lens_half_width=a, lens_half_height=b, exponent=n, taper=taper, frame_px=t,
                  lens_alpha=float(lens_alpha), textured_frame=textured_frame)
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha, params


def _face_mask(rng, hw, points68, textures) -> tuple[np.ndarray, np.ndarray, dict]:
    h, w = hw
    p, eye_r, eye_l, iod, ux, uy = _face_frame(points68)
    centre = p[27:36].mean(0)
    grow = iod * rng.uniform(0.0, 0.08)
    chin_drop = iod * rng.uniform(0.0, 0.15)
    top_at = rng.uniform(0.25, 0.75)                      # between nose points 28 and 30
    nose_top = p[28] + (p[30] - p[28]) * top_at
    jaw = p[1:16].copy()
    out = jaw - centre
    jaw = jaw + grow * out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    jaw[4:11] += uy * chin_drop * np.sin(np.linspace(0.3, np.pi - 0.3, 7))[:, None]
    # the top edge: from the cheeks (jaw 1 / 15) up over the nose, a smooth arch
    k = 9
    s = np.linspace(0, 1, k)[:, None]
    left_end, right_end = jaw[-1], jaw[0]
    top = right_end + (left_end - right_end) * s
    lift = np.sin(np.pi * s) ** rng.uniform(0.6, 1.5)
    top_peak = nose_top - ((right_end + left_end) / 2)
    top = top + lift * (top_peak @ uy) * uy
    poly = np.concatenate([jaw, top[::-1][1:-1]], 0)
    shape = np.zeros(hw, np.uint8)
    _poly(shape, poly)
    loops = np.zeros(hw, np.uint8)
    t_loop = max(1.0, iod * rng.uniform(0.015, 0.03))
    for corner, ear in ((jaw[0], p[0]), (jaw[-1], p[16]), (jaw[3], p[0] - uy * iod * 0.05), (jaw[-4], p[16] - uy * iod * 0.05)):
        _line(loops, corner, ear, t_loop)
    style = ["plain", "pleated", "textured"][int(rng.integers(3))]
    col = _random_colour(rng, [(150, 190, 220), (235, 235, 235), (30, 30, 35), (220, 170, 190), (90, 120, 160)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    v = (xx - centre[0]) * uy[0] + (yy - centre[1]) * uy[1]     # "down" coordinate
    u = (xx - centre[0]) * ux[0] + (yy - centre[1]) * ux[1]
    shade = 1.0 - 0.25 * np.clip(np.abs(u) / (1.2 * iod), 0, 1) ** 2
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = col
    if style == "pleated":
        period = iod * rng.uniform(0.18, 0.3)
        rgb *= (1.0 - 0.18 * (np.cos(2 * np.pi * v / period) > 0.6))[..., None]
    elif style == "textured":
        rgb = 0.45 * rgb + 0.55 * _texture_patch(rng, textures, h, w).astype(np.float32)
    rgb *= shade[..., None]
    rgb[loops > 0] = _random_colour(rng, [(240, 240, 240), (30, 30, 30)]) if rng.random() < 0.8 else col
    alpha = ((shape > 0) | (loops > 0)).astype(np.float32)
    params = dict(style=style, grow=grow, chin_drop=chin_drop, top_at=float(top_at), loop_px=t_loop)
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha, params


def _object(rng, hw, points68, textures) -> tuple[np.ndarray, np.ndarray, dict]:
    h, w = hw
    p, eye_r, eye_l, iod, ux, uy = _face_frame(points68)
    lo, hi = p.min(0), p.max(0)
    size = float(max(hi - lo))
    # centre: near a random landmark (so it lands on the face), jittered
    c = p[int(rng.integers(17, 68))] + rng.normal(0, 0.12 * size, 2)
    r = size * rng.uniform(0.2, 0.4)
    shape = ["blob", "rectangle", "ellipse", "bar"][int(rng.integers(4))]
    rot = rng.uniform(0, np.pi)
    R = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    if shape == "blob":
        k = int(rng.integers(10, 24))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * np.clip(1 + np.convolve(np.r_[rng.normal(0, 0.35, k)] , np.ones(3) / 3, "same"), 0.4, 1.6)
        pts = np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
    elif shape == "rectangle":
        ar = rng.uniform(0.5, 1.0)
        pts = np.array([[-r, -r * ar], [r, -r * ar], [r, r * ar], [-r, r * ar]])
    elif shape == "ellipse":
        pts = _superellipse(r, r * rng.uniform(0.4, 1.0), 2.0, 0.0)
    else:  # a long bar (a finger, a pen, a strap)
        pts = np.array([[-1.6 * r, -0.22 * r], [1.6 * r, -0.22 * r], [1.6 * r, 0.22 * r], [-1.6 * r, 0.22 * r]])
    pts = pts @ R.T + c
    m = np.zeros(hw, np.uint8)
    _poly(m, pts)
    rgb = _texture_patch(rng, textures, h, w).astype(np.float32)
    if rng.random() < 0.3:   # sometimes a flat, shaded colour instead of a photo texture
        rgb = 0.3 * rgb + 0.7 * _random_colour(rng)
    alpha = (m > 0).astype(np.float32)
    params = dict(shape=shape, radius=r, rotation=float(rot), centre=c.tolist())
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha, params


_MAKERS = {"glasses": _glasses, "face_mask": _face_mask, "object": _object}


def occluder_layer(size_hw, points68: np.ndarray, kind: str, seed: int, textures=None) -> OccluderLayer:
    """An occluder of ``kind`` placed from iBUG-68 ``points68`` (px) on an (H, W) canvas.

    ``kind`` is "glasses", "face_mask", "object" or "random" (one of the three, from the seed).
    ``textures``: list of RGB uint8 images (``load_textures()``); None or [] uses procedural ones.
    """
    seed = int(seed)
    if kind == "random":
        kind = KINDS[int(np.random.default_rng([seed, 99]).integers(len(KINDS)))]
    if kind not in _MAKERS:
        raise InputFileError(f"unknown occluder type {kind!r} (choose from {', '.join(KINDS)}, random)")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    h, w = int(size_hw[0]), int(size_hw[1])
    rgb, alpha, params = _MAKERS[kind](rng, (h, w), np.asarray(points68, np.float64), textures or [])
    return OccluderLayer(kind=kind, seed=seed, rgb=rgb, alpha=alpha, params=params)


def composite(image: np.ndarray, layer: OccluderLayer) -> Occluded:
    """``image`` with ``layer`` drawn on it; the returned mask is exactly the changed pixels.

    A covered pixel whose colour happens to come out unchanged is nudged by one level in
    its first channel, so ``mask == (out != image).any(-1)`` always holds.
    """
    img = np.asarray(image)
    if img.shape[:2] != layer.alpha.shape:
        raise InputFileError(f"occluder is {layer.alpha.shape} but the image is {img.shape[:2]}")
    a = layer.alpha[..., None]
    out = np.clip(img.astype(np.float32) * (1 - a) + layer.rgb.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    mask = layer.mask
    same = mask & ~(out != img).any(-1)
    if same.any():
        ch = out[..., 0]
        ch[same] = np.where(ch[same] < 255, ch[same] + 1, 254)
    out[~mask] = img[~mask]
    return Occluded(image=out, mask=mask.copy(), layer=layer)


def apply_occluder(image: np.ndarray, points68: np.ndarray, kind: str, seed: int, textures=None) -> Occluded:
    """Draw a seeded occluder of ``kind`` on ``image`` (RGB uint8) placed from ``points68``."""
    layer = occluder_layer(image.shape[:2], points68, kind, seed, textures)
    return composite(image, layer)


def hidden_vertices(
    projected: np.ndarray,
    mask: np.ndarray,
    visible: np.ndarray | None = None,
    outside_is_hidden: bool = True,
) -> np.ndarray:
    """(V,) bool "hidden" flag for mesh vertices projected to ``projected`` (V, 2) px (x, y).

    A vertex is hidden when its pixel (pixel (i, j) covers x in [j, j+1), y in [i, i+1))
    is in the occluder ``mask`` (H, W) bool, when ``visible`` (V,) bool says it is not
    visible (back-facing or self-occluded), or, with ``outside_is_hidden``, when it
    projects outside the image.
    """
    xy = np.asarray(projected, np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"projected must be (V, 2), got {xy.shape}")
    m = np.asarray(mask, bool)
    h, w = m.shape
    ij = np.floor(xy).astype(np.int64)
    finite = np.isfinite(xy).all(1)
    inside = finite & (ij[:, 0] >= 0) & (ij[:, 1] >= 0) & (ij[:, 0] < w) & (ij[:, 1] < h)
    hidden = np.zeros(len(xy), bool)
    hidden[inside] = m[ij[inside, 1], ij[inside, 0]]
    if outside_is_hidden:
        hidden |= ~inside
    if visible is not None:
        vis = np.asarray(visible, bool)
        if vis.shape != (len(xy),):
            raise ValueError(f"visible must be ({len(xy)},), got {vis.shape}")
        hidden |= ~vis
    return hidden

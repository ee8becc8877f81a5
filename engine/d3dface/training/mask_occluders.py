"""Richer synthetic occluders for TRAINING an occlusion-segmentation network.

The evaluation generator (``d3dface.inputs.occluders``: glasses, face_mask, object)
stays the evaluation set. This module draws the kinds of occluders real test photos
have, so that a network learns what they look like: skin-coloured hands, hair bangs,
beards, dark sunglasses, clear glasses (the lenses count as occluder, as in hand-drawn
masks), pleated surgical / KN95 masks, cups and mugs, scarves.

``training_layer(image, points68, kind, rng)`` returns an ``OccluderLayer`` on the
image's canvas: ``alpha >= 0.5`` is the label, ``alpha`` (1.0 inside, a 1-2 px soft
fringe) is what to composite with (``d3dface.inputs.occluders.composite``).
"See-through" parts (clear lenses, drinking glasses, stubble) have alpha 1 and an ``rgb``
made mostly of the image itself, so they are labelled occluded yet look transparent.
All sizes scale with the inter-ocular distance, so any resolution works; landmarks may
lie near or outside the border.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ..errors import InputFileError
from ..inputs.occluders import (
    OccluderLayer,
    _face_frame,
    _line,
    _local,
    _poly,
    _random_colour,
    _superellipse,
    _texture_patch,
    load_textures,
)

__all__ = ["TRAIN_KINDS", "training_layer", "load_textures", "face_hull_mask"]

TRAIN_KINDS: tuple[str, ...] = ("hand", "hair", "beard", "sunglasses", "clear_glasses", "surgical_mask", "cup", "scarf")

# share of the face hull that a kind's label should cover (re-drawn a few times otherwise)
_COVER = {
    "hand": (0.10, 0.45), "hair": (0.04, 0.55), "beard": (0.03, 0.55), "sunglasses": (0.06, 0.5),
    "clear_glasses": (0.06, 0.5), "surgical_mask": (0.2, 0.66), "cup": (0.08, 0.6), "scarf": (0.15, 0.65),
}
_TRIES = 6


# --------------------------------------------------------------------------- small helpers

@lru_cache(maxsize=8)
def _grid_cached(h: int, w: int):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


def _uv(hw, origin, ax, ay):
    """Per-pixel coordinates in a frame at ``origin`` with unit axes ``ax`` (u) and ``ay`` (v)."""
    xx, yy = _grid_cached(int(hw[0]), int(hw[1]))
    dx, dy = xx - np.float32(origin[0]), yy - np.float32(origin[1])
    return dx * np.float32(ax[0]) + dy * np.float32(ax[1]), dx * np.float32(ay[0]) + dy * np.float32(ay[1])


def _rot(v, ang: float) -> np.ndarray:
    c, s = np.cos(ang), np.sin(ang)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _perp(v) -> np.ndarray:
    return np.array([-v[1], v[0]])


def _chaikin(pts: np.ndarray, it: int = 2, closed: bool = False) -> np.ndarray:
    p = np.asarray(pts, np.float64)
    for _ in range(it):
        if closed:
            q = np.roll(p, -1, 0)
            p = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], 1).reshape(-1, 2)
        else:
            a, b = p[:-1], p[1:]
            mid = np.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], 1).reshape(-1, 2)
            p = np.concatenate([p[:1], mid, p[-1:]], 0)
    return p


def _bezier(a, c, b, k: int = 12) -> np.ndarray:
    t = np.linspace(0, 1, k)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t ** 2 * b


def _polyline(canvas, pts, thickness, value=1, closed=False) -> None:
    pts = np.asarray(pts)
    for i in range(len(pts) - 1):
        _line(canvas, pts[i], pts[i + 1], thickness, value)
    if closed:
        _line(canvas, pts[-1], pts[0], thickness, value)


def _noise(rng, hw, scale_px: float) -> np.ndarray:
    """Smooth Gaussian noise (std ~1) with features about ``scale_px`` across."""
    h, w = hw
    s = max(scale_px, 1.0)
    small = rng.standard_normal((int(np.ceil(h / s)) + 2, int(np.ceil(w / s)) + 2)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC if s > 1.5 else cv2.INTER_LINEAR)
    return big / max(float(big.std()), 1e-6)


def _streaks(rng, hw, angle: float, length_px: float) -> np.ndarray:
    """Fine noise smeared along ``angle`` (image radians): hair-like streaks, std ~1."""
    n = rng.standard_normal(hw).astype(np.float32)
    k = max(3, int(round(length_px)) | 1)
    ker = np.zeros((k, k), np.float32)
    c = k // 2
    d = np.array([np.cos(angle), np.sin(angle)]) * c
    cv2.line(ker, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))), 1.0, 1)
    ker /= ker.sum()
    out = cv2.filter2D(n, -1, ker, borderType=cv2.BORDER_REFLECT)
    return out / max(float(out.std()), 1e-6)


def _height(mask_u8: np.ndarray, radius_px: float) -> np.ndarray:
    """A rounded height map of a part: 0 at its edge, 1 from ``radius_px`` inside (a cylinder)."""
    dt = cv2.distanceTransform(mask_u8, cv2.DIST_L2, 3)
    t = np.clip(dt / max(radius_px, 0.5), 0, 1)
    return np.sqrt(1 - (1 - t) ** 2)


def _u8(hw) -> np.ndarray:
    return np.zeros((int(hw[0]), int(hw[1])), np.uint8)


def face_hull_mask(hw, points68: np.ndarray) -> np.ndarray:
    """(H, W) bool: the convex hull of the 68 landmarks."""
    m = _u8(hw)
    hull = cv2.convexHull(np.asarray(points68, np.float32)).reshape(-1, 2)
    _poly(m, hull)
    return m > 0


def _hsv_jitter(rgb, rng, dh=3.0, ds=(0.9, 1.12), dv=(0.88, 1.1)) -> np.ndarray:
    px = np.clip(np.asarray(rgb, np.float32).reshape(1, 1, 3), 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(px, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-dh, dh)) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*ds), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(*dv), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL).reshape(3).astype(np.float32)


def _cheek_points(p) -> list[np.ndarray]:
    return [0.45 * p[1] + 0.55 * p[31], 0.45 * p[15] + 0.55 * p[35]]


def skin_colour(image: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """The face's skin colour (RGB float): the median of patches at both cheeks."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    p, _, _, iod, _, _ = _face_frame(points68)
    r = max(1, int(round(0.08 * iod)))
    pix = []
    for c in _cheek_points(p):
        x, y = int(round(c[0])), int(round(c[1]))
        x0, x1, y0, y1 = max(0, x - r), min(w, x + r + 1), max(0, y - r), min(h, y + r + 1)
        if x1 > x0 and y1 > y0:
            pix.append(img[y0:y1, x0:x1].reshape(-1, 3))
    pix = np.concatenate(pix, 0) if pix else np.zeros((0, 3))
    if len(pix) < 4:
        hull = face_hull_mask((h, w), p)
        pix = img[hull]
    if len(pix) < 4:
        return np.array([190.0, 150.0, 125.0], np.float32)
    return np.median(pix.astype(np.float32), 0)


def _finish(rng, rgb: np.ndarray, label: np.ndarray, iod: float, grain: bool = True):
    """Soft 1-2 px fringe around the exact ``label`` and a camera-like softening of ``rgb``.

    Returns (rgb uint8, alpha float32) with ``alpha >= 0.5`` exactly on ``label``.
    """
    s = max(iod / 40.0, 0.3)
    sig = 0.5 * s
    m = label.astype(np.float32)
    b = cv2.GaussianBlur(m, (0, 0), sig)
    alpha = np.where(label, np.maximum(b, 0.55), np.minimum(b, 0.45)).astype(np.float32)
    alpha[alpha < 0.03] = 0.0
    # colours for the fringe just outside: a normalised blur of the occluder's own colours
    num = cv2.GaussianBlur(rgb * m[..., None], (0, 0), 2 * sig)
    den = cv2.GaussianBlur(m, (0, 0), 2 * sig)
    out = (~label) & (alpha > 0) & (den > 1e-4)
    rgb = rgb.copy()
    rgb[out] = num[out] / den[out][:, None]
    if rng.random() < 0.75:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.3, 0.75) * s)
    if grain:
        rgb = rgb + rng.normal(0, rng.uniform(0.0, 3.5), rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha


def _face_light(image, points68) -> float:
    """A mild exposure factor so occluders are not brighter than a dark photo's face."""
    sk = skin_colour(image, points68)
    lum = float(0.3 * sk[0] + 0.59 * sk[1] + 0.11 * sk[2])
    return float(np.clip((lum / 150.0) ** 0.5, 0.6, 1.15))


# --------------------------------------------------------------------------- skin parts (hands)

class _Skin:
    """Accumulates skin parts (painter's order) into a mask, a height map and line marks."""

    def __init__(self, hw):
        self.hw = hw
        self.mask = _u8(hw)
        self.height = np.zeros(hw, np.float32)
        self.creases = _u8(hw)
        self.nails = _u8(hw)

    def add(self, part: np.ndarray, radius: float) -> None:
        hgt = _height(part, radius)
        on = part > 0
        self.height[on] = hgt[on]
        self.mask |= part
        self.nails[on] = 0
        self.creases[on] = 0

    def finger(self, base, direction, length, width, rng, bend=0.0, nail=True, iod=40.0):
        segs = (0.45, 0.31, 0.24)
        pts = [np.asarray(base, np.float64)]
        d = np.asarray(direction, np.float64)
        for k, f in enumerate(segs):
            d = _rot(d, bend * (0.6 + 0.4 * k) + rng.normal(0, 0.04))
            pts.append(pts[-1] + d * length * f)
        part = _u8(self.hw)
        for k in range(3):
            _line(part, pts[k], pts[k + 1], width * (1.0 - 0.06 * k))
        self.add(part, width * 0.5)
        t = max(1.0, 0.028 * iod)
        for k in (1, 2)[int(rng.integers(2)):]:      # knuckle creases across the joints
            dk = pts[k + 1] - pts[k - 1]
            dk = _perp(dk / max(np.linalg.norm(dk), 1e-9))
            half = width * rng.uniform(0.2, 0.32)
            _line(self.creases, pts[k] - dk * half, pts[k] + dk * half, t)
        if nail:
            dd = pts[3] - pts[2]
            dd = dd / max(np.linalg.norm(dd), 1e-9)
            c = pts[3] - dd * width * 0.32
            ang = float(np.degrees(np.arctan2(dd[1], dd[0])))
            ax = (max(1, int(round(width * 0.3 * 16))), max(1, int(round(width * 0.27 * 16))))
            cv2.ellipse(self.nails, (int(round(c[0] * 16)), int(round(c[1] * 16))), ax, ang, 0, 360, 1, -1,
                        cv2.LINE_8, 4)
        return pts

    def colour(self, rng, base: np.ndarray, iod: float, light_dir) -> np.ndarray:
        h, w = self.hw
        xx, yy = _grid_cached(h, w)
        hgt = self.height
        shade = 0.55 + 0.47 * hgt
        ld = np.asarray(light_dir, np.float32)
        cy, cx = np.nonzero(self.mask)
        c0 = (np.array([cx.mean(), cy.mean()]) if len(cx) else np.array([w / 2, h / 2])).astype(np.float32)
        grad = 1.0 + 0.10 * np.clip(((xx - c0[0]) * ld[0] + (yy - c0[1]) * ld[1]) / max(iod, 1.0), -1.5, 1.5)
        blotch = 1.0 + 0.035 * _noise(rng, (h, w), 0.25 * iod)
        rgb = base[None, None, :] * (shade * grad * blotch)[..., None]
        # warmer, redder where the skin folds (creases, edges)
        red = np.array([1.04, 0.95, 0.93], np.float32)
        rgb = rgb * (1 + (red - 1) * (1 - hgt)[..., None])
        cr = self.creases > 0
        rgb[cr] *= np.array([0.9, 0.86, 0.85], np.float32)
        nl = self.nails > 0
        rgb[nl] = rgb[nl] * 0.78 + np.array([235, 200, 195], np.float32) * 0.22 * (0.85 + 0.25 * hgt[nl])[:, None]
        return rgb


def _hand_parts(sk: _Skin, rng, c, f, iod, scale, n_fingers, thumb=True, arm_dir=None, nails=True):
    """A hand: palm at ``c``, fingers along unit ``f``; forearm toward ``arm_dir``."""
    s_dir = _perp(f)
    pw, pl = 0.45 * iod * scale, 0.46 * iod * scale
    T = 1.0 if rng.random() < 0.5 else -1.0           # thumb side
    # forearm (with the palm, one part: no crease at the wrist)
    arm_dir = -f if arm_dir is None else np.asarray(arm_dir, np.float64)
    arm_dir = arm_dir / max(np.linalg.norm(arm_dir), 1e-9)
    wrist = c - f * pl * 0.85
    a_s = _perp(arm_dir)
    al = 1.8 * iod * scale
    arm = np.array([wrist + a_s * pw * 0.72, wrist - a_s * pw * 0.72,
                    wrist + arm_dir * al - a_s * pw * 0.9, wrist + arm_dir * al + a_s * pw * 0.9])
    part = _u8(sk.hw)
    _poly(part, arm)
    outline = _superellipse(pw, pl, 3.0, 0.35, 48)
    _poly(part, _local(c, s_dir, -f, outline))
    sk.add(part, pw * 0.9)
    if thumb:
        tb = c + s_dir * T * pw * 0.8 - f * pl * 0.25
        td = _rot(f, -T * rng.uniform(0.5, 1.1))
        sk.finger(tb, td, 0.62 * iod * scale, 0.23 * iod * scale, rng, bend=T * rng.uniform(0, 0.3),
                  nail=nails, iod=iod)
    lengths = np.array([0.74, 0.84, 0.78, 0.6]) * iod * scale
    widths = np.array([0.2, 0.21, 0.2, 0.17]) * iod * scale
    slots = np.array([0.72, 0.24, -0.24, -0.72]) * T
    visible = set(range(4))
    if n_fingers < 4:
        start = int(rng.integers(0, 4 - n_fingers + 1)) if rng.random() < 0.5 else 0
        visible = set(range(start, start + n_fingers))
    spread = rng.uniform(0.0, 0.12)
    bend = rng.uniform(-0.12, 0.12)
    order = list(range(4)) if rng.random() < 0.5 else list(range(3, -1, -1))
    for i in order:
        base = c + s_dir * slots[i] * pw + f * pl * 0.72
        d = _rot(f, -slots[i] * spread)
        if i in visible:
            sk.finger(base, d, lengths[i] * rng.uniform(0.92, 1.05), widths[i], rng, bend=bend, nail=nails, iod=iod)
        else:                                   # folded finger: a knuckle bump
            sk.finger(base, d, lengths[i] * 0.3, widths[i] * 1.05, rng, bend=0.0, nail=False, iod=iod)


def _hand(rng, image, p, textures):
    hw = image.shape[:2]
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    pose = ["mouth", "mouth", "chin", "cheek", "eye"][int(rng.integers(5))]
    side = 1.0 if rng.random() < 0.5 else -1.0
    scale = rng.uniform(0.8, 1.1)
    mouth = p[48:60].mean(0)
    if pose == "mouth":
        f = _rot(ux * side, rng.uniform(-0.4, 0.4))
        c = mouth - f * 0.1 * iod + rng.normal(0, 0.06 * iod, 2)
        arm = _rot(-f, side * rng.uniform(-1.3, -0.5))
        if np.dot(arm, uy) < 0.2:
            arm = _rot(-f, -side * rng.uniform(0.5, 1.3))
    elif pose == "chin":
        f = _rot(-uy, rng.uniform(-0.8, 0.8))
        c = p[8] + uy * 0.15 * iod + ux * rng.normal(0, 0.15 * iod)
        arm = _rot(uy, rng.uniform(-0.4, 0.4))
    elif pose == "cheek":
        cheek = _cheek_points(p)[0 if side < 0 else 1]
        f = _rot(-uy, side * rng.uniform(-0.2, 0.6))
        c = cheek + uy * 0.35 * iod + ux * side * 0.15 * iod + rng.normal(0, 0.06 * iod, 2)
        arm = _rot(uy, side * rng.uniform(0.0, 0.6))
    else:
        eye = eye_l if side > 0 else eye_r
        f = _rot(-uy, side * rng.uniform(-0.4, 0.5))
        c = eye + uy * 0.25 * iod + rng.normal(0, 0.06 * iod, 2)
        arm = _rot(uy, side * rng.uniform(0.0, 0.6))
    n_fingers = int(rng.integers(2, 5))
    sk = _Skin(hw)
    back = rng.random() < 0.65                      # back of the hand seen: nails visible
    _hand_parts(sk, rng, c, f, iod, scale, n_fingers, thumb=rng.random() < 0.7, arm_dir=arm, nails=back)
    base = _hsv_jitter(skin_colour(image, p), rng, dh=4, ds=(0.9, 1.15), dv=(0.85, 1.1))
    rgb = sk.colour(rng, base, iod, _rot(ux, rng.uniform(-np.pi, np.pi)))
    rgb_u8, alpha = _finish(rng, rgb, sk.mask > 0, iod)
    return rgb_u8, alpha, dict(pose=pose, fingers=n_fingers, scale=float(scale), back_of_hand=bool(back),
                               skin=base.tolist())


# --------------------------------------------------------------------------- hair

_HAIR = [(22, 18, 16), (48, 33, 24), (90, 60, 38), (118, 52, 26), (196, 158, 102), (150, 146, 140), (70, 48, 32)]


def _cubic(a, c1, c2, b, k: int = 16) -> np.ndarray:
    t = np.linspace(0, 1, k)[:, None]
    return (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1 + 3 * (1 - t) * t ** 2 * c2 + t ** 3 * b


def _hair(rng, image, p, textures):
    hw = image.shape[:2]
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    brow = p[17:27].mean(0)
    style = ["fringe", "side_sweep", "side_sweep", "curtain", "curtain"][int(rng.integers(5))]
    side = 1.0 if rng.random() < 0.5 else -1.0
    half_w = 0.5 * float(np.linalg.norm(p[16] - p[0]))
    top_v = -rng.uniform(0.6, 0.85) * iod                # roots, above the brows
    col = np.asarray(_HAIR[int(rng.integers(len(_HAIR)))], np.float32)
    col = _hsv_jitter(col, rng, dh=3, ds=(0.85, 1.15), dv=(0.85, 1.15))
    strands = []                                         # (root, control 1, control 2, tip) in (u, v)
    n = int(rng.integers(40, 70))
    wob = 0.12 * iod
    if style == "fringe":
        end_lo, end_hi = rng.uniform(-0.15, 0.1), rng.uniform(0.15, 0.45)
        sweep = rng.uniform(-0.5, 0.5) * iod
        lo_u, hi_u = -rng.uniform(0.8, 1.15) * half_w, rng.uniform(0.8, 1.15) * half_w
        for _ in range(n):
            u0 = rng.uniform(lo_u, hi_u)
            edge = abs(2 * (u0 - lo_u) / (hi_u - lo_u) - 1)          # longer at the sides: a rounded fringe
            v1 = (rng.uniform(end_lo, end_hi) + 0.25 * edge ** 2) * iod
            u1 = u0 + sweep * rng.uniform(0.5, 1.0) + rng.normal(0, 0.05 * iod)
            c1 = np.array([u0 + rng.normal(0, wob), top_v + (v1 - top_v) * 0.35])
            c2 = np.array([u1 - sweep * 0.3 + rng.normal(0, wob), top_v + (v1 - top_v) * 0.75])
            strands.append((np.array([u0, top_v]), c1, c2, np.array([u1, v1])))
    elif style == "side_sweep":
        part_u = side * rng.uniform(0.2, 0.6) * half_w
        far_u = -side * rng.uniform(0.7, 1.15) * half_w
        depth = rng.uniform(0.1, 0.8)                   # how far down over the far eye
        for _ in range(n):
            u0 = part_u + rng.normal(0, 0.08 * iod) - side * rng.uniform(0, 0.3) * iod
            frac = rng.uniform(0.3, 1.05)
            u1 = part_u + (far_u - part_u) * frac
            v1 = (-0.35 + (depth + 0.35) * frac ** 1.5 + rng.normal(0, 0.06)) * iod
            c1 = np.array([u0 + (u1 - u0) * rng.uniform(0.3, 0.5), top_v + rng.normal(0, 0.05 * iod)])
            c2 = np.array([u1 + (u0 - u1) * rng.uniform(0.0, 0.25), top_v + (v1 - top_v) * rng.uniform(0.4, 0.7)])
            strands.append((np.array([u0, top_v]), c1, c2, np.array([u1, v1])))
    else:  # curtain: a lock falling down one side over the eye and cheek
        u_in = side * rng.uniform(0.05, 0.45) * half_w
        u_out = side * rng.uniform(1.0, 1.3) * half_w
        bottom = rng.uniform(0.6, 1.9) * iod
        bulge = rng.uniform(-0.1, 0.3) * iod
        fan = rng.uniform(0.3, 0.8)                     # roots gathered toward the parting
        for _ in range(n):
            f = rng.uniform(0, 1)
            u0 = u_in + (u_out - u_in) * f * fan
            u1 = u_in + (u_out - u_in) * f + side * rng.normal(0, 0.05) * iod
            v1 = bottom * rng.uniform(0.6, 1.0) * (0.55 + 0.45 * f ** 0.5)
            c1 = np.array([u0 + (u1 - u0) * 0.6 - side * bulge * (1 - f), top_v + (v1 - top_v) * 0.2])
            c2 = np.array([u1 - side * bulge * 0.5 + rng.normal(0, 0.5 * wob), top_v + (v1 - top_v) * 0.65])
            strands.append((np.array([u0, top_v]), c1, c2, np.array([u1, v1])))
    mask = _u8(hw)
    # the mass the strands join at the top: a rounded crown over the roots
    roots = np.array([s[0][0] for s in strands])
    lo_u, hi_u = roots.min() - 0.08 * iod, roots.max() + 0.08 * iod
    mid_u, half_u = (lo_u + hi_u) / 2, (hi_u - lo_u) / 2
    ang = np.linspace(0, np.pi, 20)
    crown_h = rng.uniform(0.2, 0.5) * iod
    dome = np.stack([mid_u - half_u * np.cos(ang), top_v + 0.12 * iod - crown_h * np.sin(ang) ** 0.7], 1)
    dome[:, 1] += rng.normal(0, 0.02 * iod, len(dome))
    _poly(mask, _local(brow, ux, uy, dome))
    lines_dark, lines_light = _u8(hw), _u8(hw)
    t_scale = iod / 40.0
    shade_u8 = np.full(hw, 100, np.uint8)             # per-strand brightness (percent), painter's order
    for i in rng.permutation(len(strands)):
        a, c1, c2, b = strands[i]
        pts = _local(brow, ux, uy, _cubic(a, c1, c2, b, 10))
        t0 = rng.uniform(2.5, 6.0) * t_scale
        val = int(rng.integers(88, 113))
        k = len(pts)
        for j in range(k - 1):
            th = max(1.0, t0 * (1.0 - 0.8 * (j / (k - 1)) ** 1.5))
            _line(mask, pts[j], pts[j + 1], th)
            _line(shade_u8, pts[j], pts[j + 1], th, val)
        # texture along the strand: a lighter and a darker thin line
        dvec = pts[-1] - pts[0]
        off = _perp(dvec / max(np.linalg.norm(dvec), 1e-9))
        marks = ((lines_light, rng.uniform(-0.3, 0.1)), (lines_dark, rng.uniform(0.15, 0.4)))
        for canvas, o in marks[:int(rng.integers(0, 3))]:
            q = pts[: max(2, int(k * rng.uniform(0.4, 0.95)))] + off * o * t0
            cv2.polylines(canvas, [np.round(q * 16).astype(np.int32)], False, 1,
                          max(1, int(round(0.6 * t_scale))), cv2.LINE_8, 4)
    hgt = _height(mask, 1.5 * t_scale)
    u, v = _uv(hw, brow, ux, uy)
    sheen_v = rng.uniform(-0.8, -0.2) * iod
    sheen = 0.3 * np.exp(-((v - sheen_v) / (0.12 * iod)) ** 2) * (0.6 + 0.4 * np.sin(u / (0.05 * iod)))
    fine = _streaks(rng, hw, float(np.arctan2(uy[1], uy[0])), 0.25 * iod)
    bright = shade_u8.astype(np.float32) / 100 * (0.72 + 0.3 * hgt) * (1 + sheen) * (1 + 0.08 * fine)
    rgb = col[None, None] * bright[..., None]
    rgb[lines_light > 0] *= 1.18
    rgb[lines_dark > 0] *= 0.8
    rgb *= _face_light(image, p)
    label = mask > 0
    rgb_u8, alpha = _finish(rng, rgb, label, iod)
    return rgb_u8, alpha, dict(style=style, strands=len(strands), colour=col.tolist())



# --------------------------------------------------------------------------- beard

_BEARD = [(25, 20, 18), (45, 32, 24), (80, 55, 36), (130, 125, 120), (150, 80, 40), (60, 42, 30)]


def _ragged(mask_u8, iod, rng, amp=0.045) -> np.ndarray:
    inside = cv2.distanceTransform(mask_u8, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((mask_u8 == 0).astype(np.uint8), cv2.DIST_L2, 3)
    sdf = inside - outside
    hw = mask_u8.shape
    fine = cv2.GaussianBlur(rng.standard_normal(hw).astype(np.float32), (0, 0), 0.6)
    fine /= max(float(fine.std()), 1e-6)
    nz = amp * iod * (0.6 * fine + 0.8 * _noise(rng, hw, 0.08 * iod))
    return (sdf + nz) > 0, sdf


def _beard(rng, image, p, textures):
    hw = image.shape[:2]
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    img = image.astype(np.float32)
    style = ["full", "full", "goatee", "moustache", "stubble"][int(rng.integers(5))]
    centre = p[27:36].mean(0)
    under_nose = p[31:36] + uy * 0.05 * iod
    cover = rng.uniform(0.0, 0.6) if rng.random() < 0.6 else 0.0    # moustache over the upper lip
    K_r = p[48] + (p[31] - p[48]) * rng.uniform(0.3, 0.6) - ux * rng.uniform(0.05, 0.15) * iod
    K_l = p[54] + (p[35] - p[54]) * rng.uniform(0.3, 0.6) + ux * rng.uniform(0.05, 0.15) * iod
    g_down = rng.uniform(0.05, 0.4) * iod
    g_out = rng.uniform(0.0, 0.08) * iod
    shape = _u8(hw)
    if style in ("full", "stubble"):
        jaw = p[2:15].copy()
        out = jaw - centre
        jaw += g_out * out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        jaw += uy * (g_down if style == "full" else 0.3 * g_down) * np.sin(np.linspace(0.0, np.pi, 13))[:, None] ** 1.5
        top_r = p[1] if rng.random() < 0.5 else p[2]
        top_l = p[15] if np.array_equal(top_r, p[1]) else p[14]
        poly = np.concatenate([[top_r], jaw, [top_l, K_l], under_nose[::-1], [K_r]], 0)
        _poly(shape, _chaikin(poly, 2, closed=True))
    if style == "goatee":
        chin = p[6:11].copy() + uy * g_down * np.array([0.3, 0.8, 1.0, 0.8, 0.3])[:, None]
        wide = rng.uniform(0.02, 0.12) * iod
        poly = np.concatenate([[p[48] - ux * wide - uy * 0.05 * iod], chin,
                               [p[54] + ux * wide - uy * 0.05 * iod]], 0)
        if rng.random() < 0.75:                       # with the moustache: a closed circle beard
            poly = np.concatenate([poly, [K_l], under_nose[::-1], [K_r]], 0)
        else:
            poly = np.concatenate([poly, p[55:60]], 0)          # back along the lower lip
        _poly(shape, _chaikin(poly, 2, closed=True))
    if style == "moustache":
        droop = rng.uniform(-0.05, 0.3) * iod
        ext = rng.uniform(0.0, 0.1) * iod
        end_r = p[48] - ux * ext + uy * droop
        end_l = p[54] + ux * ext + uy * droop
        top = np.concatenate([[under_nose[0] - ux * 0.08 * iod], under_nose, [under_nose[-1] + ux * 0.08 * iod]], 0)
        lip = p[49:54] + (p[[61, 61, 62, 63, 63]] - p[49:54]) * cover
        thick = rng.uniform(0.0, 0.05) * iod
        poly = np.concatenate([[end_r], top - uy * thick, [end_l], lip[::-1]], 0)
        _poly(shape, _chaikin(poly, 2, closed=True))
    # the lips stay visible, except where the moustache hangs over the upper lip
    lips = p[48:60].copy()
    lips[1:6] = p[49:54] + (p[[61, 61, 62, 63, 63]] - p[49:54]) * cover
    lc = lips.mean(0)
    lips = lc + (lips - lc) * 1.06
    excl = _u8(hw)
    _poly(excl, lips)
    shape[excl > 0] = 0
    label, sdf = _ragged(shape, iod, rng, amp=0.04 if style != "stubble" else 0.02)
    col = np.asarray(_BEARD[int(rng.integers(len(_BEARD)))], np.float32)
    col = _hsv_jitter(col, rng, dh=3, ds=(0.85, 1.15), dv=(0.85, 1.15))
    light = _face_light(image, p)
    flow = float(np.arctan2(uy[1], uy[0]))
    s1 = _streaks(rng, hw, flow + 0.25, 0.12 * iod)
    s2 = _streaks(rng, hw, flow - 0.25, 0.12 * iod)
    u, v = _uv(hw, p[33], ux, uy)
    wgt = np.clip(0.5 + u / (0.6 * iod), 0, 1)
    st = s1 * (1 - wgt) + s2 * wgt
    dots = rng.standard_normal(hw).astype(np.float32)
    # local lighting from the photo itself (a heavily blurred copy)
    lum = cv2.GaussianBlur(img.mean(-1), (0, 0), 0.25 * iod)
    sk = skin_colour(image, p).mean()
    local = np.clip(lum / max(sk, 1.0), 0.55, 1.3) ** 0.7
    inside = np.clip(sdf / (0.08 * iod), 0, 1)
    if style == "stubble":
        dsm = cv2.GaussianBlur(dots, (0, 0), 0.5)
        d = np.clip(0.42 + 0.12 * dsm / max(float(dsm.std()), 1e-6) + 0.05 * st, 0.1, 0.8) * rng.uniform(0.85, 1.1)
        d = d * np.clip(0.5 + inside, 0, 1)
        dark = np.array([38, 36, 38], np.float32) * local[..., None]
        rgb = img * (1 - d[..., None]) + dark * d[..., None]
    else:
        grey = float(np.mean(col)) > 110
        bright = (0.75 + 0.22 * st + 0.08 * dots) * (0.85 + 0.15 * inside)
        rgb = col[None, None] * (bright * local)[..., None] * light
        if grey:                                       # salt and pepper
            mix = np.clip(0.5 + 0.35 * st, 0, 1)[..., None]
            rgb = rgb * (0.5 + mix) + (1 - mix) * 30
        # thin at the edges: some skin shows through
        thin = np.clip(inside + 0.25 * dots * (1 - inside), 0.35, 1)[..., None]
        rgb = img * (1 - thin) + rgb * thin
    rgb_u8, alpha = _finish(rng, rgb.astype(np.float32), label, iod)
    return rgb_u8, alpha, dict(style=style, colour=col.tolist(), lip_cover=float(cover))


# --------------------------------------------------------------------------- glasses

def _lens_outline(style: str, a: float, b: float, k: int = 64) -> np.ndarray:
    """Lens outline in lens coordinates: +x toward the temple, +y down."""
    if style == "round":
        return _superellipse(a, a, 2.0, 0.0, k)
    if style == "oval":
        return _superellipse(a, b, 2.0, 0.0, k)
    if style == "rect":
        return _superellipse(a, b, 5.0, 0.1, k)
    if style == "aviator":
        o = _superellipse(a, b, 2.3, 0.7, k)
        y = o[:, 1]
        o[:, 0] -= 0.18 * a * np.clip(y / b, 0, 1)          # the lower half droops toward the nose
        o[:, 1] += 0.1 * b * np.clip(-o[:, 0] / a, 0, 1) * (y > 0)
        return o
    if style == "wayfarer":
        o = _superellipse(a, b, 3.6, 0.4, k)
        o[:, 1] -= 0.18 * b * np.clip(o[:, 0] / a, -1, 1) * (o[:, 1] < 0)
        return o
    # cat-eye
    o = _superellipse(a, b, 3.0, 0.5, k)
    o[:, 1] -= 0.4 * b * np.clip(o[:, 0] / a, 0, 1) ** 2 * (o[:, 1] < 0)
    return o


def _tortoise(rng, hw, iod) -> np.ndarray:
    n = _noise(rng, hw, 0.12 * iod) + 0.35 * _noise(rng, hw, 0.04 * iod)
    t = 0.95 / (1 + np.exp(-2.2 * (n + rng.uniform(-0.1, 0.7))))
    dark = np.array([42, 24, 12], np.float32)
    amber = _hsv_jitter(np.array([172, 108, 48], np.float32), rng, dh=4)
    honey = np.array([210, 155, 80], np.float32)
    out = dark * t[..., None] + amber * (1 - t[..., None])
    hi = np.clip(-n - 1.2, 0, 1)[..., None]
    return out * (1 - hi) + honey * hi


def _glasses_geometry(rng, hw, p, sun: bool, thin: bool = False):
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    styles = ["aviator", "wayfarer", "round", "wayfarer", "aviator"] if sun else \
        ["rect", "oval", "round", "wayfarer", "cateye", "rect"]
    style = styles[int(rng.integers(len(styles)))]
    if sun:
        a = iod * (rng.uniform(0.24, 0.29) if style == "round" else rng.uniform(0.27, 0.33))
        b = a * (1.0 if style == "round" else rng.uniform(0.72, 0.9))
    else:
        a = iod * (rng.uniform(0.21, 0.26) if style == "round" else rng.uniform(0.23, 0.29))
        b = a * (1.0 if style == "round" else rng.uniform(0.62, 0.85))
    t = max(1.0, iod * (rng.uniform(0.022, 0.035) if sun and style == "aviator" else
                        rng.uniform(0.03, 0.08) if sun else rng.uniform(0.03, 0.055)))
    if thin or (not sun and rng.random() < 0.25):
        t = max(1.0, iod * rng.uniform(0.022, 0.035))         # thin metal-like
    gap = iod * rng.uniform(0.1, 0.18)
    eye_d = float(np.linalg.norm(eye_l - eye_r))
    half = max(eye_d / 2 + iod * rng.uniform(-0.02, 0.03), a + gap / 2)
    mid = (eye_r + eye_l) / 2 + uy * iod * rng.uniform(-0.01, 0.07)
    tilt = rng.normal(0, 0.03)
    axr = _rot(ux, tilt)
    ayr = _perp(axr)
    centres = [mid - axr * half, mid + axr * half]
    outline = _lens_outline(style, a, b)
    browline = style in ("wayfarer", "cateye") and not sun and not thin and rng.random() < 0.4
    t_ring = max(1.0, 0.025 * iod) if browline else t
    lenses, frame, temples = [], _u8(hw), _u8(hw)
    polys = []
    for c, sign in zip(centres, (-1.0, 1.0)):
        pts = _local(c, axr * sign, ayr, outline)
        polys.append(pts)
        m = _u8(hw)
        _poly(m, pts)
        lenses.append(m)
        cv2.polylines(frame, [np.round(pts * 16).astype(np.int32)], True, 1, max(1, int(round(t_ring))), cv2.LINE_8, 4)
        if browline:                                  # a thick upper rim, a thin lower one
            top = pts[(outline[:, 1] < -0.25 * b)]
            top = top[np.argsort((top - c) @ (axr * sign))]
            _polyline(frame, top, max(t * 1.4, 0.06 * iod))
    inner = [_local(c, axr * s, ayr, np.array([[-a * 0.93, -b * 0.3]]))[0] for c, s in zip(centres, (-1.0, 1.0))]
    bridge_mid = (inner[0] + inner[1]) / 2 - ayr * iod * rng.uniform(0.0, 0.06)
    _polyline(frame, _bezier(inner[0], bridge_mid, inner[1], 8), t)
    if style == "aviator":
        tops = [_local(c, axr * s, ayr, np.array([[-a * 0.5, -b * 0.95]]))[0] for c, s in zip(centres, (-1.0, 1.0))]
        _line(frame, tops[0], tops[1], max(1.0, t * 0.8))
    for c, sign, ear in ((centres[0], -1.0, p[0] + (p[1] - p[0]) * rng.uniform(0, 0.5)),
                         (centres[1], 1.0, p[16] + (p[15] - p[16]) * rng.uniform(0, 0.5))):
        outer = _local(c, axr * sign, ayr, np.array([[a * 0.97, -b * rng.uniform(0.2, 0.5)]]))[0]
        if np.dot(ear - outer, axr * sign) > 0:      # the temple runs back toward the ear
            _line(temples, outer, ear, max(1.0, t * 0.8))
    return dict(style=style, browline=browline, a=a, b=b, t=t, centres=centres, lenses=lenses, frame=frame,
                temples=temples,
                axr=axr, ayr=ayr, iod=iod, polys=polys)


def _frame_colour(rng, hw, g, kind: str) -> np.ndarray:
    iod = g["iod"]
    if kind == "tortoise":
        base = _tortoise(rng, hw, iod)
    else:
        col = {"black": (18, 17, 17), "metal_gold": (170, 140, 75), "metal_silver": (140, 140, 146),
               "coloured": [(150, 25, 30), (30, 45, 110), (20, 90, 80), (180, 120, 150), (200, 200, 205),
                            (95, 60, 120), (120, 20, 60)][int(rng.integers(7))]}[kind]
        base = np.empty(hw + (3,), np.float32)
        base[:] = col
    fr = ((g["frame"] > 0) | (g["temples"] > 0)).astype(np.uint8)
    hgt = _height(fr, max(g["t"] * 0.5, 0.7))
    if kind.startswith("metal"):
        spec = np.clip(_noise(rng, hw, 0.1 * iod), 0, None)
        return base * (0.55 + 0.45 * hgt)[..., None] + 60 * spec[..., None] * hgt[..., None]
    return base * (0.8 + 0.3 * hgt)[..., None] + 14 * (hgt > 0.95)[..., None] * (rng.random() < 0.5)


def _streak_field(hw, c, iod, ang, q0, width, length):
    d = np.array([np.cos(ang), np.sin(ang)])
    q, r = _uv(hw, c, _perp(d), d)
    return np.exp(-((q - q0) / width) ** 2) * np.exp(-(r / length) ** 2)


def _sunglasses(rng, image, p, textures):
    hw = image.shape[:2]
    fkind = ["black", "black", "tortoise", "metal_gold", "metal_silver", "coloured"][int(rng.integers(6))]
    g = _glasses_geometry(rng, hw, p, sun=True, thin=fkind.startswith("metal"))
    iod, a, b = g["iod"], g["a"], g["b"]
    if g["style"] == "aviator" and rng.random() < 0.7:
        fkind = ["metal_gold", "metal_silver"][int(rng.integers(2))]
    lens_kind = ["black", "black", "brown", "green", "gradient", "mirror"][int(rng.integers(6))]
    base = {"black": (14, 14, 17), "brown": (48, 30, 18), "green": (26, 38, 28), "gradient": (22, 22, 28),
            "mirror": [(30, 70, 130), (140, 100, 30), (30, 100, 70), (120, 50, 100),
                       (110, 110, 120)][int(rng.integers(5))]}[lens_kind]
    base = np.asarray(base, np.float32)
    lens = (g["lenses"][0] | g["lenses"][1]) > 0
    rgb = np.empty(hw + (3,), np.float32)
    rgb[:] = base
    ang = float(np.arctan2(g["ayr"][1], g["ayr"][0])) + rng.uniform(-0.9, -0.4) * (1 if rng.random() < 0.5 else -1)
    n_streaks = int(rng.integers(1, 3))
    streak_params = [(rng.uniform(-0.7, -0.15) * a * (1 if rng.random() < 0.6 else -1), rng.uniform(0.025, 0.06) * iod,
                      rng.uniform(60, 170)) for _ in range(n_streaks)]
    reflect = rng.random() < 0.45 or lens_kind == "mirror"
    for c in g["centres"]:
        u, v = _uv(hw, c, g["axr"], g["ayr"])
        vr = np.clip(v / b, -1.2, 1.2)
        if lens_kind == "gradient":
            rgb += (np.clip(vr + 0.2, 0, 2) * 40)[..., None]
        else:
            rgb += (vr * 8)[..., None]
        if reflect:   # a sky above a horizon, reflected
            hor = -0.1 * b + 0.12 * b * np.sin(u / (0.15 * iod))
            sky = np.clip((hor - v) / b, 0, 1)
            tint = np.array([95, 110, 130], np.float32) if lens_kind != "mirror" else base * 0.8 + 20
            near = (np.abs(u) < 1.3 * a) & (np.abs(v) < 1.3 * b)
            rgb += (sky * (0.4 if lens_kind != "mirror" else 0.6) * near)[..., None] * tint
        for q0, wdt, inten in streak_params:
            rgb += (inten * _streak_field(hw, c, iod, ang, q0, wdt, 0.45 * b))[..., None]
    rgb = np.clip(rgb, 0, 255)
    fr = _frame_colour(rng, hw, g, fkind)
    fm = (g["frame"] > 0) | (g["temples"] > 0)
    rgb[fm] = fr[fm]
    rgb *= _face_light(image, p) ** 0.5
    label = lens | fm
    rgb_u8, alpha = _finish(rng, rgb, label, iod)
    return rgb_u8, alpha, dict(style=g["style"], lens=lens_kind, frame=fkind, frame_px=float(g["t"]),
                               lens_half_width=float(a))


def _clear_glasses(rng, image, p, textures):
    hw = image.shape[:2]
    img = image.astype(np.float32)
    fkind = ["black", "black", "tortoise", "tortoise", "metal_gold", "metal_silver", "coloured"][int(rng.integers(7))]
    g = _glasses_geometry(rng, hw, p, sun=False, thin=fkind.startswith("metal"))
    iod, a, b = g["iod"], g["a"], g["b"]
    tints = [(150, 200, 205), (128, 128, 128), (220, 210, 160), (170, 150, 130), (160, 170, 220), (200, 200, 200)]
    tint = _hsv_jitter(np.asarray(tints[int(rng.integers(len(tints)))], np.float32), rng)
    rgb = img.copy()
    lens = (g["lenses"][0] | g["lenses"][1]) > 0
    warp = rng.uniform(0.96, 1.03) if rng.random() < 0.35 else 1.0
    ang = float(np.arctan2(g["ayr"][1], g["ayr"][0])) + rng.uniform(0.4, 0.9) * (1 if rng.random() < 0.5 else -1)
    refl = rng.uniform(10, 35)
    q0 = rng.uniform(-0.5, 0.3) * a
    for c, m in zip(g["centres"], g["lenses"]):
        on = m > 0
        src = img
        if warp != 1.0:    # a prescription lens minifies / magnifies what is behind it
            xx, yy = _grid_cached(*hw)
            mx = (c[0] + (xx - c[0]) / warp).astype(np.float32)
            my = (c[1] + (yy - c[1]) / warp).astype(np.float32)
            src = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        lensrgb = src * 0.85 + tint * 0.15
        lensrgb += (refl * _streak_field(hw, c, iod, ang, q0, 0.07 * iod, 0.8 * b))[..., None]
        u, v = _uv(hw, c, g["axr"], g["ayr"])
        lensrgb += (6 * np.clip(-v / b, 0, 1))[..., None]
        rgb[on] = lensrgb[on]
    if rng.random() < 0.4:           # the lens edge just inside the frame
        dt = cv2.distanceTransform(lens.astype(np.uint8), cv2.DIST_L2, 3)
        edge = lens & (dt < max(1.0, 0.025 * iod) + g["t"] * 0.5)
        rgb[edge] *= rng.uniform(0.88, 0.96)
    fr = _frame_colour(rng, hw, g, fkind)
    fm = (g["frame"] > 0) | (g["temples"] > 0)
    rgb[fm] = fr[fm] * _face_light(image, p) ** 0.5
    label = lens | fm
    rgb_u8, alpha = _finish(rng, rgb, label, iod, grain=False)
    return rgb_u8, alpha, dict(style=g["style"], frame=fkind, frame_px=float(g["t"]), tint=tint.tolist(),
                               warp=float(warp), lens_half_width=float(a))


# --------------------------------------------------------------------------- surgical / KN95 mask

def _curve_profile(pts_uv: np.ndarray, u: np.ndarray) -> np.ndarray:
    o = np.argsort(pts_uv[:, 0])
    return np.interp(u, pts_uv[o, 0], pts_uv[o, 1]).astype(np.float32)


def _surgical_mask(rng, image, p, textures):
    hw = image.shape[:2]
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    kn95 = rng.random() < 0.3
    O = p[30]
    nose_top = p[28] + (p[30] - p[28]) * rng.uniform(0.2, 0.7)
    side_r = p[1] + (p[2] - p[1]) * rng.uniform(0.0, 0.7)
    side_l = p[15] + (p[14] - p[15]) * rng.uniform(0.0, 0.7)
    below_r = (p[40] + p[41]) / 2 + uy * rng.uniform(0.22, 0.36) * iod
    below_l = (p[46] + p[47]) / 2 + uy * rng.uniform(0.22, 0.36) * iod
    jaw = p[2:15].copy()
    cen = p[27:36].mean(0)
    out = jaw - cen
    grow = rng.uniform(0.02, 0.1) * iod
    jaw += grow * out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    drop = rng.uniform(0.1, 0.3) * iod
    jaw += uy * drop * np.sin(np.linspace(0.0, np.pi, 13))[:, None]
    if kn95:
        chin = p[8] + uy * (drop + rng.uniform(0.08, 0.2) * iod)
        top = np.concatenate([_chaikin(np.array([side_r, below_r, nose_top]), 2),
                              _chaikin(np.array([nose_top, below_l, side_l]), 2)[1:]], 0)
        bot = np.concatenate([_chaikin(np.r_[jaw[:6], [chin]], 2), _chaikin(np.r_[[chin], jaw[7:]], 2)[1:]], 0)
    else:
        top = _chaikin(np.array([side_r, below_r, nose_top, below_l, side_l]), 3)
        bot = _chaikin(jaw, 2)
    poly = np.concatenate([top, bot[::-1]], 0)
    shape = _u8(hw)
    _poly(shape, poly)
    u, v = _uv(hw, O, ux, uy)
    top_uv = np.stack([(top - O) @ ux, (top - O) @ uy], 1)
    bot_uv = np.stack([(bot - O) @ ux, (bot - O) @ uy], 1)
    tv, bv = _curve_profile(top_uv, u), _curve_profile(bot_uv, u)
    s = np.clip((v - tv) / np.maximum(bv - tv, 1.0), -0.2, 1.2)
    half = max(float(np.abs(top_uv[:, 0]).max()), 1.0)
    un = np.clip(u / half, -1, 1)
    colours = [(160, 198, 226), (160, 198, 226), (150, 190, 215), (236, 238, 240), (32, 32, 36), (150, 152, 158)]
    col = _hsv_jitter(np.asarray(colours[int(rng.integers(len(colours)))], np.float32), rng, dh=3,
                      ds=(0.9, 1.1), dv=(0.92, 1.05))
    lx = rng.uniform(-0.6, 0.6)
    shade = 0.78 + 0.25 * np.sqrt(np.clip(1 - (un - lx * 0.3) ** 2, 0, 1))
    shade *= 1.06 - 0.16 * np.clip(s, 0, 1)
    H = float(np.median(bv - tv)) if np.isfinite(np.median(bv - tv)) else iod
    if kn95:
        seam = np.exp(-(u / max(0.6, 0.012 * iod)) ** 2)
        shade *= np.where(u * np.sign(lx + 1e-6) > 0, 1.04, 0.92)
        shade *= 1 - 0.25 * seam
        params = dict(style="kn95")
    else:
        s0, P = rng.uniform(0.26, 0.36), rng.uniform(0.14, 0.2)
        sp = (s - s0) / P
        k = np.floor(sp)
        frac = sp - k
        in_pleats = (sp >= 0) & (sp < 3)
        ramp = 0.9 + 0.16 * frac
        crease = (np.exp(-((frac * P * H) / max(0.8, 0.02 * iod)) ** 2)
                  + np.exp(-(((1 - frac) * P * H) / max(0.6, 0.012 * iod)) ** 2))
        pl = ramp * (1 - 0.2 * crease)
        pl = np.where(in_pleats, pl, 1.0)
        edge_soft = np.clip(np.minimum(sp + 0.3, 3.3 - sp) / 0.3, 0, 1)
        shade *= 1 + (pl - 1) * np.clip(1.2 - np.abs(un), 0, 1) ** 0.5 * edge_soft
        params = dict(style="pleated", first_pleat=float(s0), pleat=float(P))
    dt = cv2.distanceTransform(shape, cv2.DIST_L2, 3)
    band = (dt > 0) & (dt < max(1.2, 0.05 * iod))
    shade = np.where(band, shade * rng.uniform(0.9, 0.97), shade)
    shade *= 1 + 0.025 * _noise(rng, hw, max(1.0, 0.03 * iod))
    rgb = col[None, None] * shade[..., None] * _face_light(image, p)
    # ear loops: thin strings from the mask's corners to the ears
    loops = _u8(hw)
    t_loop = max(1.0, 0.022 * iod)
    for corner_t, corner_b, ear, outv in ((top[0], bot[0], p[0] + (p[1] - p[0]) * 0.3, -ux),
                                          (top[-1], bot[-1], p[16] + (p[15] - p[16]) * 0.3, ux)):
        e = ear + outv * 0.06 * iod
        for cnr in (corner_t, corner_b):
            mid = (cnr + e) / 2 + outv * 0.08 * iod
            _polyline(loops, _bezier(cnr, mid, e, 8), t_loop)
    lc = np.asarray((240, 240, 240) if np.mean(col) > 90 else (30, 30, 30), np.float32) if rng.random() < 0.8 else col
    lm = (loops > 0) & (shape == 0)
    rgb[lm] = lc * _face_light(image, p)
    label = (shape > 0) | (loops > 0)
    rgb_u8, alpha = _finish(rng, rgb, label, iod)
    params.update(colour=col.tolist(), chin_drop=float(drop))
    return rgb_u8, alpha, params


# --------------------------------------------------------------------------- cup

_CUP_COLOURS = [(240, 240, 236), (200, 40, 40), (40, 70, 150), (235, 190, 40), (25, 25, 28), (60, 140, 90),
                (230, 160, 170), (120, 180, 200)]


def _cup(rng, image, p, textures):
    hw = image.shape[:2]
    img = image.astype(np.float32)
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    mouth = p[48:60].mean(0)
    material = ["mug", "mug", "paper", "glass", "mug_print"][int(rng.integers(5))]
    tilt = rng.normal(0, 0.12)
    ay = _rot(uy, tilt)                               # cup "down"
    ax = _perp(ay) * -1 if np.dot(_perp(ay), ux) < 0 else _perp(ay)
    rim_c = mouth + ay * rng.uniform(-0.35, 0.25) * iod + ax * rng.uniform(-0.3, 0.3) * iod
    Wt = rng.uniform(0.7, 1.15) * iod
    Hc = Wt * rng.uniform(0.9, 1.4)
    Wb = Wt * (rng.uniform(0.92, 1.0) if material.startswith("mug") else rng.uniform(0.68, 0.85))
    e = 0.5 * Wt * rng.uniform(0.12, 0.28)
    eb = e * Wb / Wt
    t = np.linspace(0, np.pi, 24)
    bottom = np.stack([-Wb / 2 * np.cos(t), Hc + eb * np.sin(t)], 1)
    body = np.concatenate([[[-Wt / 2, 0.0]], bottom, [[Wt / 2, 0.0]]], 0)
    rim = np.stack([Wt / 2 * np.cos(2 * t), e * np.sin(2 * t)], 1)
    m_body, m_rim = _u8(hw), _u8(hw)
    _poly(m_body, _local(rim_c, ax, ay, body))
    _poly(m_rim, _local(rim_c, ax, ay, rim))
    u, v = _uv(hw, rim_c, ax, ay)
    halfw = (Wt / 2 + (Wb - Wt) / 2 * np.clip(v / Hc, 0, 1))
    xn = np.clip(u / np.maximum(halfw, 1.0), -1, 1)
    light = rng.uniform(-0.5, 0.5)
    shade = 0.6 + 0.42 * np.clip(np.cos(np.arcsin(xn) - light), 0, 1)
    xh = (rng.uniform(0.25, 0.6) * (1 if light > 0 else -1))
    wh = rng.uniform(0.05, 0.12)
    spec = np.exp(-((xn - xh) / wh) ** 2) * np.clip(1.1 - v / Hc, 0, 1)
    spec_i = rng.uniform(60, 150)
    params = dict(material=material, width=float(Wt), height=float(Hc))
    if material == "glass":
        tintc = np.asarray([(200, 220, 215), (190, 200, 190), (205, 205, 205)][int(rng.integers(3))], np.float32)
        rgb = img * 0.78 + tintc * 0.16
        edge = np.abs(xn) > 0.85
        rgb[edge] *= 0.65
        liquid = rng.random() < 0.6
        if liquid:
            lv = Hc * rng.uniform(0.25, 0.6)
            pal = [(230, 130, 30), (245, 245, 240), (120, 40, 50), (200, 170, 60), (70, 40, 25)]
            lcol = np.asarray(pal[int(rng.integers(len(pal)))], np.float32)
            op = rng.uniform(0.55, 0.9)
            inl = v > lv
            rgb[inl] = rgb[inl] * (1 - op) + lcol * op * shade[inl][:, None]
        rgb += (spec * spec_i * 1.3)[..., None]
        inside = img * 0.7 + tintc * 0.15
        params.update(liquid=bool(liquid))
    else:
        if material == "mug_print":
            tex = _texture_patch(rng, textures, hw[0], hw[1]).astype(np.float32)
            colr = np.asarray(_CUP_COLOURS[int(rng.integers(len(_CUP_COLOURS)))], np.float32)
            band = (v > Hc * 0.2) & (v < Hc * 0.8)
            base = np.where(band[..., None], tex * 0.8 + colr * 0.2, colr)
        elif material == "paper":
            colr = np.asarray(_random_colour(rng, [(245, 245, 242), (196, 160, 118), (245, 245, 242)]), np.float32)
            base = np.broadcast_to(colr, hw + (3,)).copy()
            sleeve = (v > Hc * rng.uniform(0.3, 0.45)) & (v < Hc * rng.uniform(0.65, 0.8))
            base[sleeve] = np.asarray(_random_colour(rng, [(150, 105, 65), (30, 90, 60), (200, 60, 40)]), np.float32)
        else:
            colr = np.asarray(_CUP_COLOURS[int(rng.integers(len(_CUP_COLOURS)))], np.float32)
            base = np.broadcast_to(_hsv_jitter(colr, rng), hw + (3,)).copy()
        rgb = base * shade[..., None] + (spec * spec_i)[..., None]
        inside = base * 0.45
    # the opening: inside wall, liquid, a lighter rim line
    rim_in = _u8(hw)
    _poly(rim_in, _local(rim_c, ax, ay, rim * 0.9))
    on = m_rim > 0
    rgb[on] = (inside if inside.ndim == 3 else np.broadcast_to(inside, hw + (3,)))[on] * 0.9
    if material != "glass" and rng.random() < 0.7:
        liq = _u8(hw)
        _poly(liq, _local(rim_c + ay * e * 0.25, ax, ay, rim * 0.8))
        lq = (liq > 0) & on
        pal = [(70, 40, 22), (110, 70, 40), (140, 90, 40), (200, 170, 130), (40, 25, 15)]
        lcol = np.asarray(pal[int(rng.integers(len(pal)))], np.float32)
        rgb[lq] = lcol * (0.8 + 0.2 * (1 + xn[lq]))[:, None] * 0.8
    ring = on & (rim_in == 0)
    rgb[ring] = np.clip(rgb[ring] * 1.25 + 25, 0, 255)
    handle = _u8(hw)
    hand_side = 0.0
    with_hand = rng.random() < 0.4
    if with_hand:
        hand_side = 1.0 if rng.random() < 0.5 else -1.0
    if material.startswith("mug") and rng.random() < 0.8:
        hs = -hand_side if hand_side != 0 else (1.0 if rng.random() < 0.5 else -1.0)
        hc = _local(rim_c, ax, ay, np.array([[hs * (Wt / 2 + 0.06 * iod), Hc * 0.45]]))[0]
        axes = (int(round(Wt * 0.28 * 16)), int(round(Hc * 0.3 * 16)))
        ang = float(np.degrees(np.arctan2(ax[1], ax[0])))
        th = max(1, int(round(0.12 * iod)))
        cv2.ellipse(handle, (int(round(hc[0] * 16)), int(round(hc[1] * 16))), axes, ang,
                    -90 if hs > 0 else 90, 90 if hs > 0 else 270, 1, th, cv2.LINE_8, 4)
        handle[m_body > 0] = 0
        hh = _height(handle, th / 2)
        hcol = base if material != "glass" else rgb
        rgb[handle > 0] = (hcol * (0.6 + 0.45 * hh)[..., None])[handle > 0]
        params["handle"] = True
    label = (m_body > 0) | on | (handle > 0)
    rgb = rgb * _face_light(image, p) ** 0.5
    if with_hand:     # fingers wrapped around the front, the hand at one side
        sk = _Skin(hw)
        side_pt = _local(rim_c, ax, ay, np.array([[hand_side * (Wt / 2 + 0.25 * iod), Hc * 0.6]]))[0]
        scale = rng.uniform(0.85, 1.05)
        part = _u8(hw)
        _poly(part, _local(side_pt, ax, ay, _superellipse(0.32 * iod * scale, 0.45 * iod * scale, 3.0, 0.0, 40)))
        arm_end = side_pt + _rot(ay, -hand_side * rng.uniform(0.2, 0.8)) * 1.5 * iod
        _line(part, side_pt, arm_end, 0.6 * iod * scale)
        sk.add(part, 0.3 * iod)
        n = int(rng.integers(2, 5))
        for i in range(n):
            yv = Hc * (0.3 + 0.17 * i) + rng.normal(0, 0.02 * iod)
            b0 = _local(rim_c, ax, ay, np.array([[hand_side * (Wt / 2 + 0.08 * iod), yv]]))[0]
            d = _rot(-ax * hand_side, rng.normal(0, 0.08))
            sk.finger(b0, d, Wt * rng.uniform(0.55, 0.85), 0.19 * iod * scale, rng, bend=0.0, nail=True, iod=iod)
        base_s = _hsv_jitter(skin_colour(image, p), rng, dh=4)
        srgb = sk.colour(rng, base_s, iod, ax)
        sm = sk.mask > 0
        rgb[sm] = srgb[sm]
        label = label | sm
        params["hand"] = True
    rgb_u8, alpha = _finish(rng, rgb.astype(np.float32), label, iod)
    return rgb_u8, alpha, params


# --------------------------------------------------------------------------- scarf

_FABRIC = [(170, 30, 35), (30, 40, 80), (120, 120, 125), (200, 185, 160), (25, 25, 28), (40, 90, 60), (110, 30, 50),
           (200, 150, 40), (225, 225, 220), (90, 60, 45), (60, 110, 160)]


def _fabric(rng, hw, u, v, iod, textures):
    pat = ["knit", "knit", "tartan", "stripes", "plain", "plain", "photo"][int(rng.integers(7))]
    c1 = _hsv_jitter(np.asarray(_FABRIC[int(rng.integers(len(_FABRIC)))], np.float32), rng)
    c2 = _hsv_jitter(np.asarray(_FABRIC[int(rng.integers(len(_FABRIC)))], np.float32), rng)
    if pat == "knit":
        lam = rng.uniform(0.06, 0.12) * iod
        rib = 0.5 + 0.5 * np.sin(2 * np.pi * u / lam)
        row = 0.5 + 0.5 * np.sin(2 * np.pi * (v + 0.25 * lam * np.abs(np.sin(np.pi * u / lam))) / (0.6 * lam))
        tex = (0.78 + 0.16 * rib + 0.08 * row)[..., None] * c1
    elif pat == "tartan":
        P = rng.uniform(0.25, 0.5) * iod
        bu = (np.mod(u, P) < P * rng.uniform(0.2, 0.4)).astype(np.float32)
        bv = (np.mod(v, P) < P * rng.uniform(0.2, 0.4)).astype(np.float32)
        thin = ((np.abs(np.mod(u, P) - 0.7 * P) < 0.02 * iod) | (np.abs(np.mod(v, P) - 0.7 * P) < 0.02 * iod))
        m = (0.5 * bu + 0.5 * bv)[..., None]
        tex = c1 * (1 - m) + c2 * m
        tex[thin] = tex[thin] * 0.6 + 90
    elif pat == "stripes":
        P = rng.uniform(0.15, 0.4) * iod
        m = (np.mod(v + 0.3 * u * rng.uniform(-1, 1), P) < P * 0.5).astype(np.float32)[..., None]
        tex = c1 * (1 - m) + c2 * m
    elif pat == "photo":
        tex = _texture_patch(rng, textures, hw[0], hw[1]).astype(np.float32)
        tex = cv2.GaussianBlur(tex, (0, 0), max(0.5, 0.02 * iod)) * 0.45 + c1 * 0.55
    else:
        tex = np.broadcast_to(c1, hw + (3,)).astype(np.float32)
    wool = 1 + 0.05 * _noise(rng, hw, max(1.0, 0.02 * iod)) + 0.03 * rng.standard_normal(hw).astype(np.float32)
    return tex * wool[..., None], pat


def _scarf(rng, image, p, textures):
    hw = image.shape[:2]
    _, eye_r, eye_l, iod, ux, uy = _face_frame(p)
    O = p[30]
    to = "nose" if rng.random() < 0.45 else "mouth"
    if to == "nose":
        vc = float((p[28] + (p[30] - p[28]) * rng.uniform(0.2, 0.9) - O) @ uy)
    else:
        vc = float((p[51] + (p[57] - p[51]) * rng.uniform(-0.3, 0.45) - O) @ uy)
    face_half = 0.5 * float(np.linalg.norm(p[16] - p[0]))
    Wh = face_half * rng.uniform(1.05, 1.3)
    vs = vc + rng.uniform(0.0, 0.35) * iod
    vbot = float((p[8] - O) @ uy) + rng.uniform(0.35, 0.7) * iod
    Wb = Wh * rng.uniform(1.05, 1.3)
    k = 40
    uu = np.linspace(-Wh, Wh, k)
    amp, lam, ph = rng.uniform(0.01, 0.05) * iod, rng.uniform(0.6, 1.6) * iod, rng.uniform(0, 2 * np.pi)
    vt = vc + (vs - vc) * np.abs(uu / Wh) ** 1.5 + amp * np.sin(2 * np.pi * uu / lam + ph)
    vt += np.convolve(rng.normal(0, 0.012 * iod, k), np.ones(3) / 3, "same")
    top = np.stack([uu, vt], 1)
    ub = np.linspace(Wb, -Wb, 12)
    bot = np.stack([ub, vbot + 0.15 * iod * (ub / Wb) ** 2 + rng.normal(0, 0.03 * iod, 12)], 1)
    bulge = rng.uniform(1.0, 1.12)
    right = np.array([[0.5 * (Wh + Wb) * bulge, 0.5 * (vt[-1] + vbot)]])
    left = np.array([[-0.5 * (Wh + Wb) * bulge, 0.5 * (vt[0] + vbot)]])
    poly = _local(O, ux, uy, np.concatenate([top, right, bot, left], 0))
    shape = _u8(hw)
    _poly(shape, poly)
    u, v = _uv(hw, O, ux, uy)
    tv = np.interp(u, uu, vt).astype(np.float32)
    d_top = v - tv                                       # below the top edge
    P = rng.uniform(0.25, 0.45) * iod
    sag = rng.uniform(-0.25, 0.35) * iod
    phase_n = 0.35 * _noise(rng, hw, 0.6 * iod)
    fold = np.sin(2 * np.pi * (d_top - sag * (u / Wh) ** 2) / P + phase_n)
    # the pattern follows the fabric
    tex, pat = _fabric(rng, hw, u + 0.02 * iod * fold, v + 0.035 * iod * fold, iod, textures)
    shade = 1 + 0.16 * fold + 0.05 * np.sin(4 * np.pi * d_top / P + 1.3 * phase_n)
    roll = rng.uniform(0.08, 0.16) * iod           # the rolled top edge and its shadow below
    shade *= np.where(d_top < roll, 1.08, 1.0) * (1 - 0.22 * np.exp(-((d_top - roll) / (0.04 * iod)) ** 2))
    un = np.clip(u / (Wh * 1.1), -1, 1)
    shade *= 0.75 + 0.25 * np.sqrt(1 - un ** 2)
    shade *= 1.04 - 0.12 * np.clip(d_top / max(vbot - vc, 1.0), 0, 1)
    rgb = tex * shade[..., None] * _face_light(image, p)
    label = shape > 0
    rgb_u8, alpha = _finish(rng, rgb.astype(np.float32), label, iod)
    return rgb_u8, alpha, dict(up_to=to, pattern=pat, fold_period=float(P))


_MAKERS = {"hand": _hand, "hair": _hair, "beard": _beard, "sunglasses": _sunglasses,
           "clear_glasses": _clear_glasses, "surgical_mask": _surgical_mask, "cup": _cup, "scarf": _scarf}


def training_layer(image: np.ndarray, points68: np.ndarray, kind: str, rng: np.random.Generator,
                   textures: list[np.ndarray] | None = None) -> OccluderLayer:
    """An occluder of `kind` for `image` (H, W, 3) uint8 RGB, placed from iBUG-68 `points68` (68, 2) px (x, y).

    ``kind`` is one of ``TRAIN_KINDS``; every random choice comes from ``rng``. The label
    is ``layer.alpha >= 0.5``; composite with ``d3dface.inputs.occluders.composite``.
    ``textures``: RGB uint8 photos (``load_textures()``); None or [] uses procedural ones.
    """
    if kind not in _MAKERS:
        raise InputFileError(f"unknown training occluder {kind!r} (choose from {', '.join(TRAIN_KINDS)})")
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputFileError(f"image must be (H, W, 3) RGB, got {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    pts = np.asarray(points68, np.float64)
    if pts.shape != (68, 2):
        raise InputFileError(f"points68 must be (68, 2), got {pts.shape}")
    _face_frame(pts)                                       # raises on degenerate landmarks
    hull = face_hull_mask(img.shape[:2], pts)
    n_hull = int(hull.sum())
    lo, hi = _COVER[kind]
    best = None
    for attempt in range(_TRIES):
        rgb, alpha, params = _MAKERS[kind](rng, img, pts, textures or [])
        label = alpha >= 0.5
        cover = float((label & hull).sum() / n_hull) if n_hull > 0 else 0.0
        dist = 0.0 if lo <= cover <= hi else min(abs(cover - lo), abs(cover - hi))
        if best is None or dist < best[0]:
            best = (dist, rgb, alpha, params, cover, attempt)
        if n_hull < 16 or dist == 0.0:
            break
    _, rgb, alpha, params, cover, attempt = best
    params = dict(params, face_cover=cover, attempts=attempt + 1)
    return OccluderLayer(kind=kind, seed=-1, rgb=rgb, alpha=alpha.astype(np.float32), params=params)

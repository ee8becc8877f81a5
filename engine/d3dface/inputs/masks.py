"""Face mask M_f and occlusion mask M_o (both (H, W) bool, True = face / occluded).

- ``face_mask``: the convex hull of the face landmarks (MediaPipe's dense mesh, or
  the 68 points with the brows lifted onto the forehead); the fit later refines it
  with the model's projection.
- ``load_user_mask``: a mask image of any size (white = occluded; or, when it has a
  non-constant alpha channel, the opaque part = occluded), resized to the photo.
- ``estimate_occlusion``: the automatic estimate ("auto"). By default ("net") the
  occlusion network of ``occlusion_net`` on the aligned face crop, thresholded inside
  the face hull. The older "skin" method is a skin-appearance model seeded from the
  face patches whose colours agree with each other (the confidently visible ones),
  applied inside the face hull; non-skin blobs large enough outside the expected
  non-skin features (eyes, brows, lips, nostrils) are occluders, together with the
  parts of those features they cover.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputFileError
from .landmarks_base import Landmarks, notice
from .settings import AutoMaskSettings

# --------------------------------------------------------------------------- face mask


def _fill(hw, polys) -> np.ndarray:
    m = np.zeros(hw, np.uint8)
    for p in polys:
        p = np.asarray(p, np.float64)
        if len(p) >= 3:
            cv2.fillPoly(m, [np.round(p * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return m > 0


def outline_from_68(points68: np.ndarray) -> np.ndarray:
    """(78, 2) the 68 points plus a forehead: the brows lifted by 0.9 of the nose's length."""
    p = np.asarray(points68, np.float64)
    up = p[27] - p[30]                 # nose tip -> nose root, about a third of the face height
    return np.concatenate([p, p[17:27] + 0.9 * up], 0)


def face_outline_points(lm: Landmarks) -> np.ndarray:
    """Points whose hull is the face region: the dense mesh, or the 68 points plus a forehead."""
    if lm.dense is not None:
        return lm.dense[:468]
    return outline_from_68(lm.points68)


def hull_mask(points: np.ndarray, shape_hw) -> np.ndarray:
    """(H, W) bool: the filled convex hull of ``points`` (N, 2) px."""
    hull = cv2.convexHull(np.asarray(points, np.float32))[:, 0]
    return _fill(tuple(shape_hw), [hull])


def face_mask(lm: Landmarks, shape_hw=None) -> np.ndarray:
    """M_f (H, W) bool: convex hull of the face points."""
    return hull_mask(face_outline_points(lm), shape_hw or lm.image_size)


# --------------------------------------------------------------------------- user masks


def load_user_mask(source, shape_hw, threshold: int = 128) -> np.ndarray:
    """A user occlusion mask (path or array) as (H, W) bool at ``shape_hw``.

    White (>= ``threshold`` of 255) = occluded. An image with an alpha channel that is
    not constant is read by its alpha instead (painted = occluded). Any size is resized
    (a differing aspect ratio gets a notice); 16-bit and colour masks are accepted.
    """
    from .image_io import load_image

    h, w = int(shape_hw[0]), int(shape_hw[1])
    if isinstance(source, np.ndarray):
        raw = source
        name = "mask array"
    else:
        path = Path(os.fspath(source)).expanduser()
        name = str(path)
        if not path.is_file():
            raise InputFileError(f"mask image not found: {path}")
        data = path.read_bytes()
        if not data:
            raise InputFileError(f"mask image {path} is empty (0 bytes)")
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raw = load_image(data)  # Pillow-only formats; raises a clear error for non-images
        elif raw.ndim == 3 and raw.shape[2] in (3, 4):
            raw = raw[..., [2, 1, 0, 3][: raw.shape[2]]]  # BGR(A) -> RGB(A)
    a = np.asarray(raw)
    if a.dtype == bool:  # True = occluded
        a = a.astype(np.uint8) * 255
    if a.size == 0 or a.ndim not in (2, 3):
        raise InputFileError(f"{name} is not a mask image (shape {a.shape})")
    scale = 255.0 / 65535.0 if a.dtype == np.uint16 else (255.0 if a.dtype.kind == "f" and a.max() <= 1 else 1.0)
    a = a.astype(np.float32) * scale
    if a.ndim == 3 and a.shape[2] in (2, 4) and np.ptp(a[..., -1]) > 0:
        level = a[..., -1]
    elif a.ndim == 3:
        level = a[..., :3].mean(-1) if a.shape[2] >= 3 else a[..., 0]
    else:
        level = a
    mh, mw = level.shape
    if abs(mw / mh - w / h) > 0.02 * (w / h):
        notice(f"mask {name} is {mw}x{mh} but the image is {w}x{h}; stretched to fit")
    if (mh, mw) != (h, w):
        level = cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR)
    return level >= threshold


# --------------------------------------------------------------------------- automatic estimate


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)


def _feature_zones(lm: Landmarks, hw, margin_px: float) -> np.ndarray:
    """Expected non-skin features (eyes, brows, lips, nostrils), dilated by ``margin_px``."""
    p = lm.points68.astype(np.float64)
    iod = max(lm.inter_ocular, 1.0)
    polys = [p[36:42], p[42:48], p[48:60]]
    nose = np.concatenate([p[31:36], p[[35]] + [0, -0.12 * iod], p[[31]] + [0, -0.12 * iod]])
    polys.append(nose)
    m = _fill(hw, polys).astype(np.uint8)
    for a, b in ((17, 22), (22, 27)):
        cv2.polylines(m, [np.round(p[a:b] * 16).astype(np.int32)], False, 1, max(1, int(0.08 * iod)), cv2.LINE_8, 4)
    r = max(1, int(round(margin_px)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(m, k) > 0


# How likely each seed patch is to show skin, before looking at it: beards and face
# masks cover the chin and lower cheeks more often than hair or glasses hide the forehead.
SEED_PRIOR = (1.5, 1.0, 1.0, 1.0, 0.6, 0.6, 0.6, 1.3)


def _skin_plausibility(lab_median: np.ndarray) -> float:
    """1 for a red-to-yellow hue with some chroma (any skin tone), 0.25 otherwise; 1 for gray images."""
    a, b = float(lab_median[1]) - 128.0, float(lab_median[2]) - 128.0
    chroma, hue = np.hypot(a, b), np.degrees(np.arctan2(b, a))
    return 1.0 if (chroma >= 4.0 and -10.0 <= hue <= 95.0) else 0.25


def _seed_patches(lm: Landmarks, hw) -> list[np.ndarray]:
    """Skin patches from landmarks: forehead, both cheeks, nose bridge, chin, both jaws."""
    p = lm.points68.astype(np.float64)
    iod = max(lm.inter_ocular, 1.0)
    r = 0.13 * iod
    up = p[27] - p[30]
    centres = [
        (p[19] + p[24]) / 2 + 0.45 * up,                 # forehead
        (p[41] + p[31] + p[48] + p[3]) / 4,              # right cheek
        (p[46] + p[35] + p[54] + p[13]) / 4,             # left cheek
        (p[28] + p[29]) / 2,                             # nose bridge
        (p[57] + p[8]) / 2,                              # chin
        (p[4] + p[48]) / 2,                              # right lower cheek
        (p[12] + p[54]) / 2,                             # left lower cheek
        (p[21] + p[22]) / 2 + 0.15 * up,                 # glabella
    ]
    out = []
    for c in centres[: len(SEED_PRIOR)]:
        m = np.zeros(hw, np.uint8)
        cv2.circle(m, (int(round(c[0])), int(round(c[1]))), max(1, int(round(r))), 1, -1)
        out.append(m > 0)
    return out


def skin_distance(image: np.ndarray, lm: Landmarks, settings: AutoMaskSettings | None = None,
                  region: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 distance of each pixel to the face's skin colour model.

    Seeds are landmark-placed patches (forehead, cheeks, nose, chin, ...). The
    confidently visible ones are the largest group of patches whose median colours
    agree (mode seeking: the patch with most neighbours within ``seed_agreement`` and
    those neighbours); an occluder, beard or hair patch falls outside the group.
    Each kept patch gets a Gaussian (its own mean, the pooled trimmed covariance),
    so a lit forehead and a shaded cheek are both skin; the distance is the smallest
    Mahalanobis distance over them. Lightness is damped by ``lightness_weight``.
    """
    settings = settings or AutoMaskSettings()
    hw = image.shape[:2]
    wts = np.array([settings.lightness_weight, 1.0, 1.0], np.float32)
    lab = _lab(image) * wts
    feats = _feature_zones(lm, hw, settings.feature_margin * lm.inter_ocular)
    raw = _lab(image)
    patches, prior = [], []
    for pm, w0 in zip(_seed_patches(lm, hw), SEED_PRIOR):
        pm = pm & ~feats & (region if region is not None else True)
        if pm.sum() >= 5:
            patches.append(pm)
            prior.append(w0 * _skin_plausibility(np.median(raw[pm], axis=0)))
    if not patches:
        return np.zeros(hw, np.float32)
    meds = np.array([np.median(lab[pm], axis=0) for pm in patches])
    dd = np.linalg.norm(meds[:, None] - meds[None], axis=-1)
    near = dd <= settings.seed_agreement
    best = int(np.argmax(near @ np.array(prior) - 1e-4 * dd.sum(1)))
    kept = [pm for pm, k in zip(patches, near[best]) if k]
    centred = np.concatenate([lab[pm] - np.median(lab[pm], axis=0) for pm in kept])
    cov = np.cov(centred.T) + np.eye(3) * settings.min_variance
    for _ in range(2):   # trim outliers (specular spots, stubble) and refit the pooled covariance
        md = np.sqrt(np.einsum("ni,ij,nj->n", centred, np.linalg.inv(cov), centred))
        inl = centred[md < 2.5]
        if len(inl) < 10:
            break
        cov = np.cov(inl.T) + np.eye(3) * settings.min_variance
    icov = np.linalg.inv(cov)
    flat = lab.reshape(-1, 3)
    best_d = np.full(len(flat), np.inf, np.float32)
    for pm in kept:
        diff = flat - np.median(lab[pm], axis=0)
        best_d = np.minimum(best_d, np.sqrt(np.einsum("ni,ij,nj->n", diff, icov, diff)).astype(np.float32))
    return best_d.reshape(hw)


AUTO_METHODS = ("net", "skin")


def estimate_occlusion(image: np.ndarray, lm: Landmarks, m_face: np.ndarray | None = None,
                       settings: AutoMaskSettings | None = None) -> np.ndarray:
    """Automatic M_o (H, W) bool inside the face, by ``settings.method``: see the module docstring.

    Without a usable occlusion network (a damaged install) "net" falls back to "skin" with a notice.
    """
    settings = settings or AutoMaskSettings()
    if settings.method not in AUTO_METHODS:
        raise InputFileError(f"unknown automatic mask method {settings.method!r} (choose from {', '.join(AUTO_METHODS)})")
    m_face = face_mask(lm, image.shape[:2]) if m_face is None else m_face
    if settings.method == "net":
        from ..errors import ModelFileError
        from .occlusion_net import load_occlusion_net

        try:
            net = load_occlusion_net()
        except ModelFileError as exc:
            notice(f"{exc}; the automatic mask uses the skin-colour model instead")
        else:
            return network_occlusion(image, lm, m_face, settings, net)
    return skin_occlusion(image, lm, m_face, settings)


def network_occlusion(image: np.ndarray, lm: Landmarks, m_face: np.ndarray, settings: AutoMaskSettings,
                      net=None) -> np.ndarray:
    """M_o (H, W) bool: the occlusion network's probability above ``net_threshold`` inside M_f
    grown by ``net_face_grow`` IOD, without blobs smaller than ``net_min_component`` of the face."""
    from .occlusion_net import occlusion_probability

    prob = occlusion_probability(image, lm.points68, net, shift_px=settings.net_test_shift)
    region = m_face
    r = int(round(settings.net_face_grow * lm.inter_ocular))
    if r > 0:   # landmarks found on an occluded face can put the hull short of the real face
        region = cv2.dilate(m_face.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    occ = (prob > settings.net_threshold) & region
    n, lab, stats, _ = cv2.connectedComponentsWithStats(occ.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < settings.net_min_component * max(int(m_face.sum()), 1)
    small[0] = True
    return occ & ~small[lab]


def skin_occlusion(image: np.ndarray, lm: Landmarks, m_face: np.ndarray,
                   settings: AutoMaskSettings) -> np.ndarray:
    """M_o (H, W) bool by the skin-colour model: see the module docstring."""
    hw = image.shape[:2]
    b = lm.face_box
    fsize = float(max(b[2] - b[0], b[3] - b[1], 1.0))
    iod = max(lm.inter_ocular, 1.0)
    e = int(round(settings.hull_erode * fsize))
    region = m_face
    if e > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
        region = cv2.erode(m_face.astype(np.uint8), k) > 0
    dist = skin_distance(image, lm, settings, region)
    cand = (dist > settings.skin_threshold) & region
    # clean: remove speckle, bridge small gaps
    r = max(1, int(round(settings.smooth * fsize)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    cand = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    cand = cv2.morphologyEx(cand, cv2.MORPH_CLOSE, k) > 0
    cand &= region
    feats = _feature_zones(lm, hw, settings.feature_margin * iod)
    n, lab = cv2.connectedComponents(cand.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(hw, bool)
    outside = np.bincount(lab[cand & ~feats], minlength=n)
    min_area = settings.min_component * float(region.sum())
    keep = outside >= min_area
    keep[0] = False
    occ = keep[lab]
    # fill holes enclosed by an occluder (e.g. a lens highlight) within the face
    if occ.any():
        filled = occ.astype(np.uint8).copy()
        ff = np.zeros((hw[0] + 2, hw[1] + 2), np.uint8)
        inv = (1 - filled).copy()
        cv2.floodFill(inv, ff, (0, 0), 0)
        occ |= (inv > 0) & region & ~_border_touching(inv)
    return occ & m_face


def _border_touching(m: np.ndarray) -> np.ndarray:
    n, lab = cv2.connectedComponents(m.astype(np.uint8))
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    return np.isin(lab, border[border > 0])

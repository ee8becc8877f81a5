"""Training occluders (d3dface.training.mask_occluders): shapes, coverage and placement on a
real face crop, determinism and variety, skin-coloured hands, labelled clear lenses, and
any resolution / landmarks near the border."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from d3dface.errors import InputFileError
from d3dface.paths import find_assets_dir
from d3dface.training.mask_occluders import TRAIN_KINDS, training_layer

from d3dface.inputs.occluders import composite

SEEDS = range(20)


def _images_dir():
    assets = find_assets_dir(required=False)
    if assets is None:
        return None
    d = assets.parent / "images"
    return d if d.is_dir() else None


@pytest.fixture(scope="module")
def face128():
    """frontal_man_224.jpg cropped around its face and resized to 128x128 (eye corners ~40 px apart)."""
    images = _images_dir()
    photo = None if images is None else images / "faces" / "frontal_man_224.jpg"
    if photo is None or not photo.is_file():
        pytest.skip("shared images folder (faces/frontal_man_224.jpg) not found")
    from d3dface.inputs.image_io import load_image
    from d3dface.inputs.landmarks_base import BackendUnavailable, detect_landmarks

    img = load_image(photo)
    try:
        p = detect_landmarks(img, "mediapipe").points68
    except BackendUnavailable as e:
        pytest.skip(f"mediapipe unavailable: {e}")
    iod = float(np.linalg.norm(p[45] - p[36]))
    side = 3.2 * iod
    c = (p.min(0) + p.max(0)) / 2
    s = 128 / side
    M = np.array([[s, 0, 64 - s * c[0]], [0, s, 64 - s * c[1]]])
    crop = cv2.warpAffine(img, M, (128, 128), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    pts = p @ M[:, :2].T + M[:, 2]
    assert 30 < np.linalg.norm(pts[45] - pts[36]) < 50
    return crop, pts


def _hull(pts, hw=(128, 128)):
    m = np.zeros(hw, np.uint8)
    cv2.fillConvexPoly(m, np.round(cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)).astype(np.int32), 1)
    return m > 0


def _box(pts, hw=(128, 128), f=1.6):
    lo, hi = pts.min(0), pts.max(0)
    c, half = (lo + hi) / 2, (hi - lo) * f / 2
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]] + 0.5
    return (np.abs(xx - c[0]) <= half[0]) & (np.abs(yy - c[1]) <= half[1])


def _lab(rgb) -> np.ndarray:
    px = np.asarray(rgb, np.float32).reshape(1, -1, 3) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_RGB2LAB).reshape(-1, 3)


@pytest.fixture(scope="module")
def layers(face128):
    img, pts = face128
    return {k: [training_layer(img, pts, k, np.random.default_rng(s)) for s in SEEDS] for k in TRAIN_KINDS}


@pytest.mark.parametrize("kind", TRAIN_KINDS)
def test_shapes_cover_and_placement(face128, layers, kind):
    img, pts = face128
    hull, box = _hull(pts), _box(pts)
    inside = []
    for layer in layers[kind]:
        assert layer.kind == kind and layer.seed == -1 and isinstance(layer.params, dict)
        assert layer.rgb.shape == (128, 128, 3) and layer.rgb.dtype == np.uint8
        assert layer.alpha.shape == (128, 128) and layer.alpha.dtype == np.float32
        assert float(layer.alpha.min()) >= 0.0 and float(layer.alpha.max()) <= 1.0
        label = layer.alpha >= 0.5
        cover = (label & hull).sum() / hull.sum()
        assert 0.02 <= cover <= 0.70, (kind, cover, layer.params)
        frac = (label & box).sum() / label.sum()
        assert frac >= 0.5, (kind, frac, layer.params)
        inside.append(frac)
        # soft edge only: partial alpha is a thin fringe, not a see-through area
        partial = (layer.alpha > 0.05) & (layer.alpha < 0.95)
        k = np.ones((5, 5), np.uint8)
        lab8 = label.astype(np.uint8)
        band = (cv2.dilate(lab8, k) > 0) & ~(cv2.erode(lab8, k) > 0)      # within 2 px of the label's edge
        assert not (partial & ~band).any(), (kind, layer.params)
        occ = composite(img, layer)
        assert occ.image.shape == img.shape and occ.mask.any()
    print(kind, "mean share in the box", np.mean(inside))
    assert np.mean(inside) >= 0.75


@pytest.mark.parametrize("kind", TRAIN_KINDS)
def test_deterministic_and_varied(face128, layers, kind):
    img, pts = face128
    again = training_layer(img, pts, kind, np.random.default_rng(SEEDS[3]))
    ref = layers[kind][3]
    np.testing.assert_array_equal(again.rgb, ref.rgb)
    np.testing.assert_array_equal(again.alpha, ref.alpha)
    masks = {(lay.alpha >= 0.5).tobytes() for lay in layers[kind]}
    assert len(masks) == len(SEEDS)


def test_hand_is_skin_coloured(face128, layers):
    img, pts = face128
    # the test's own skin reference: patches half-way between the jaw and the nose tip
    r = 4
    ref = []
    for a in (pts[2], pts[14]):
        x, y = np.round((a + pts[30]) / 2).astype(int)
        ref.append(img[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3))
    skin = _lab(np.median(np.concatenate(ref), 0))[0]
    blue = _lab([0, 0, 255])[0]
    for layer in layers["hand"]:
        label = layer.alpha >= 0.5
        med = _lab(np.median(layer.rgb[label].astype(np.float32), 0))[0]
        d_skin, d_blue = np.linalg.norm(med - skin), np.linalg.norm(med - blue)
        assert d_skin < 25, (d_skin, layer.params)
        assert d_skin < 0.3 * d_blue


def test_clear_glasses_label_the_lenses(face128, layers):
    img, pts = face128
    eyes = [np.floor(pts[36:42].mean(0)).astype(int), np.floor(pts[42:48].mean(0)).astype(int)]
    fracs = []
    for layer in layers["clear_glasses"]:
        label = layer.alpha >= 0.5
        diff = np.abs(layer.rgb.astype(np.int16) - img.astype(np.int16)).mean(-1)
        see_through = label & (diff < 30)
        assert see_through.sum() >= 0.3 * label.sum(), layer.params
        fracs.append(see_through.sum() / label.sum())
        for x, y in eyes:            # the eyes are behind the lenses: labelled, yet visible
            assert label[y, x] and diff[y, x] < 60, layer.params
    assert np.mean(fracs) >= 0.5          # on average, most of the label is see-through lens


def test_sunglasses_are_dark_and_cover_the_eyes(face128, layers):
    img, pts = face128
    eyes = [np.floor(pts[36:42].mean(0)).astype(int), np.floor(pts[42:48].mean(0)).astype(int)]
    for layer in layers["sunglasses"]:
        label = layer.alpha >= 0.5
        assert all(label[y, x] for x, y in eyes)
        diff = np.abs(layer.rgb.astype(np.int16) - img.astype(np.int16)).mean(-1)
        assert diff[label].mean() > 30                         # opaque: not the see-through image
        lum = layer.rgb[label].astype(np.float32) @ np.array([0.3, 0.59, 0.11])
        assert np.median(lum) < (170 if layer.params["lens"] == "mirror" else 100), layer.params


def test_lower_face_kinds_cover_the_mouth_region(face128, layers):
    img, pts = face128
    mouth = np.zeros((128, 128), np.uint8)
    cv2.fillPoly(mouth, [np.round(pts[48:60]).astype(np.int32)], 1)
    mouth = mouth > 0
    for kind, share in (("surgical_mask", 0.95), ("scarf", 0.3)):
        for layer in layers[kind]:
            assert ((layer.alpha >= 0.5) & mouth).sum() >= share * mouth.sum(), (kind, layer.params)


def test_any_resolution_textures_and_border(face128):
    img, pts = face128
    big = cv2.resize(img, (384, 384), interpolation=cv2.INTER_CUBIC)
    rng_tex = np.random.default_rng(1)
    textures = [rng_tex.integers(0, 255, (40, 60, 3)).astype(np.uint8)]
    shifted = pts + np.array([-50.0, 40.0])              # face half outside the canvas
    for i, kind in enumerate(TRAIN_KINDS):
        lay = training_layer(big, pts * 3, kind, np.random.default_rng(i), textures)
        label = lay.alpha >= 0.5
        cover = (label & _hull(pts * 3, (384, 384))).sum() / _hull(pts * 3, (384, 384)).sum()
        assert lay.alpha.shape == (384, 384) and 0.02 <= cover <= 0.7, (kind, cover)
        edge = lay.alpha[(lay.alpha > 0) & (lay.alpha < 1)]
        assert edge.size > 0                                 # a soft fringe at any size
        side = training_layer(img, shifted, kind, np.random.default_rng(i))
        assert side.rgb.shape == (128, 128, 3) and side.alpha.shape == (128, 128)
        assert np.isfinite(side.alpha).all()


def test_unknown_kind_and_bad_input(face128):
    img, pts = face128
    with pytest.raises(InputFileError):
        training_layer(img, pts, "glasses", np.random.default_rng(0))
    with pytest.raises(InputFileError):
        training_layer(img, pts[:60], "hand", np.random.default_rng(0))

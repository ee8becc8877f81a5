"""Landmarks on the shared photos: iBUG layout, MediaPipe->68 table, validity, odd inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import IMAGES
from d3dface.inputs.image_io import load_image
from d3dface.inputs.landmarks_base import NoFaceError, detect_landmarks
from d3dface.inputs.mediapipe_backend import MP_TO_IBUG68
from d3dface.inputs.occluders import apply_occluder

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def man():
    img = load_image(IMAGES / "faces" / "frontal_man_224.jpg")
    return img, detect_landmarks(img, "mediapipe")


def test_ibug_layout_on_a_real_photo(man):
    img, lm = man
    p = lm.points68
    assert lm.backend == "mediapipe" and lm.face_count == 1 and p.shape == (68, 2)
    x0, y0, x1, y1 = lm.face_box
    assert (p[:, 0] >= x0 - 1).all() and (p[:, 0] <= x1 + 1).all() and (p[:, 1] >= y0 - 1).all() and (p[:, 1] <= y1 + 1).all()
    # iBUG order in a frontal photo: jaw runs image-left -> chin -> image-right,
    # subject's right eye/brow (36-41, 17-21) on the image left, brows above eyes above nose tip above mouth above chin
    assert p[0, 0] < p[8, 0] < p[16, 0] and p[8, 1] == p[:17, 1].max()
    assert p[36:42, 0].mean() < p[42:48, 0].mean() and p[17:22, 0].mean() < p[22:27, 0].mean()
    assert p[17:27, 1].mean() < p[36:48, 1].mean() < p[30, 1] < p[48:68, 1].mean() < p[8, 1]
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]                 # eye corners left to right
    assert p[27, 1] < p[28, 1] < p[29, 1] < p[30, 1]                 # nose bridge downward
    assert p[31, 0] < p[33, 0] < p[35, 0] and p[48, 0] < p[51, 0] < p[54, 0]
    assert p[51, 1] < p[62, 1] <= p[66, 1] + 0.5 and p[66, 1] < p[57, 1]  # upper lip, inner lips (closed: equal), lower lip
    # symmetric pairs mirror about the face's vertical axis
    mid = p[[27, 28, 29, 30, 33, 51, 57, 8], 0].mean()
    for a, b in ((0, 16), (4, 12), (36, 45), (39, 42), (48, 54), (31, 35)):
        assert abs((p[a, 0] + p[b, 0]) / 2 - mid) < 0.06 * lm.inter_ocular * 3
    assert 0.3 * img.shape[1] < lm.inter_ocular < 0.8 * img.shape[1]
    assert lm.dense is not None and lm.dense.shape == (478, 2) and lm.valid_dense.all()
    assert not lm.has_confidence and lm.valid68.all()


def test_mp_table_agrees_with_flame_embeddings(flame_dir, topology):
    """Points 17-67 of the table sit within a few mm of FLAME's 68 embedding on the template."""
    v, f = topology.v_template.astype(np.float64), topology.faces
    emb = lambda fi, b: (v[f[fi]] * b[:, :, None]).sum(1)  # noqa: E731
    l68 = emb(topology.lmk68["full_faces"], topology.lmk68["full_bary"])
    mp = emb(topology.lmk_mediapipe["faces"], topology.lmk_mediapipe["bary"])
    ids = list(topology.lmk_mediapipe["ids"])
    dists = {}
    for i in range(17, 68):
        if MP_TO_IBUG68[i] in ids:
            dists[i] = np.linalg.norm(mp[ids.index(MP_TO_IBUG68[i])] - l68[i]) * 1000
    assert len(dists) == 51
    assert np.median(list(dists.values())) < 4.0 and max(dists.values()) < 15.0
    assert len(set(MP_TO_IBUG68.tolist())) == 68 and MP_TO_IBUG68.max() < 468


def test_landmarks_inside_an_occluder_are_invalid(man):
    img, lm = man
    occ = apply_occluder(img, lm.points68, "face_mask", 0)
    lm2 = detect_landmarks(occ.image, "mediapipe").with_occlusion(occ.mask, tau=0.2)
    inside = occ.mask[np.floor(lm2.points68[:, 1]).astype(int), np.floor(lm2.points68[:, 0]).astype(int)]
    assert inside.sum() >= 15                   # the mouth and lower jaw are under the mask
    assert not lm2.valid68[inside].any()        # none of them is valid
    assert lm2.valid68[~inside].all()           # all others are (MediaPipe has no confidence)
    # confidence below tau invalidates too
    low = lm2.confidence68.copy()
    low[[36, 45]] = 0.1
    from dataclasses import replace
    assert not replace(lm2, confidence68=low).with_occlusion(None, 0.2).valid68[[36, 45]].any()


def test_several_faces_tiny_huge_and_none(man):
    img, lm = man
    # two faces side by side, the right one twice as large: the largest is chosen, both counted
    small = cv2.resize(img, (112, 112))
    canvas = np.full((260, 400, 3), 90, np.uint8)
    canvas[20:132, 10:122] = small
    canvas[20:244, 160:384] = img
    two = detect_landmarks(canvas, "mediapipe")
    assert two.face_count == 2
    np.testing.assert_allclose(two.points68, lm.points68 + [160, 20], atol=0.04 * lm.inter_ocular)
    # a huge image (detected on a downscaled copy, reported in original pixels)
    big = cv2.resize(img, (2240, 2240), interpolation=cv2.INTER_CUBIC)
    lb = detect_landmarks(big, "mediapipe")
    np.testing.assert_allclose(lb.points68 / 10, lm.points68, atol=0.05 * lm.inter_ocular)
    # a tiny one
    tiny = cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA)
    lt = detect_landmarks(tiny, "mediapipe")
    np.testing.assert_allclose(lt.points68 * 224 / 64, lm.points68, atol=0.08 * lm.inter_ocular)
    with pytest.raises(NoFaceError, match="no face"):
        detect_landmarks(np.full((200, 200, 3), 127, np.uint8), "mediapipe")


@pytest.mark.parametrize("name", ["astronaut_public_domain.png", "woman_three_quarter_large.jpg", "grayscale_woman_450.jpg"])
def test_other_photos_find_one_face(name):
    img = load_image(IMAGES / "faces" / name)
    lm = detect_landmarks(img, "mediapipe")
    assert lm.face_count == 1
    p = lm.points68
    assert p[17:27, 1].mean() < p[30, 1] < p[8, 1]
    assert 0.05 * max(img.shape[:2]) < lm.inter_ocular < 0.8 * max(img.shape[:2])

"""The automatic mask's occlusion network: the crop alignment, the model file, and the
shipped network against the hand-drawn masks of real photos (an independent reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d3dface.errors import ModelFileError
from d3dface.inputs.occlusion_net import (CROP, TEMPLATE5, OcclusionNet, crop_transform, five_points,
                                          load_occlusion_net, net_from_payload, net_payload, occlusion_probability,
                                          shifted_crop_transforms, warp_from_crop, warp_to_crop)


def _random_similarity(rng):
    s, r = rng.uniform(0.5, 3.0), rng.uniform(-0.6, 0.6)
    R = s * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    return R, rng.uniform(-50, 300, 2)


def test_crop_transform_inverts_a_similarity_of_the_template():
    """Five points that are a similarity image of the template are mapped back onto it exactly."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        R, t = _random_similarity(rng)
        pts5 = TEMPLATE5 @ R.T + t
        p68 = np.zeros((68, 2))
        p68[36:42], p68[42:48], p68[30], p68[48], p68[54] = pts5[0], pts5[1], pts5[2], pts5[3], pts5[4]
        assert np.allclose(five_points(p68), pts5, atol=1e-4)
        A = crop_transform(p68)
        # the independent inverse: template = R^-1 (p - t)
        Rinv = np.linalg.inv(R)
        assert np.allclose(A[:, :2], Rinv, atol=1e-5) and np.allclose(A[:, 2], -Rinv @ t, atol=1e-3)


def test_shifted_crops_move_the_template_by_the_shift_and_average_into_the_probability():
    """The test-time crops put the five points TEMPLATE5 + (+-s, 0), (0, +-s); on a real photo the
    averaged probability is the mean of five single-crop runs whose landmarks are moved so that
    each crop is one of the shifted ones, and stays near the single crop's."""
    from conftest import IMAGES
    from d3dface.inputs.image_io import load_image
    from d3dface.inputs.landmarks_base import detect_landmarks

    rng = np.random.default_rng(5)
    R, t = _random_similarity(rng)
    p68 = np.zeros((68, 2))
    pts5 = TEMPLATE5 @ R.T + t
    p68[36:42], p68[42:48], p68[30], p68[48], p68[54] = pts5[0], pts5[1], pts5[2], pts5[3], pts5[4]
    Ts = shifted_crop_transforms(crop_transform(p68), 2.5)
    got = [pts5 @ T[:, :2].T + T[:, 2] for T in Ts]
    for g, d in zip(got, [(0, 0), (2.5, 0), (-2.5, 0), (0, 2.5), (0, -2.5)]):
        assert np.allclose(g, TEMPLATE5 + np.array(d), atol=1e-3)
    assert len(shifted_crop_transforms(crop_transform(p68), 0.0)) == 1

    img = load_image(IMAGES / "occluded" / "glasses_woman.jpg")
    lm = detect_landmarks(img, "mediapipe")
    net = load_occlusion_net()
    single = occlusion_probability(img, lm.points68, net)
    shifted = occlusion_probability(img, lm.points68, net, shift_px=3.0)
    # the same average from five single-crop runs, each on the photo moved so that its crop is one
    # of the shifted crops: moving the photo by (dx, dy) in crop px = moving the landmarks by it
    A = crop_transform(lm.points68)
    scale = np.hypot(*A[0, :2])
    acc = np.zeros(img.shape[:2], np.float32)
    for dx, dy in ((0, 0), (3, 0), (-3, 0), (0, 3), (0, -3)):
        d = -np.linalg.inv(A[:, :2]) @ np.array([dx, dy], np.float64)  # photo px that move the crop by (dx, dy)
        acc += occlusion_probability(img, lm.points68 + d, net) if (dx, dy) != (0, 0) else single
        assert abs(np.linalg.norm(d) * scale - np.hypot(dx, dy)) < 1e-6
    # (the crops agree to float32 rounding of the transform; bilinear sampling turns that into at
    # most a few thousandths on a sharp edge, 1e-6 on average)
    diff = np.abs(shifted - acc / 5)
    assert diff.mean() < 1e-5 and diff.max() < 0.01, (diff.mean(), diff.max())
    assert 1e-3 < np.abs(shifted - single).mean() < 0.02


def test_warps_carry_a_square_there_and_back():
    """A square painted in the photo lands where the transform puts it in the crop, and a crop map
    comes back onto the same photo pixels."""
    s_, r = 1.7, 0.3
    R, t = s_ * np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]), np.array([120.0, 60.0])
    A = np.concatenate([np.linalg.inv(R), (-np.linalg.inv(R) @ t)[:, None]], 1).astype(np.float32)
    img = np.zeros((400, 420, 3), np.uint8)
    centre = R @ np.array([64.0, 64.0]) + t          # photo point of the crop centre
    half = 8 * np.linalg.norm(R[:, 0])
    y0, y1, x0, x1 = (int(centre[1] - half), int(centre[1] + half), int(centre[0] - half), int(centre[0] + half))
    img[max(y0, 0):y1, max(x0, 0):x1] = 255
    crop = warp_to_crop(img, A)
    assert crop.shape == (CROP, CROP, 3) and crop[64, 64].min() == 255 and crop[5, 5].max() == 0
    back = warp_from_crop((crop[..., 0] > 127).astype(np.float32), A, img.shape[:2]) > 0.5
    inside = img[..., 0] > 0
    assert (back & inside).sum() / (back | inside).sum() > 0.8


def test_model_file_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    net = OcclusionNet((4, 8, 8, 8)).eval()
    x = torch.randn(1, 5, CROP, CROP)
    again = net_from_payload(net_payload(net, {"note": "test"}), "test")
    with torch.no_grad():
        assert torch.allclose(net(x), again(x), atol=2e-2)       # fp16 weights
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a usable occlusion network"):
        load_occlusion_net(bad)
    with pytest.raises(ModelFileError, match="not found"):
        load_occlusion_net(tmp_path / "missing.pt")
    d = net_payload(net)
    d["crop"] = 64
    torch.save(d, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="crop or template"):
        load_occlusion_net(tmp_path / "other.pt")


def test_training_command_writes_a_model_that_loads_and_resumes(tmp_path):
    """Two steps of ``train-occlusion-net`` on the shared photos, exported; a resumed run continues
    from its last step; the exported file is a usable network."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import IMAGES

    d3dface = Path(sys.executable).parent / "d3dface"
    run = tmp_path / "run"
    res = subprocess.run([d3dface, "train-occlusion-net", "--images", IMAGES, "--out", run, "--steps", "2",
                          "--batch-size", "2", "--export", tmp_path / "net.pt", "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {"last.pt", "log.csv", "model.pt"} <= {p.name for p in run.iterdir()}
    net = load_occlusion_net(tmp_path / "net.pt")
    img = np.full((200, 180, 3), 128, np.uint8)
    p68 = np.zeros((68, 2))
    p68[36:42], p68[42:48], p68[30], p68[48], p68[54] = (70, 80), (110, 80), (90, 105), (75, 130), (105, 130)
    prob = occlusion_probability(img, p68, net)
    assert prob.shape == (200, 180) and np.isfinite(prob).all() and 0 <= prob.min() <= prob.max() <= 1
    res = subprocess.run([d3dface, "train-occlusion-net", "--images", IMAGES, "--out", run, "--steps", "3",
                          "--batch-size", "2", "--resume", "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0 and "trained 3 steps" in res.stdout, res.stderr[-2000:]
    res = subprocess.run([d3dface, "train-occlusion-net", "--images", tmp_path, "--out", tmp_path / "r2"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.strip().splitlines()[-1].startswith("d3dface: error:")


def test_a_damaged_install_falls_back_to_the_skin_model(tmp_path, monkeypatch, capsys):
    """Without a readable network file, "net" gives the skin-colour model's mask and says so."""
    import d3dface.inputs.occlusion_net as occlusion_net
    from conftest import IMAGES
    from d3dface.inputs.image_io import load_image
    from d3dface.inputs.landmarks_base import detect_landmarks
    from d3dface.inputs.masks import estimate_occlusion, face_mask
    from d3dface.inputs.settings import AutoMaskSettings

    img = load_image(IMAGES / "occluded" / "glasses_woman.jpg")
    lm = detect_landmarks(img, "mediapipe")
    mf = face_mask(lm)
    skin = estimate_occlusion(img, lm, mf, AutoMaskSettings(method="skin"))
    broken = tmp_path / "occlusion_net.pt"
    broken.write_bytes(b"\0" * 100)
    monkeypatch.setattr(occlusion_net, "SHIPPED_NET", broken)
    capsys.readouterr()
    fallback = estimate_occlusion(img, lm, mf, AutoMaskSettings(method="net"))
    assert np.array_equal(fallback, skin) and fallback.any()
    err = capsys.readouterr().err
    assert "not a usable occlusion network" in err and "skin-colour model instead" in err
    with pytest.raises(Exception, match="unknown automatic mask method"):
        estimate_occlusion(img, lm, mf, AutoMaskSettings(method="magic"))


def _synthetic_face_points() -> np.ndarray:
    """68 points of a frontal face of inter-ocular distance 40 px centred in a 128 px crop."""
    p = np.zeros((68, 2))
    t = np.linspace(-1, 1, 17)
    p[:17] = np.c_[64 + 40 * t, 70 + 40 * (1 - t ** 2) ** 0.5]          # jaw, ear to ear through the chin
    p[17:27] = np.c_[np.linspace(34, 94, 10), np.full(10, 45)]           # brows
    p[27:36] = np.c_[np.full(9, 64), np.linspace(50, 80, 9)]             # nose
    p[36:42], p[42:48] = (44, 55), (84, 55)                              # eyes
    p[48:68] = np.c_[np.linspace(50, 78, 20), np.full(20, 92)]           # mouth
    return p


def test_training_shadows_darken_only_the_uncovered_skin():
    """Shadows that are not occluders never brighten a pixel and leave the occluder's own pixels
    as they were; another skin tone darkens the face and not the far background."""
    from d3dface.training.occlusion_net_training import OcclusionTrainSettings, _shadows, _skin_tone

    rng = np.random.default_rng(0)
    crop = rng.integers(60, 250, (CROP, CROP, 3)).astype(np.uint8)
    pts = _synthetic_face_points()
    label = np.zeros((CROP, CROP), bool)
    label[80:110, 40:90] = True  # an occluder over mouth and chin
    st = OcclusionTrainSettings(p_local_shadow=1.0, p_cast_shadow=1.0)
    darker = 0
    for _ in range(10):
        out = _shadows(crop, pts, label, rng, st)
        assert (out.astype(int) <= crop.astype(int) + 1).all()
        assert (out[label] == crop[label]).all()
        darker += int((out.astype(int) < crop.astype(int) - 10).any(-1).sum())
    assert darker > 0.02 * 10 * CROP * CROP  # each call puts a visible shadow somewhere
    toned = _skin_tone(crop, pts, rng).astype(int)
    assert (toned[50:90, 50:78].mean((0, 1)) < 0.9 * crop[50:90, 50:78].mean((0, 1))).all()  # the face
    assert np.abs(toned[:8, :8] - crop[:8, :8]).max() <= 1  # a corner far from the face


def test_training_highlights_brighten_only_the_uncovered_skin_near_the_face():
    """Highlights that are not occluders never darken a pixel, leave the occluder's pixels as
    they were, light some skin visibly and leave a far corner of the crop alone."""
    from d3dface.training.occlusion_net_training import _highlights

    rng = np.random.default_rng(1)
    crop = rng.integers(20, 200, (CROP, CROP, 3)).astype(np.uint8)
    pts = _synthetic_face_points()
    label = np.zeros((CROP, CROP), bool)
    label[80:110, 40:90] = True
    for _ in range(10):
        out = _highlights(crop, pts, label, rng).astype(int)
        assert (out >= crop.astype(int)).all()
        assert (out[label] == crop[label]).all()
        assert (out > crop.astype(int) + 10).any(-1).sum() > 30  # a visible patch somewhere
        assert np.abs(out[:4, :4] - crop[:4, :4]).max() <= 1

"""FAN: heatmap -> (x, y, confidence) decoding on constructed heatmaps and on a FAN network
with weights made here, checked against face-alignment's own decoder; clean fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d3dface.inputs import fan_backend as fb
from d3dface.inputs.landmarks_base import BackendUnavailable, detect_landmarks, get_backend


def test_decoding_of_constructed_gaussians():
    rng = np.random.default_rng(1)
    peaks = rng.uniform(4, 60, (68, 2))
    amps = rng.uniform(0.05, 1.0, 68)
    yy, xx = np.mgrid[0:64, 0:64]
    hm = np.stack([a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2)) for (x, y), a in zip(peaks, amps)])
    pts, _, conf = fb.decode_heatmaps(hm.astype(np.float32))
    # independent: the peak pixel holds ~amp, and face-alignment's +1 / +-0.25 / -0.5 rule
    # lands within 0.25 + 0.5 px of the true centre (pixel centres at integer coordinates)
    assert np.abs(conf - amps).max() < 0.25 * amps.max()
    np.testing.assert_array_less(np.abs(pts - 0.5 - peaks), 0.76)
    ix, iy = np.round(peaks).astype(int).T
    np.testing.assert_allclose(conf, hm[np.arange(68), iy, ix], rtol=1e-6)


@pytest.fixture(scope="module")
def random_fan():
    torch.manual_seed(0)
    net = fb.build_fan(1).eval()
    with torch.no_grad():   # give batch norms non-trivial statistics so heatmaps vary
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net


def test_network_decoding_matches_face_alignment(random_fan):
    fa_utils = pytest.importorskip("face_alignment.utils")
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (300, 260, 3)).astype(np.uint8)
    box = np.array([60.0, 70.0, 200.0, 230.0])
    be = fb.FanBackend(net=random_fan)
    hm, center, scale = be.heatmaps(img, box)
    assert hm.shape == (68, 64, 64)
    # the crop equals face-alignment's crop
    np.testing.assert_array_equal(fb.crop_image(img, center, scale), fa_utils.crop(img, torch.tensor(center), scale))
    pts, img_pts, conf = fb.decode_heatmaps(hm, center, scale)
    ref_pts, ref_img, ref_conf = fa_utils.get_preds_fromhm(hm[None], center, scale)
    np.testing.assert_allclose(pts, ref_pts[0], atol=1e-5)
    np.testing.assert_allclose(conf, ref_conf[0], rtol=1e-6)
    # face-alignment truncates image coordinates to integers; ours keep the fraction
    diff = img_pts - ref_img[0]
    assert (diff > -1e-6).all() and (diff < 1 + 1e-6).all() or np.abs(diff).max() <= 1 + 1e-6


@pytest.mark.slow
def test_weights_file_loads_through_the_backend(tmp_path, random_fan, monkeypatch):
    from d3dface.inputs.image_io import load_image
    from conftest import IMAGES

    path = tmp_path / "fan.pt"
    with torch.no_grad():
        torch.jit.trace(random_fan, torch.rand(1, 3, 256, 256)).save(str(path))  # as face-alignment ships it
    monkeypatch.setenv(fb.ENV_WEIGHTS, str(path))
    img = load_image(IMAGES / "faces" / "frontal_man_224.jpg")
    lm = detect_landmarks(img, "fan")
    assert lm.backend == "fan" and lm.has_confidence and lm.points68.shape == (68, 2)
    h, w = img.shape[:2]
    on_image = (lm.points68 >= 0).all(1) & (lm.points68[:, 0] < w) & (lm.points68[:, 1] < h)
    assert lm.valid68.tolist() == ((lm.confidence68 > 0.2) & on_image).tolist()
    # a face's confidences are the heatmap maxima of this very network on its crop
    be = fb.FanBackend(net=fb.load_fan(path))
    face = be.detect(img)[0]
    hm, center, scale = be.heatmaps(img, face.box)
    np.testing.assert_allclose(face.confidence68, hm.reshape(68, -1).max(1).clip(0), rtol=1e-5)
    np.testing.assert_allclose(face.points68, fb.decode_heatmaps(hm, center, scale)[1], atol=1e-6)
    # state-dict files load into the same class
    sd_path = tmp_path / "fan_sd.pth"
    torch.save(random_fan.state_dict(), sd_path)
    net2 = fb.load_fan(sd_path)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(net2(x), random_fan(x))


def test_auto_falls_back_with_one_line_notice(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(fb.ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(BackendUnavailable, match="not found"):
        get_backend("fan")
    from d3dface.inputs import landmarks_base

    landmarks_base._NOTICED.clear()
    be = get_backend("auto")
    err = capsys.readouterr().err.strip().splitlines()
    assert be.name == "mediapipe"
    assert len(err) == 1 and "FAN landmark weights not found" in err[0] and "MediaPipe" in err[0]

"""The perspective camera against an independent pinhole formula (OpenCV's projectPoints)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from d3dface.render import PerspectiveCamera, head_camera


def _camera(rotvec, t, f=(500.0, 520.0), c=(100.0, 80.0), size=(160, 200), dtype=torch.float64):
    T = lambda x: torch.tensor([x], dtype=dtype)  # noqa: E731
    return PerspectiveCamera(focal=T(f), principal=T(c), rotation=T(rotvec), translation=T(t), image_size=size)


def test_project_matches_numpy_pinhole_and_opencv():
    rng = np.random.default_rng(0)
    rotvec = rng.normal(scale=0.3, size=3)
    t = np.array([0.02, -0.01, -0.6])
    pts = rng.normal(scale=0.1, size=(50, 3))
    cam = _camera(rotvec.tolist(), t.tolist())
    uv, depth = cam.project(torch.tensor(pts)[None])

    # numpy: camera frame looks down -z with y up; pixels have y down
    R = Rotation.from_rotvec(rotvec).as_matrix()
    pc = pts @ R.T + t
    d = -pc[:, 2]
    u = 100.0 + 500.0 * pc[:, 0] / d
    v = 80.0 - 520.0 * pc[:, 1] / d
    np.testing.assert_allclose(depth[0].numpy(), d, rtol=1e-12)
    np.testing.assert_allclose(uv[0].numpy(), np.stack([u, v], 1), rtol=1e-10)

    # OpenCV: the same camera with its y and z axes flipped
    flip = np.diag([1.0, -1.0, -1.0])
    K = np.array([[500.0, 0, 100.0], [0, 520.0, 80.0], [0, 0, 1]])
    rvec_cv = Rotation.from_matrix(flip @ R).as_rotvec()
    uv_cv, _ = cv2.projectPoints(pts, rvec_cv, flip @ t, K, None)
    np.testing.assert_allclose(uv[0].numpy(), uv_cv[:, 0], atol=1e-6)
    np.testing.assert_allclose(cam.intrinsic_matrix()[0].numpy(), K)


def test_centre_and_default_orientation():
    cam = _camera([0.1, -0.2, 0.05], [0.01, 0.02, -0.5])
    R = Rotation.from_rotvec([0.1, -0.2, 0.05]).as_matrix()
    np.testing.assert_allclose(cam.centre()[0].numpy(), -R.T @ np.array([0.01, 0.02, -0.5]), atol=1e-12)
    # identity rotation: world +x is image right, world +y is image up, the nose (+z) is nearer
    cam = _camera([0.0, 0.0, 0.0], [0.0, 0.0, -0.5], c=(50.0, 50.0))
    uv, depth = cam.project(torch.tensor([[[0.0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]]], dtype=torch.float64))
    assert uv[0, 1, 0] > uv[0, 0, 0] and uv[0, 2, 1] < uv[0, 0, 1]
    assert depth[0, 3] < depth[0, 0]
    np.testing.assert_allclose(uv[0, 0].numpy(), [50.0, 50.0])


def test_head_camera_frames_a_head():
    cam = head_camera((224, 300), batch=3)
    assert cam.batch_size == 3 and cam.image_size == (224, 300)
    # a 0.25 m tall box around the origin spans 90% of the height, centred
    box = torch.tensor([[[0.0, 0.125, 0.0], [0.0, -0.125, 0.0]]]).expand(3, -1, -1)
    uv, depth = cam.project(box)
    np.testing.assert_allclose((uv[:, 1, 1] - uv[:, 0, 1]).numpy(), 0.9 * 224, rtol=1e-4)
    np.testing.assert_allclose(uv[:, :, 0].numpy(), 149.5, atol=1e-4)
    np.testing.assert_allclose((0.5 * (uv[:, 0, 1] + uv[:, 1, 1])).numpy(), 111.5, atol=1e-4)
    assert (depth > 0).all()
    np.testing.assert_allclose(cam.centre()[0, :2].numpy(), [0, 0], atol=1e-7)
    assert cam.centre()[0, 2] > 0.5


def test_camera_batch_one_expands():
    cam = head_camera(64)
    pts = torch.randn(4, 10, 3) * 0.05
    uv, depth = cam.project(pts)
    assert uv.shape == (4, 10, 2) and depth.shape == (4, 10)
    uv1, _ = cam.project(pts[2:3])
    torch.testing.assert_close(uv[2:3], uv1)


def test_projection_gradcheck_all_parameters():
    torch.manual_seed(0)
    pts = (torch.randn(1, 5, 3, dtype=torch.float64) * 0.1).requires_grad_(True)
    f = torch.tensor([[400.0, 410.0]], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([[60.0, 50.0]], dtype=torch.float64, requires_grad=True)
    r = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, 0.01, -0.7]], dtype=torch.float64, requires_grad=True)

    def fn(p, f, c, r, t):
        uv, d = PerspectiveCamera(f, c, r, t, (100, 120)).project(p)
        return uv, d

    assert torch.autograd.gradcheck(fn, (pts, f, c, r, t))

"""The forward model against independent numpy/scipy reference computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from d3dface.head_model import HeadLayer
from d3dface.head_model.flame_pickle import load_flame_pickle
from d3dface.head_model.landmarks import dynamic_contour_bins

from flame_fixture import synthetic_flame_arrays, write_flame_pickle


@pytest.fixture(scope="module")
def synth(tmp_path_factory, flame_dir, topology):
    arrays = synthetic_flame_arrays(flame_dir, seed=3)
    path = write_flame_pickle(tmp_path_factory.mktemp("f") / "flame.pkl", arrays)
    model = load_flame_pickle(path, topology=topology)
    return model, arrays, HeadLayer(model, dtype=torch.float64)


def _reference_lbs(arrays, beta, psi, pose):
    """Textbook LBS in numpy with scipy rotations, written independently of the engine."""
    v = arrays["v_template"] + arrays["shapedirs"][:, :, :300] @ beta + arrays["shapedirs"][:, :, 300:] @ psi
    R = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix()
    feat = np.concatenate([(R[j] - np.eye(3)).ravel() for j in range(1, 5)])
    v_posed = v + arrays["posedirs"] @ feat
    J = arrays["J_regressor"] @ v
    parents = [-1, 0, 1, 1, 1]
    G = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = J[j] - (J[parents[j]] if j else 0)
        G.append(local if j == 0 else G[parents[j]] @ local)
    out = np.zeros_like(v)
    for j in range(5):
        moved = v_posed @ G[j][:3, :3].T + G[j][:3, 3] - G[j][:3, :3] @ J[j]
        out += arrays["weights"][:, j:j + 1] * moved
    return out, v, v_posed, J


def test_zero_pose_is_template_plus_blendshapes(synth):
    model, arrays, layer = synth
    rng = np.random.default_rng(0)
    beta, psi = rng.normal(size=300), rng.normal(size=100)
    out = layer(torch.tensor(beta)[None], torch.tensor(psi)[None], torch.zeros(1, 15, dtype=torch.float64))
    expected = arrays["v_template"] + arrays["shapedirs"] @ np.concatenate([beta, psi])
    np.testing.assert_allclose(out.vertices[0].numpy(), expected, atol=1e-6)


def test_jaw_rotation_is_a_rigid_motion_about_the_jaw_joint(synth):
    model, arrays, layer = synth
    angle = np.deg2rad(17.0)
    pose = np.zeros(15)
    pose[6] = angle
    out = layer(pose=torch.tensor(pose)[None]).vertices[0].numpy()
    _, v, v_posed, J = _reference_lbs(arrays, np.zeros(300), np.zeros(100), pose)
    R = Rotation.from_euler("x", angle).as_matrix()
    jaw = arrays["jaw_vertices"]
    assert len(jaw) > 100
    # jaw vertices: exactly the rigid rotation about the jaw joint (of the pose-corrected rest shape)
    np.testing.assert_allclose(out[jaw], (v_posed[jaw] - J[2]) @ R.T + J[2], atol=1e-6)
    # vertices with no jaw weight: unmoved apart from the pose correctives
    rest = np.where(arrays["weights"][:, 2] == 0)[0]
    np.testing.assert_allclose(out[rest], v_posed[rest], atol=1e-6)
    # and the jaw really moved
    assert np.abs(out[jaw] - v[jaw]).max() > 5e-3


def test_full_pose_matches_reference(synth):
    model, arrays, layer = synth
    rng = np.random.default_rng(1)
    beta, psi, pose = rng.normal(size=300), rng.normal(size=100), rng.normal(0, 0.3, size=15)
    out = layer(torch.tensor(beta)[None], torch.tensor(psi)[None], torch.tensor(pose)[None])
    expected, *_ = _reference_lbs(arrays, beta, psi, pose)
    np.testing.assert_allclose(out.vertices[0].numpy(), expected, atol=1e-6)


def test_batched_equals_one_by_one(synth):
    _, _, layer = synth
    torch.manual_seed(0)
    shape, expr, pose = torch.randn(4, 300, dtype=torch.float64), torch.randn(4, 100, dtype=torch.float64), 0.2 * torch.randn(4, 15, dtype=torch.float64)
    batch = layer(shape, expr, pose).vertices
    for i in range(4):
        one = layer(shape[i:i + 1], expr[i:i + 1], pose[i:i + 1]).vertices
        torch.testing.assert_close(batch[i:i + 1], one)


def test_gradients_reach_every_parameter(synth):
    _, _, layer = synth
    shape = torch.zeros(2, 300, dtype=torch.float64, requires_grad=True)
    expr = torch.zeros(2, 100, dtype=torch.float64, requires_grad=True)
    pose = torch.zeros(2, 15, dtype=torch.float64, requires_grad=True)  # at zero: the delicate case
    out = layer(shape, expr, pose)
    lmk = layer.landmarks68(out.vertices, layer.head_rotation(pose))
    w = torch.randn_like(out.vertices)
    ((out.vertices * w).sum() + lmk.sum() + layer.landmarks_mediapipe(out.vertices).sum()).backward()
    for name, t in (("shape", shape), ("expression", expr), ("pose", pose)):
        assert torch.isfinite(t.grad).all(), name
        assert (t.grad.abs().sum(0) > 0).float().mean() > 0.9, name
    assert (pose.grad[:, 3:12].abs() > 0).all()  # neck and jaw (eyes move only eyeballs: also nonzero)


def test_landmarks_lie_on_the_surface(synth):
    """Each landmark lies in its embedding triangle: trimesh recovers the stored barycentrics
    from the 3D point, and the point is in the triangle's plane."""
    model, _, layer = synth
    out = layer(torch.randn(1, 300, dtype=torch.float64))
    verts = out.vertices[0].numpy()
    cases = [
        (layer.landmarks_mediapipe(out.vertices)[0], model.lmk_mediapipe["faces"], model.lmk_mediapipe["bary"]),
        (layer.landmarks68_static_embedding(out.vertices)[0], model.lmk68["full_faces"], model.lmk68["full_bary"]),
        (layer.landmarks68(out.vertices)[0][17:], model.lmk68["static_faces"], model.lmk68["static_bary"]),
    ]
    for pts, faces_idx, bary in cases:
        tri = verts[model.faces[faces_idx]]
        recovered = trimesh.triangles.points_to_barycentric(tri, pts.numpy())
        np.testing.assert_allclose(recovered, bary, atol=1e-5)
        normal = trimesh.triangles.normals(tri)[0]
        dist = np.abs(((pts.numpy() - tri[:, 0]) * normal).sum(-1))
        assert dist.max() < 1e-7  # float32 barycentrics: well under a micrometre
        assert (recovered > -1e-5).all()


def test_68_points_of_the_mean_head_have_the_expected_layout(topology):
    layer = HeadLayer(topology)
    lmk = layer.landmarks68(layer.v_template[None])[0].numpy()
    x, y, z = lmk.T
    # iBUG 68 scheme, the face looking down +z: point 0 on the subject's right (-x), 16 on the left (+x)
    assert np.all(np.diff(x[0:9]) > 0) and np.all(np.diff(x[8:17]) > 0)
    assert np.argmin(y[0:17]) == 8  # chin lowest on the contour
    assert abs(x[8]) < 0.005  # chin on the mid-line
    assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right
    assert y[36:48].mean() > y[27:36].mean() > y[48:68].mean()  # eyes above nose above mouth
    assert y[17:27].mean() > y[36:48].mean()  # brows above eyes
    assert np.argmax(z[27:36]) == 3  # nose tip (30) the most forward nose point
    mirror = [(0, 16), (36, 45), (39, 42), (48, 54), (31, 35)]
    for a, b in mirror:  # left/right symmetric about x = 0 (mean head is symmetric to a few mm)
        assert abs(x[a] + x[b]) < 0.004 and abs(y[a] - y[b]) < 0.004
    iod = np.linalg.norm(lmk[36] - lmk[45])
    assert 0.08 < iod < 0.11  # outer eye corners of an adult head, metres


@pytest.mark.parametrize("yaw_deg, expected_bin", [(0, 0), (12.2, 12), (39, 39), (60, 39), (-1.2, 40), (-20, 59), (-39, 78), (-70, 78)])
def test_dynamic_contour_bin_follows_head_yaw(yaw_deg, expected_bin):
    R = torch.tensor(Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix())[None]
    assert dynamic_contour_bins(R).item() == expected_bin


def test_dynamic_contour_moves_with_yaw(topology):
    layer = HeadLayer(topology)
    v = layer.v_template[None]
    R = torch.tensor(Rotation.from_euler("y", 30, degrees=True).as_matrix(), dtype=torch.float32)[None]
    turned = layer.landmarks68(v, R)[0]
    front = layer.landmarks68(v)[0]
    assert (turned[:17] - front[:17]).norm(dim=-1).max() > 0.005  # contour re-chosen
    torch.testing.assert_close(turned[17:], front[17:])  # static points unchanged


def test_cpu_and_cuda_agree(synth):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    _, _, layer = synth
    pose = 0.2 * torch.randn(2, 15, dtype=torch.float64)
    cpu = layer(pose=pose).vertices
    gpu = layer.to("cuda")(pose=pose.cuda()).vertices.cpu()
    layer.to("cpu")
    torch.testing.assert_close(cpu, gpu)

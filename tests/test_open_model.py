"""The open default head model (ICT-FaceKit Light carried onto FLAME's topology), checked
against independent computations on the source data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from d3dface.head_model import HeadLayer, HeadModel
from d3dface.head_model.load import DEFAULT_MODEL_FILE
from d3dface.head_model.mesh_quality import degenerate_triangles, flipped_triangles

from conftest import ASSETS

D3DFACE = Path(sys.executable).parent / "d3dface"
ICT = ASSETS / "ict-facekit" / "ict_facekit_light.npz"


@pytest.fixture(scope="module")
def model() -> HeadModel:
    """The shipped default (a rebuild is compared with it in test_shipped_models.py)."""
    return HeadModel.load(DEFAULT_MODEL_FILE)


@pytest.fixture(scope="module")
def ict_aligned(model, topology):
    """ICT's neutral in FLAME space, aligned here independently: scipy's Kabsch rotation on the
    inner 51 landmarks, then the least-squares scale for that rotation."""
    d = np.load(ICT)
    src = d["neutral"].astype(np.float64)
    lm = d["landmarks68"][17:]
    layer = HeadLayer(topology, dtype=torch.float64)  # the original FLAME template's landmarks
    dst = layer.landmarks68_static_embedding(torch.tensor(topology.v_template, dtype=torch.float64)[None])[0].numpy()[17:]
    a, b = src[lm] - src[lm].mean(0), dst - dst.mean(0)
    rot, _ = Rotation.align_vectors(b, a)
    s = (b * rot.apply(a)).sum() / (a ** 2).sum()
    return {"v": s * rot.apply(src - src[lm].mean(0)) + dst.mean(0), "scale": s, "rot": rot, "data": d}


def test_topology_regions_uvs_landmarks_kept(model, topology):
    assert model.is_flame_topology and model.num_shape == 100 and model.num_expr == 53
    np.testing.assert_array_equal(model.faces, topology.faces)
    np.testing.assert_array_equal(model.uvs, topology.uvs)
    for k in topology.regions:
        np.testing.assert_array_equal(model.regions[k], topology.regions[k])
    np.testing.assert_array_equal(model.lmk68["full_faces"], topology.lmk68["full_faces"])
    assert {"jawOpen", "mouthSmile_L", "eyeBlink_R", "browInnerUp_L", "mouthPucker", "cheekPuff_L"} <= set(model.expr_names)


def test_attribution_of_both_sources(model):
    assert "ICT-FaceKit" in model.meta["attribution"] and "MIT" in model.meta["licence"]
    assert "FLAME" in model.meta["attribution"] and "Permission is hereby granted" in model.meta["ict_licence_text"]


def test_registered_template_lies_on_the_ict_surface(model, ict_aligned):
    d = ict_aligned["data"]
    skin = d["part"] <= 1
    q = d["faces"]
    tris = np.concatenate([q[:, [0, 1, 2]], q[q[:, 3] >= 0][:, [0, 2, 3]]])
    tris = tris[skin[tris].all(1)]
    surface = trimesh.Trimesh(ict_aligned["v"], tris, process=False)
    face = model.regions["face"]
    _, dist, _ = trimesh.proximity.closest_point(surface, model.v_template[face].astype(np.float64))
    assert dist.mean() < 1e-3  # target: mean < 1 mm on the face region
    assert np.percentile(dist, 95) < 3e-3
    report = json.loads(model.meta["build_report"])
    assert abs(report["face_surface_distance_mean_mm"] - dist.mean() * 1000) < 0.2


def test_inner_landmarks_agree_after_registration(model, ict_aligned):
    layer = HeadLayer(model, dtype=torch.float64)
    ours = layer.landmarks68_static_embedding(torch.tensor(model.v_template, dtype=torch.float64)[None])[0].numpy()
    theirs = ict_aligned["v"][ict_aligned["data"]["landmarks68"]]
    err = np.linalg.norm(ours - theirs, axis=1)
    used = np.r_[27:68]  # the landmarks the two models define alike (nose, eyes, mouth)
    assert err[used].mean() < 3e-3 and np.median(err[used]) < 2.5e-3


def test_mesh_health(model):
    t, f = model.v_template.astype(np.float64), model.faces
    shapes = [t]
    for k in range(10):
        shapes += [t + 3 * model.shapedirs[:, :, k], t - 3 * model.shapedirs[:, :, k]]
    shapes += [t + model.exprdirs[:, :, k] for k in range(model.num_expr)]
    flipped = [len(flipped_triangles(t, s, f)) for s in shapes]
    degenerate = [len(degenerate_triangles(s, f)) for s in shapes]
    assert sum(flipped) == 0 and sum(degenerate) == 0, (flipped, degenerate)


def test_modes_keep_their_meaning(model, ict_aligned):
    """Area-weighted RMS displacement of each transferred mode on the face equals ICT's own
    on its face surface (same physical region: the FLAME face region's footprint on ICT)."""
    d = ict_aligned["data"]
    face = model.regions["face"]
    flame_face = trimesh.Trimesh(model.v_template, model.faces, process=False)
    areas = np.zeros(model.num_vertices)
    np.add.at(areas, model.faces.ravel(), np.repeat(flame_face.area_faces / 3, 3))
    ict_v = ict_aligned["v"]
    # ICT vertices inside the FLAME face footprint: nearest FLAME vertex is a face vertex
    from scipy.spatial import cKDTree

    _, nn = cKDTree(model.v_template).query(ict_v)
    in_face = np.isin(nn, face) & (d["part"] <= 1)
    q = d["faces"]
    tris = np.concatenate([q[:, [0, 1, 2]], q[q[:, 3] >= 0][:, [0, 2, 3]]])
    ict_mesh = trimesh.Trimesh(ict_v, tris, process=False)
    ict_area = np.zeros(len(ict_v))
    np.add.at(ict_area, tris.ravel(), np.repeat(ict_mesh.area_faces / 3, 3))
    ratios = []
    for k in range(10):
        ours = np.sqrt((areas[face] * (model.shapedirs[face, :, k] ** 2).sum(1)).sum() / areas[face].sum())
        delta = d["identity_deltas"][k].astype(np.float64) * ict_aligned["scale"]
        theirs = np.sqrt((ict_area[in_face] * (delta[in_face] ** 2).sum(1)).sum() / ict_area[in_face].sum())
        ratios.append(ours / theirs)
    ratios = np.array(ratios)
    assert np.all(np.abs(ratios - 1) < 0.1), ratios


def test_eyeballs_stay_rigid(model):
    for region in ("left_eyeball", "right_eyeball"):
        idx = model.regions[region]
        rest = model.v_template[idx].astype(np.float64)
        d0 = np.linalg.norm(rest[:, None] - rest[None, ::25], axis=-1)
        # a rotation is rigid at weight 1; linear blendshapes extrapolate it only approximately
        for dirs, scale in ((model.shapedirs, 1.0), (model.shapedirs, -1.0), (model.exprdirs, 1.0)):
            for k in range(dirs.shape[2]):
                moved = rest + scale * dirs[idx, :, k]
                d1 = np.linalg.norm(moved[:, None] - moved[None, ::25], axis=-1)
                assert np.abs(d1 - d0).max() < 5e-5  # rigid to 0.05 mm (2I - R is a rotation only to second order)


def test_derived_joints_are_where_anatomy_puts_them(model):
    J = model.joint_regressor @ model.v_template
    for j, region in ((3, "left_eyeball"), (4, "right_eyeball")):
        np.testing.assert_allclose(J[j], model.v_template[model.regions[region]].mean(0), atol=1e-6)
    assert J[0, 1] < J[1, 1] < J[2, 1] < J[3, 1]  # root < neck < jaw < eyes in height
    ear = model.v_template[model.regions["left_ear"]].mean(0)
    assert abs(J[2, 0]) < 1e-6 and abs(J[2, 1] - ear[1]) < 0.03 and abs(J[2, 2] - ear[2]) < 0.04  # jaw hinge near the ears
    np.testing.assert_allclose(model.joint_regressor.sum(1), 1, atol=1e-5)


def test_rotation_about_the_jaw_joint_reproduces_jaw_open(model):
    """Rotate the lower face about the derived jaw joint (through the LBS forward model) and
    compare with the carried jawOpen shape, computed independently with scipy."""
    report = json.loads(model.meta["build_report"])
    angle = np.radians(report["jaw_open_angle_deg"])
    layer = HeadLayer(model, dtype=torch.float64)
    pose = torch.zeros(1, 15, dtype=torch.float64)
    pose[0, 6] = angle
    posed = layer(pose=pose).vertices[0].numpy()
    J = model.joint_regressor.astype(np.float64) @ model.v_template.astype(np.float64)
    w = model.skinning_weights[:, 2:3].astype(np.float64)
    t = model.v_template.astype(np.float64)
    rigid = Rotation.from_rotvec([angle, 0, 0]).apply(t - J[2]) + J[2]
    np.testing.assert_allclose(posed, w * rigid + (1 - w) * t, atol=1e-6)  # LBS: blend of rigid jaw and rest
    chin = np.where(model.skinning_weights[:, 2] > 0.9)[0]
    assert len(chin) > 50
    jaw_open = model.v_template[chin] + model.exprdirs[chin, :, model.expr_names.index("jawOpen")]
    err = np.linalg.norm(posed[chin] - jaw_open, axis=1)
    motion = np.linalg.norm(jaw_open - model.v_template[chin], axis=1)
    assert np.sqrt((err ** 2).mean()) < 8e-3 and err.mean() < 0.35 * motion.mean()


def test_skinning_weights(model):
    W = model.skinning_weights
    np.testing.assert_allclose(W.sum(1), 1, atol=1e-5)
    assert (W >= 0).all()
    for j, region in ((3, "left_eyeball"), (4, "right_eyeball")):
        assert np.all(W[model.regions[region], j] == 1)
    e = model.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    jump = np.abs(W[e[:, 0]] - W[e[:, 1]]).max()
    assert jump < 0.35  # smooth over the mesh: no seam creases


@pytest.mark.parametrize("broken", ["ict_empty", "flame_missing_file"])
def test_bad_inputs_name_what_is_missing(broken, tmp_path):
    ict, flame = tmp_path / "ict", tmp_path / "flame"
    ict.mkdir()
    shutil.copytree(ASSETS / "flame", flame)
    if broken == "ict_empty":
        expect = "ict_facekit_light.npz"
    else:
        shutil.copy(ICT, ict / ICT.name)
        (flame / "landmark_embedding.npz").unlink()
        expect = "landmark_embedding.npz"
    res = subprocess.run([D3DFACE, "build-open-model", "--ict", ict, "--flame-assets", flame, "--out", tmp_path / "m.npz"],
                         capture_output=True, text=True)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "missing" in lines[0], res.stderr
    assert not (tmp_path / "m.npz").exists()


def test_render_model_sheet(tmp_path, model):
    """The picture sheet: 13 heads (mean, +-3 sd of 3 modes, 6 expressions), front and side,
    and the pixels differ where the shapes differ (jawOpen's mouth region vs the mean)."""
    import cv2

    out = tmp_path / "sheet.png"
    res = subprocess.run([D3DFACE, "render-model", "--size", "128", "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    img = cv2.imread(str(out))
    pad, tile = 2, 128
    assert img.shape[0] == 4 * (tile + pad) + pad and img.shape[1] == 8 * (tile + pad) + pad
    def tile_at(r, c):
        y, x = pad + r * (tile + pad), pad + c * (tile + pad)
        return img[y:y + tile, x:x + tile].astype(int)
    mean, jaw_open = tile_at(0, 0), tile_at(1, 6)  # row-major, two tiles per head, four heads per row
    assert (np.abs(mean - jaw_open).sum(-1) > 60).sum() > 30  # the open mouth changes pixels
    assert (np.abs(mean[20:45] - jaw_open[20:45]).sum(-1) > 60).sum() < 20  # the forehead (below the label) barely

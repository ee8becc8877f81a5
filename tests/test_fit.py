"""The partial fit (Algorithm 1): local models, the fit on synthetic faces with known ground
truth, on a real photo with a hand-drawn mask, and the fit command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from d3dface.evaluation.metrics import align_to
from d3dface.evaluation.synthetic_faces import SyntheticFaceMaker
from d3dface.training.local_models import LocalModelSettings, build_local_model, corpus_from_model, sample_corpus
from d3dface.fit.partial_fit import PartialFitter
from d3dface.fit.settings import FIT_MODES, FitSettings, uses_local_model
from d3dface.head_model import load_head_model
from d3dface.inputs.landmarks_base import inter_ocular_distance
from d3dface.outputs.mesh_files import write_mesh

from conftest import ASSETS, IMAGES

TEST_SEED_FOR_DETECTION = 1_000_017

D3DFACE = Path(sys.executable).parent / "d3dface"
TEXTURE = ASSETS / "flame" / "mean_texture.jpg"


@pytest.fixture(scope="module")
def model():
    return load_head_model(None)


@pytest.fixture(scope="module")
def local(model):
    return build_local_model(model, settings=LocalModelSettings(corpus_size=400, components_per_region=6), log=lambda m: None)


def test_local_bases_live_in_their_regions(model, local):
    W = local.region_weights
    assert W.shape == (12, model.num_vertices)
    eyes = np.concatenate([model.regions["left_eyeball"], model.regions["right_eyeball"]])
    np.testing.assert_allclose(W.sum(0)[np.setdiff1d(np.arange(model.num_vertices), eyes)], 1, atol=1e-5)
    assert np.all(W[:, eyes] == 0)
    for k in range(local.num_components):
        r = local.component_region[k]
        outside = W[r] == 0
        assert np.abs(local.basis[outside, :, k]).max() == 0
    assert set(np.unique(local.component_kind)) == {0, 1}
    assert list(local.global_shape) == list(range(10)) and len(local.global_expr) == 10


def test_local_models_explain_what_the_truncated_global_model_misses(model, local):
    """On held-out heads, adding the local shape bases (least squares, independent numpy) removes
    a large part of the residual left by the 10-identity / all-expression global model."""
    beta, psi = sample_corpus(model, 20, seed=777, expression_probability=0.15)
    meshes = corpus_from_model(model, beta, psi)
    rows = model.regions["face"]
    glob = np.concatenate([model.shapedirs[:, :, :10], model.exprdirs], 2)
    loc = local.basis[:, :, local.component_kind == 0]
    def residual(basis):
        B = basis[rows].reshape(-1, basis.shape[2])
        d = (meshes - model.v_template)[:, rows].reshape(20, -1).T
        coef, *_ = np.linalg.lstsq(B, d, rcond=None)
        return np.linalg.norm(d - B @ coef)
    assert residual(np.concatenate([glob, loc], 2)) < 0.6 * residual(glob)


def test_build_local_model_from_a_mesh_folder(tmp_path, model):
    rng = np.random.default_rng(0)
    for i in range(12):
        v = model.v_template + model.shapedirs @ rng.standard_normal(model.num_shape)
        write_mesh(tmp_path / f"m{i:02d}.ply", v, model.faces)
    out = tmp_path / "local.npz"
    res = subprocess.run([D3DFACE, "build-local-model", "--meshes", tmp_path, "--components", "3", "--out", out],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    write_mesh(bad / "x.ply", model.v_template[:100], model.faces[:10])
    res = subprocess.run([D3DFACE, "build-local-model", "--meshes", bad, "--out", tmp_path / "x.npz"], capture_output=True, text=True)
    assert res.returncode != 0 and "100 vertices" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def synthetic(model):
    return SyntheticFaceMaker(model, TEXTURE).make(424242, "glasses")


@pytest.mark.parametrize("mode", FIT_MODES)
def test_fit_recovers_a_synthetic_head(model, local, synthetic, mode):
    torch.manual_seed(0)
    fitter = PartialFitter(model, local if uses_local_model(mode) else None, FitSettings(mode=mode), TEXTURE)
    res = fitter.fit(synthetic.evidence)
    assert res.landmark_error_px < 3.0
    face = model.regions["face"]
    gt = synthetic.gt_vertices.astype(np.float64)
    # similarity alignment: one photo cannot tell a small near head from a large far one
    def err(v):
        return np.linalg.norm(align_to(v.astype(np.float64), gt, face, scale=True)[face] - gt[face], axis=1).mean() * 1000
    assert err(res.vertices) < 0.6 * err(model.v_template), (err(res.vertices), err(model.v_template))
    # M_o^v agrees with the ground truth's hidden vertices on the face
    gt, ours = synthetic.gt_hidden[face], res.occluded[face]
    iou = (gt & ours).sum() / (gt | ours).sum()
    assert iou > 0.7, iou


def test_fit_on_a_real_photo_with_its_mask(model, local):
    from d3dface.fit.evidence import evidence_from_inputs
    from d3dface.inputs import prepare_face_inputs

    inputs = prepare_face_inputs(IMAGES / "occluded" / "glasses_woman.jpg", mask=IMAGES / "occluded" / "glasses_woman_mask.png",
                                 backend="mediapipe")
    ev = evidence_from_inputs(inputs)
    res = PartialFitter(model, local, FitSettings(), TEXTURE).fit(ev)
    assert res.landmark_error_px < 5.0
    _check_dense_reprojection(model, ev, res)
    # the glasses hide the eyes: eye-region vertices occluded, the nose tip and the chin visible
    eye_occ = res.occluded[model.regions["left_eye_region"]].mean()
    assert eye_occ > 0.8
    lips = res.occluded[model.regions["lips"]]
    assert lips.mean() < 0.5
    assert set(res.timings) >= {"landmarks", "photometric", "total"}
    _check_photometric_error(model, ev, res)


def _check_photometric_error(model, ev, res):
    """The result's photometric error, recomputed from its vertices, camera, light and albedo by a
    renderer of its own, on the seen face pixels; and smaller than a flat skin tone's."""
    from d3dface.render import Renderer

    r = Renderer.from_head_model(model)
    out = r.render(torch.as_tensor(res.vertices)[None], res.camera_object(), light=torch.as_tensor(res.light)[None],
                   vertex_colors=torch.as_tensor(res.albedo)[None])
    seen = (out.mask[0, 0].numpy() > 0) & ev.face_mask & ~ev.occlusion_mask
    image = out.image[0].permute(1, 2, 0).numpy()
    err = np.abs(image - ev.image).mean(2)[seen].mean()
    assert seen.sum() > 1000 and abs(err - res.photometric_error) < 1e-4, (err, res.photometric_error)
    flat = np.abs(ev.image[seen].mean(0) - ev.image[seen]).mean()  # the best single colour (near enough)
    assert res.photometric_error < 0.9 * flat, (res.photometric_error, flat)


def test_smooth_albedo_basis_is_the_meshs_low_frequency_laplacian_eigenbasis(model):
    """Each row solves L b = lambda b for the graph Laplacian built here from the triangles' edges
    (eyeballs left out), with small ascending lambdas starting at 0 (the constant); the rows are
    orthogonal, of unit root-mean-square, 0 on the eyeballs, and the same on every call."""
    import scipy.sparse as sp

    from d3dface.fit.albedo import smooth_albedo_basis
    from d3dface.fit.regions import eyeball_vertices

    k = 12
    B = smooth_albedo_basis(model, k).astype(np.float64)
    assert B.shape == (k, model.num_vertices)
    assert np.array_equal(B, smooth_albedo_basis(model, k).astype(np.float64))
    eyes = eyeball_vertices(model)
    keep = np.ones(model.num_vertices, bool)
    keep[eyes] = False
    assert np.all(B[:, eyes] == 0)
    e = np.sort(model.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    e = np.unique(e[keep[e].all(1)], axis=0)
    idx = -np.ones(model.num_vertices, int)
    idx[keep] = np.arange(keep.sum())
    n = int(keep.sum())
    W = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[idx[e[:, 0]], idx[e[:, 1]]], np.r_[idx[e[:, 1]], idx[e[:, 0]]])), (n, n)).tocsr()
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    b = B[:, keep]
    lam = np.einsum("kv,kv->k", b, (L @ b.T).T) / np.einsum("kv,kv->k", b, b)
    resid = np.linalg.norm((L @ b.T).T - lam[:, None] * b, axis=1) / np.linalg.norm(b, axis=1)
    assert resid.max() < 1e-5, resid
    assert lam[0] < 1e-8 and np.allclose(b[0], b[0].mean()) and np.all(np.diff(lam) >= -1e-9), lam
    assert lam[-1] < 0.02 * np.asarray(W.sum(1)).mean(), lam  # low frequencies: far below a vertex's degree
    G = b @ b.T / n
    assert np.allclose(G, np.eye(k), atol=1e-6), G


def test_regions_plus_smooth_albedo_paints_detail_only_where_the_face_is_seen(model, local, synthetic):
    """With albedo_basis "regions+smooth" the albedo is, recomputed in numpy from the fitted params,
    mean * gain + the regional offsets + the smooth offsets weighted by the fit's seen weight; that
    weight is 1 inside the seen face and 0 on most of the head, where the albedo is the regional
    one; and the smooth rows paint the seen face."""
    from d3dface.fit.albedo import painted_eyes_albedo, smooth_albedo_basis

    st = FitSettings(iters_landmarks=80, iters_photometric=40)
    both = PartialFitter(model, local, replace(st, albedo_basis="regions+smooth")).fit(synthetic.evidence)
    R, K = local.region_weights.shape[0], st.albedo_smooth_modes
    off = both.params["offsets"].astype(np.float64)
    w = both.params["albedo_seen"].astype(np.float64)
    assert off.shape == (R + K, 3) and w.min() >= 0 and w.max() <= 1
    base = painted_eyes_albedo(model) * both.params["gain"]
    regional = np.clip(base + local.region_weights.T @ off[:R], 0, 1)
    full = np.clip(base + local.region_weights.T @ off[:R] + (smooth_albedo_basis(model, K) * w).T @ off[R:], 0, 1)
    np.testing.assert_allclose(both.albedo, full, atol=1e-5)
    # the weight: 1 inside the seen face, 0 on most of the head (the back, the hidden eyes)
    assert (w > 0.999).sum() > 300 and (w == 0).sum() > 0.3 * model.num_vertices, ((w > 0.999).sum(), (w == 0).sum())
    np.testing.assert_allclose(both.albedo[w == 0], regional[w == 0], atol=1e-5)
    assert np.abs(both.albedo[w > 0.999] - regional[w > 0.999]).max() > 0.02


def test_the_default_albedo_explains_a_real_photo_better_than_the_regional_one(model, local):
    """On a real photo with its hand-drawn mask, the default albedo ("regions+smooth") leaves a
    smaller photometric error on the seen face than the regional albedo alone, and the error is
    recomputed here from a render of the result (the fit's camera, light and albedo)."""
    from d3dface.fit.evidence import evidence_from_inputs
    from d3dface.inputs import prepare_face_inputs
    from d3dface.render.renderer import Renderer

    assert FitSettings().albedo_basis == "regions+smooth"
    photo = IMAGES / "occluded" / "watch_over_nose.jpg"
    ev = evidence_from_inputs(prepare_face_inputs(photo, mask=photo.with_name("watch_over_nose_mask.png"),
                                                  backend="mediapipe"))
    fits = {b: PartialFitter(model, local, FitSettings(albedo_basis=b)).fit(ev, seed=0) for b in ("regions", "regions+smooth")}
    for fit in fits.values():
        out = Renderer.from_head_model(model).render(torch.as_tensor(fit.vertices)[None], fit.camera_object(),
                                                     light=torch.as_tensor(fit.light)[None],
                                                     vertex_colors=torch.as_tensor(fit.albedo)[None])
        seen = (out.mask[0, 0].numpy() > 0) & ev.face_mask & ~ev.occlusion_mask
        err = np.abs(out.image[0].permute(1, 2, 0).numpy() - ev.image).mean(2)[seen].mean()
        assert abs(err - fit.photometric_error) < 1e-4, (err, fit.photometric_error)
    assert fits["regions+smooth"].photometric_error < 0.9 * fits["regions"].photometric_error, \
        {b: f.photometric_error for b, f in fits.items()}


def test_focal_length_is_fixed_unless_estimated_and_then_held_by_its_prior(model, local, synthetic):
    """Without estimate_focal the camera's focal length is exactly the one of fov_deg; with it the
    fit moves it, within 3 prior sd, and a prior 1e4 times stronger holds it near the prior's mean."""
    from d3dface.render.cameras import focal_from_fov

    st = FitSettings(iters_landmarks=60, iters_photometric=10)
    f0 = focal_from_fov(synthetic.evidence.size, st.fov_deg)
    fixed = PartialFitter(model, local, st).fit(synthetic.evidence)
    assert fixed.camera["focal"] == [np.float32(f0).item()] * 2
    free = PartialFitter(model, local, replace(st, estimate_focal=True)).fit(synthetic.evidence)
    held = PartialFitter(model, local, replace(st, estimate_focal=True, w_focal_reg=1e2)).fit(synthetic.evidence)
    log_free, log_held = np.log(free.camera["focal"][0] / f0), np.log(held.camera["focal"][0] / f0)
    assert 1e-4 < abs(log_free) < 3 * st.focal_prior_sd and free.camera["focal"][0] == free.camera["focal"][1]
    # (Adam's steps of about lr keep it from settling exactly: it stays within ~lr of the prior's mean)
    assert abs(log_held) < 2 * st.lr and abs(log_held) < 0.5 * abs(log_free), (log_free, log_held)


def test_robust_photometric_scale_is_c_log1p_of_the_pixel_error(model, local, synthetic):
    """Stage 2's loss with photometric_robust_scale c differs from the L1 loss's by exactly
    w_pho (mean e - mean c log(1 + e / c)) over the rendered seen pixels, e recomputed here."""
    ev = synthetic.evidence
    fitters = {c: PartialFitter(model, local, FitSettings(photometric_robust_scale=c)) for c in (0.0, 0.05)}
    f0 = fitters[0.0]
    p = f0._initial_params(ev)
    ev_t = f0._evidence_tensors(ev)
    with torch.no_grad():
        losses = {c: float(f._photometric_stage_loss(p, ev, ev_t)) for c, f in fitters.items()}
        out = f0.renderer.render(f0.shaped(p), f0._camera(p, ev.size), light=p["light"],
                                 vertex_colors=f0.albedo(p["gain"], p["offsets"]))
    seen = (out.mask[0, 0].numpy() > 0) & ev.face_mask & ~ev.occlusion_mask
    err = np.abs(out.image[0].permute(1, 2, 0).numpy() - ev.image).mean(2)[seen].astype(np.float64)
    expected = FitSettings().w_photometric * (err.mean() - (0.05 * np.log1p(err / 0.05)).mean())
    assert expected > 1e-3
    assert abs((losses[0.0] - losses[0.05]) - expected) < 1e-4 * max(1.0, expected), (losses, expected)


def _check_dense_reprojection(model, ev, res):
    """The dense landmarks the fit used, reprojected independently (numpy pinhole of the result's
    camera, the shipped embedding's barycentrics): the report's error agrees, and is small."""
    import cv2

    from d3dface.head_model.landmark_embedding import MediaPipeEmbedding

    emb = MediaPipeEmbedding.load()
    pts3 = (res.vertices[model.faces[emb.faces]].astype(np.float64) * emb.bary[:, :, None]).sum(1)
    c = res.camera
    R = cv2.Rodrigues(np.asarray(c["rotation"], np.float64))[0]
    pc = pts3 @ R.T + np.asarray(c["translation"])
    depth = -pc[:, 2]
    uv = np.stack([c["principal"][0] + c["focal"][0] * pc[:, 0] / depth,
                   c["principal"][1] - c["focal"][1] * pc[:, 1] / depth], 1)
    used = ev.valid_mp & ~emb.contour & ~emb.iris
    assert 250 < used.sum() < 478 - 100  # the glasses hide the eyes' points, the rest is seen
    iod = np.linalg.norm(ev.landmarks68[36] - ev.landmarks68[45])
    err = 100 * np.linalg.norm(uv[used] - ev.points_mp[used], axis=1).mean() / iod
    assert abs(err - res.reprojection["dense_error_iod_pct"]) < 0.01, (err, res.reprojection["dense_error_iod_pct"])
    assert err < 2.5, err


def test_fit_command_writes_outputs_and_fails_cleanly(tmp_path):
    out = tmp_path / "fit"
    res = subprocess.run([D3DFACE, "fit", IMAGES / "occluded" / "watch_over_nose.jpg", "--mask",
                          IMAGES / "occluded" / "watch_over_nose_mask.png", "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert {p.name for p in out.iterdir()} == {"fit.obj", "fit.npz", "overlay.png"}
    d = np.load(out / "fit.npz")
    assert d["vertices"].shape == (5023, 3) and d["occluded"].dtype == bool
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    res = subprocess.run([D3DFACE, "fit", bad, "--out", tmp_path / "never"], capture_output=True, text=True)
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "never").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_detected_landmarks_come_from_mediapipe_on_the_occluded_render(model):
    """``landmarks="detected"``: the fit's evidence is the product's input path on the rendered
    face. The same seed renders the same face; MediaPipe's points, carried back from the crop,
    land near the projection of the embedded points (the "projected" evidence, 1 px noise), and
    points well inside the occluder are not valid."""
    seed, kind = TEST_SEED_FOR_DETECTION, "glasses"
    proj = SyntheticFaceMaker(model, TEXTURE, heads="out-of-span").make(seed, kind).evidence
    det = SyntheticFaceMaker(model, TEXTURE, heads="out-of-span", landmarks="detected").make(seed, kind).evidence
    assert proj.crop is None and det.crop is not None and det.points_mp is not None
    back = det.crop.from_crop(det.points_mp)
    both = ~np.isnan(proj.points_mp).any(1)
    d = np.linalg.norm(back[both] - proj.points_mp[both], axis=1)
    iod = inter_ocular_distance(proj.landmarks68)
    assert np.median(d) < 0.06 * iod, (np.median(d), iod)
    xy = np.round(back).astype(int)
    inside = (xy >= 0).all(1) & (xy < proj.size).all(1)
    hidden = np.zeros(len(xy), bool)
    core = cv2.erode(proj.occlusion_mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # clear of its edge
    hidden[inside] = core[xy[inside, 1], xy[inside, 0]]
    assert hidden.sum() > 20 and not det.valid_mp[hidden].any()
    with pytest.raises(ValueError, match="landmarks"):
        SyntheticFaceMaker(model, TEXTURE, landmarks="exact")


@pytest.mark.slow
def test_evaluate_fit_command(tmp_path):
    res = subprocess.run([D3DFACE, "evaluate-fit", "--n", "1", "--out", tmp_path], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "global+local" in res.stdout and "full+local" in res.stdout and (tmp_path / "table1.md").exists()
    assert "ground truth: out-of-span heads" in res.stdout


def test_out_of_span_heads_lie_outside_the_models_span(model):
    """Least squares over every identity and expression mode explains a head drawn from the model
    exactly, and leaves millimetres of an out-of-span head unexplained (face region)."""
    from d3dface.evaluation.out_of_span import OutOfSpanOffsets

    rng = np.random.default_rng(7)
    beta = rng.standard_normal(model.num_shape)
    basis = np.concatenate([model.shapedirs, model.exprdirs], axis=2).astype(np.float64)  # (V, 3, K)
    face = model.regions["face"]
    A = basis[face].reshape(-1, basis.shape[2])

    def residual_mm(offset):
        x, *_ = np.linalg.lstsq(A, offset[face].ravel(), rcond=None)
        return np.linalg.norm((offset[face].ravel() - A @ x).reshape(-1, 3), axis=1).mean() * 1000

    in_span = np.einsum("vck,k->vc", model.shapedirs.astype(np.float64), beta)
    assert residual_mm(in_span) < 1e-3
    assert residual_mm(OutOfSpanOffsets(model)(rng, beta).astype(np.float64)) > 0.5


@pytest.mark.slow
def test_evaluate_reprojection_command(tmp_path):
    """Two real photos (one face, one occluded with its mask): the table, the overlays, the JSON."""
    import json
    import shutil

    images = tmp_path / "images"
    (images / "faces").mkdir(parents=True)
    (images / "occluded").mkdir()
    shutil.copy(IMAGES / "faces" / "frontal_man_224.jpg", images / "faces")
    for name in ("glasses_woman.jpg", "glasses_woman_mask.png"):
        shutil.copy(IMAGES / "occluded" / name, images / "occluded")
    out = tmp_path / "rep"
    res = subprocess.run([D3DFACE, "evaluate-reprojection", "--images", images, "--out", out, "--json", tmp_path / "r.json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [(r["name"], r["mask"]) for r in rows] == [("frontal_man_224", "none"), ("glasses_woman", "given")]
    assert all(0 < r["dense_iod_pct"] < 3.0 and r["dense_points"] > 100 for r in rows), rows
    assert all(0.01 < r["photometric_error"] < 0.15 for r in rows), rows
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["frontal_man_224.png", "glasses_woman.png"]
    assert "| glasses_woman | given |" in (out / "reprojection.md").read_text()

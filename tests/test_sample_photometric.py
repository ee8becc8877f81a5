"""L_pho of Algorithm 2 (``d3dface.complete.photometric``): the scaled camera against the pinhole
formula, the term against a render it must explain, and Algorithm 2 with the term on the
Mesh-VAE: its samples explain the seen pixels better than without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d3dface.complete.diversify import DiversifySettings, diversify
from d3dface.complete.photometric import SamplePhotometricTerm, scaled_camera
from d3dface.render.cameras import head_camera
from d3dface.render.renderer import Renderer
from d3dface.render.shading import SH_CONSTANTS
from d3dface.reconstruct import get_engine

S = 96


@pytest.fixture(scope="module")
def engine():
    return get_engine(None, "cpu")


def test_scaled_camera_maps_pixel_centres_by_the_scale():
    """A point's pixel in the half-size image is (p + 0.5) / 2 - 0.5 of its pixel in the full one
    (pixel centres at integers); the pinhole is recomputed here from the camera's fields."""
    cam = head_camera(S)
    half = scaled_camera(cam, 0.5)
    assert half.image_size == (S // 2, S // 2)
    pts = torch.tensor([[[0.02, -0.03, 0.05], [-0.04, 0.06, 0.0], [0.0, 0.0, 0.08]]])
    t = cam.translation[0].numpy()
    pc = pts[0].numpy() + t  # rotation 0
    f, c = cam.focal[0].numpy(), cam.principal[0].numpy()
    full = np.stack([c[0] + f[0] * pc[:, 0] / -pc[:, 2], c[1] - f[1] * pc[:, 1] / -pc[:, 2]], 1)
    got, _ = half.project(pts)
    np.testing.assert_allclose(got[0].numpy(), (full + 0.5) * 0.5 - 0.5, atol=1e-4)


def test_the_term_is_zero_on_the_mesh_that_made_the_image_and_falls_towards_it(engine):
    """The image is the template rendered with a light and a smoothly varying albedo; at full
    resolution the term is 0 (to float precision) on that mesh, at half resolution (the photo
    area-averaged, the render point-sampled) well below its value when the mesh moves 3 mm; and
    gradient steps on the offset bring it back down, at both."""
    m = engine.model
    renderer = Renderer.from_head_model(m)
    cam = head_camera(S, head_size=0.3)
    light = torch.zeros(9, 3)
    light[0] = 1.0 / SH_CONSTANTS[0]
    light[2] = 0.4  # a directional part, so that shading depends on the normals
    albedo = (0.5 + 0.3 * np.sin(150 * m.v_template)).astype(np.float32)  # stripes about 4 cm apart
    v = torch.as_tensor(m.v_template)[None]
    with torch.no_grad():
        res = renderer.render(v, cam, light=light[None], vertex_colors=torch.as_tensor(albedo)[None])
    image = res.image[0].permute(1, 2, 0).numpy()
    seen = res.mask[0, 0].numpy() > 0
    for scale in (1.0, 0.5):
        term = SamplePhotometricTerm(renderer, cam, light.numpy(), albedo, image, seen, m.v_template, scale)
        assert term.num_pixels > 0.2 * (S * scale) ** 2
        shift = torch.tensor([[0.003, -0.002, 0.0]], requires_grad=True)
        with torch.no_grad():
            at_truth, start = float(term(v)), float(term(v + shift))
        assert start > 0.05 and at_truth < (1e-5 if scale == 1 else 0.35 * start), (scale, at_truth, start)
        opt = torch.optim.Adam([shift], lr=5e-4)
        for _ in range(20):
            opt.zero_grad()
            term(v + shift).backward()
            opt.step()
        with torch.no_grad():
            assert float(term(v + shift)) < 0.7 * start, (scale, start, float(term(v + shift)))


def test_algorithm_2_with_the_photometric_term_explains_the_seen_pixels_better(engine):
    """A synthetic occluded face, fitted; the Mesh-VAE's samples diversified with lambda_pho 0
    and 20 (same seed, same draws): with the term every sample's render is closer to the photo
    on the seen face than the mean of the samples without it."""
    from d3dface.complete.photometric import photometric_term_for_fit
    from d3dface.paths import mean_texture_path
    from d3dface.evaluation.synthetic_faces import SyntheticFaceMaker
    from d3dface.fit.settings import FitSettings

    face = SyntheticFaceMaker(engine.model, mean_texture_path(engine.assets)).make(1_000_050, "glasses")
    fitter = engine.fitter(FitSettings(iters_landmarks=60, iters_photometric=20))
    fit = fitter.fit(face.evidence)
    term = photometric_term_for_fit(fit, face.evidence, fitter.renderer, 0.5)
    S_m, occ = torch.as_tensor(fit.vertices), torch.as_tensor(fit.occluded)
    errors = {}
    for w in (0.0, 20.0):
        st = DiversifySettings(model="vae", samples=3, iterations=30, seed=2, lambda_pho=w)
        out = diversify(engine.vae, S_m, occ, st, engine.latent_stats(), engine.dpp_excluded(), photometric=term)
        assert bool(out.history["l_pho"]) == (w > 0)
        with torch.no_grad():
            errors[w] = term.per_sample(torch.as_tensor(out.samples)).numpy()
    assert errors[20.0].max() < errors[0.0].mean(), errors

"""Mesh-VAE (issue 6): sampling hierarchy, vcConv, the VAE's shapes and masking,
training (overfit, CLI, resume) and checkpoint files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from d3dface.complete.mesh_sampling import HierarchySettings, build_hierarchy, faces_hash, mesh_hierarchy, template_hash
from d3dface.complete.meshconv import VCConv
from d3dface.complete.mesh_vae import MeshVAE, MeshVAEConfig
from d3dface.errors import ModelFileError

TINY = MeshVAEConfig(encoder_channels=(4, 8, 8, 16, 16, 16), decoder_channels=(16, 16, 8, 8, 4, 4))


@pytest.fixture(scope="module")
def head():
    from d3dface.head_model import load_head_model

    return load_head_model(None)


@pytest.fixture(scope="module")
def hierarchy(head):
    return mesh_hierarchy(head.v_template, head.faces)


# ---- the sampling hierarchy ------------------------------------------------------------


def test_hierarchy_sizes_on_flame(hierarchy):
    assert hierarchy.sizes == [5023, 1367, 270, 45, 10]
    for l in range(4):  # nested: level l+1 is a subset of level l
        assert np.isin(hierarchy.levels[l + 1], hierarchy.levels[l]).all()


def test_every_vertex_is_covered_at_every_level(hierarchy):
    h = hierarchy
    for l in range(4):
        down, up, same = h.down[l], h.up[l], h.same[l]
        assert down.num_in == h.sizes[l] and down.num_out == h.sizes[l + 1]
        used = np.zeros(down.num_in, bool)
        used[down.index[down.mask]] = True
        assert used.all(), f"level {l}: a vertex in no pooling neighbourhood"
        assert (up.counts >= 1).all() and up.num_out == h.sizes[l] and up.num_in == h.sizes[l + 1]
        used = np.zeros(up.num_in, bool)
        used[up.index[up.mask]] = True
        assert used.all(), f"level {l + 1}: a sample feeds no unpooled vertex"
    for l, same in enumerate(h.same):
        assert (same.index[:, 0] == np.arange(h.sizes[l])).all(), "a vertex is its own nearest neighbour"


def test_hierarchy_is_deterministic_and_cached(tmp_path):
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=3)
    s = HierarchySettings(sizes=(160, 40, 10))
    a = mesh_hierarchy(ico.vertices, ico.faces, s, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    b = mesh_hierarchy(ico.vertices, ico.faces, s, cache_dir=tmp_path)  # from the cache
    c = build_hierarchy(ico.vertices, ico.faces, s)
    for x in (b, c):
        assert x.sizes == [642, 160, 40, 10]
        for l in range(3):
            assert np.array_equal(a.levels[l + 1], x.levels[l + 1])
            assert np.array_equal(a.down[l].index, x.down[l].index)


# ---- vcConv ----------------------------------------------------------------------------


def _random_conv(P_in=30, P_out=12, N=5, Ci=3, Co=4, M=17, seed=0):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, P_in, (P_out, N))
    index[rng.random((P_out, N)) < 0.3] = P_in  # padding
    index[:, 0] = rng.integers(0, P_in, P_out)  # at least one neighbour
    torch.manual_seed(seed)
    conv = VCConv(torch.as_tensor(index), P_in, Ci, Co, num_basis=M)
    with torch.no_grad():
        conv.bias.normal_()
    return conv, index


def test_vcconv_single_kernel_is_a_weighted_neighbour_average():
    P_in, C = 30, 3
    conv, index = _random_conv(P_in=P_in, Ci=C, Co=C, M=1)
    rng = np.random.default_rng(1)
    w = rng.random(index.shape)
    w = w * (index < P_in)
    w /= w.sum(1, keepdims=True)
    with torch.no_grad():
        conv.basis.copy_(torch.eye(C)[None])
        conv.coeffs.copy_(torch.as_tensor(w[..., None], dtype=torch.float32))
        conv.bias.zero_()
    x = rng.standard_normal((2, P_in, C))
    expected = np.zeros((2, index.shape[0], C))
    for p in range(index.shape[0]):
        for n in range(index.shape[1]):
            if index[p, n] < P_in:
                expected[:, p] += w[p, n] * x[:, index[p, n]]
    xt = torch.as_tensor(x, dtype=torch.float32)
    assert np.allclose(conv(xt).detach().numpy(), expected, atol=1e-5)  # training path
    with torch.no_grad():
        assert np.allclose(conv(xt).numpy(), expected, atol=1e-5)  # cached sparse path


def test_vcconv_matches_an_independent_loop():
    conv, index = _random_conv()
    A = conv.coeffs.detach().numpy().astype(np.float64)
    Bm = conv.basis.detach().numpy().astype(np.float64)
    b = conv.bias.detach().numpy().astype(np.float64)
    x = np.random.default_rng(2).standard_normal((3, conv.num_in, conv.in_channels))
    expected = np.zeros((3, conv.num_out, conv.out_channels)) + b
    for p in range(conv.num_out):
        for n in range(index.shape[1]):
            if index[p, n] < conv.num_in:
                for m in range(conv.num_basis):
                    expected[:, p] += A[p, n, m] * x[:, index[p, n]] @ Bm[m]
    xt = torch.as_tensor(x, dtype=torch.float32)
    for batch in (xt, xt[:1]):  # both evaluation orders get picked for some batch size
        got = conv(batch).detach().numpy()
        assert np.allclose(got, expected[: len(batch)], atol=1e-4)
    with torch.no_grad():
        assert np.allclose(conv(xt).numpy(), expected, atol=1e-4)
    # equivariance to a relabelling of the input points
    perm = np.random.default_rng(3).permutation(conv.num_in)
    inv = np.argsort(perm)
    index2 = np.where(index < conv.num_in, inv[np.minimum(index, conv.num_in - 1)], conv.num_in)
    conv2 = VCConv(torch.as_tensor(index2), conv.num_in, conv.in_channels, conv.out_channels, conv.num_basis)
    conv2.load_state_dict({**conv.state_dict(), "index": torch.as_tensor(index2), "mask": conv2.mask})
    assert torch.allclose(conv2(xt[:, perm]), conv(xt), atol=1e-5)


def test_sparse_path_gradients_reach_the_input():
    conv, _ = _random_conv()
    for p in conv.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, conv.num_in, conv.in_channels, requires_grad=True)
    conv(x).square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    for p in conv.parameters():
        p.requires_grad_(True)
    conv(x2).square().sum().backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-4)


# ---- the VAE -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vae(head, hierarchy):
    torch.manual_seed(0)
    return MeshVAE(head.v_template, hierarchy, TINY)


def test_encoder_decoder_shapes(head, tiny_vae):
    v = torch.as_tensor(head.v_template)[None].repeat(2, 1, 1)
    mu, logvar = tiny_vae.encode(v, torch.ones(2, 5023, dtype=torch.bool))
    assert mu.shape == logvar.shape == (2, 10, 64)
    out = tiny_vae.decode(mu)
    assert out.shape == (2, 5023, 3) and out.dtype == torch.float32
    assert tiny_vae.latent_shape == (10, 64)


def test_occluded_coordinates_cannot_reach_the_encoder(head, tiny_vae):
    from d3dface.training.vae_data import ContiguousMasks

    rng = np.random.default_rng(0)
    occ = torch.as_tensor(ContiguousMasks(head.v_template, head.faces, head.regions).sample(2, 0.3, rng))
    v = torch.as_tensor(head.v_template)[None].repeat(2, 1, 1) + 0.002 * torch.randn(2, 5023, 3)
    w = v.clone()
    w[occ] += 0.05 * torch.randn(int(occ.sum()), 3)  # move only the occluded vertices
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            mu_v, lv_v = tiny_vae.encode(v, ~occ)
            mu_w, lv_w = tiny_vae.encode(w, ~occ)
        assert torch.equal(mu_v, mu_w) and torch.equal(lv_v, lv_w)
    # ... but the mask itself does reach it
    mu_all, _ = tiny_vae.encode(v, None)
    assert not torch.allclose(mu_all, mu_v)


def test_tiny_overfit_loss_falls(head, hierarchy):
    from d3dface.training.vae_data import SyntheticHeads
    from d3dface.training.vae_training import Laplacian

    torch.manual_seed(0)
    vae = MeshVAE(head.v_template, hierarchy, TINY)
    v = SyntheticHeads(head).batch(3, np.random.default_rng(0))
    x = vae.normalise(v)
    lap = Laplacian(head.faces, head.num_vertices)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        x_hat, mu, logvar = vae(v, None, sample=False)
        loss = (x_hat - x).abs().mean() + (lap(x_hat) - lap(x)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


# ---- training CLI and checkpoint files --------------------------------------------------


def test_train_vae_cli_writes_and_resumes(tmp_path, head):
    from d3dface.cli.main import main
    from d3dface.complete.vae_checkpoint import load_vae, read_payload

    out = tmp_path / "run"
    assert main(["train-vae", "--out", str(out), "--preset", "tiny", "--quiet", "--device", "cpu", "--seed", "3"]) == 0
    for name in ("last.pt", "model.pt", "log.csv", "log.txt"):
        assert (out / name).is_file(), name
    assert read_payload(out / "last.pt")["step"] == 4
    assert len((out / "log.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert main(["train-vae", "--out", str(out), "--preset", "tiny", "--quiet", "--device", "cpu", "--epochs", "3",
                 "--resume"]) == 0
    state = read_payload(out / "last.pt")
    assert state["step"] == 6 and state["epoch"] == 3
    assert len((out / "log.csv").read_text().splitlines()) == 4
    vae = load_vae(out / "model.pt", "cpu", head.v_template, head.faces)
    assert vae.template_hash == template_hash(head.v_template, head.faces)
    assert vae.faces_hash == read_payload(out / "model.pt")["faces_hash"] == faces_hash(head.faces)
    assert vae.decode(torch.zeros(1, 10, 64)).shape == (1, 5023, 3)


def test_corrupt_or_missing_checkpoint_is_one_line_error(tmp_path, head, capsys):
    from d3dface.cli.main import main
    from d3dface.complete.vae_checkpoint import load_vae

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    for path in (bad, tmp_path / "missing.pt"):
        with pytest.raises(ModelFileError) as e:
            load_vae(path)
        assert "\n" not in str(e.value)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError):
        load_vae(tmp_path / "other.pt")
    assert main(["evaluate-vae", str(bad), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d3dface: error:") and len(err.splitlines()) == 1


def test_checkpoint_for_another_head_model_is_refused(tmp_path, head, tiny_vae):
    from d3dface.complete.vae_checkpoint import load_vae, model_payload, save_payload

    save_payload(tmp_path / "m.pt", model_payload(tiny_vae, "0123456789abcdef", "some other model", half=True))
    with pytest.raises(ModelFileError, match="another head model"):
        load_vae(tmp_path / "m.pt", "cpu", head.v_template + 0.01, head.faces)  # a head 1 cm off
    # the same head rebuilt with last-bit float differences (another hash): accepted
    load_vae(tmp_path / "m.pt", "cpu", head.v_template + 1e-7, head.faces)
    vae = load_vae(tmp_path / "m.pt")  # without a model to check against it loads
    z = torch.randn(1, 10, 64)
    assert torch.allclose(vae.decode(z), tiny_vae.decode(z), atol=1e-3)  # float16 storage


def test_default_checkpoint_is_shipped_for_the_open_model(head):
    from d3dface.complete.vae_checkpoint import DEFAULT_VAE_FILE, load_default_vae

    assert DEFAULT_VAE_FILE.is_file() and DEFAULT_VAE_FILE.stat().st_size <= 30 * 2**20
    vae = load_default_vae("cpu", model=head)
    v = torch.as_tensor(head.v_template)[None]
    mu, logvar = vae.encode(v, torch.ones(1, 5023, dtype=torch.bool))
    assert mu.shape == logvar.shape == (1, 10, 64)
    err = (vae.decode(mu) - v).norm(dim=-1).mean().item()
    assert err < 0.003, f"template reconstructed with {err * 1000:.2f} mm mean error"


@pytest.mark.slow
def test_evaluate_vae_command_runs(tmp_path):
    import json

    from d3dface.cli.main import main

    assert main(["evaluate-vae", "--n", "8", "--seed", "999", "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["full_mm"] < 3.0 and len(r["completion"]) == 3


def test_inference_paths_match_training_path(head, tiny_vae):
    """Cached sparse inference (CPU) gives the training path's output and input gradients."""
    z = torch.randn(2, 10, 64)
    tiny_vae.train()
    ref = tiny_vae.decode(z)
    zr = z.clone().requires_grad_(True)
    tiny_vae.decode(zr).square().sum().backward()
    tiny_vae.eval()
    for p in tiny_vae.parameters():
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            assert torch.allclose(tiny_vae.decode(z), ref, atol=1e-5)
        zf = z.clone().requires_grad_(True)
        tiny_vae.decode(zf).square().sum().backward()
        assert torch.allclose(zf.grad, zr.grad, rtol=1e-4, atol=1e-6)
    finally:
        for p in tiny_vae.parameters():
            p.requires_grad_(True)

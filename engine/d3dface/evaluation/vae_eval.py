"""Measuring a Mesh-VAE (``d3dface evaluate-vae``), all errors mean per-vertex L2 in mm.

On ``n`` held-out random heads of the head model (their own seed; training draws from
``default_rng([train_seed, step])``, evaluation from ``default_rng([seed, 1])``):

- full-mesh reconstruction: encode the complete mesh, decode z = mu;
- completion for each occluded share f: contiguous masks grown over the mesh graph from
  a random face vertex covering f of all vertices (``num_masks`` distinct masks, sample i
  gets mask i mod num_masks); encode with it, decode z = mu; the error on the visible and
  on the occluded vertices;
- the PCA baseline with the same latent size (640 components, fitted on ``pca_train``
  heads from the training distribution): coefficients by least squares on the visible
  vertices, then all vertices reconstructed ("pca_lstsq", as specified); also a ridge
  variant that uses the components' variances as a Gaussian prior ("pca_map", the
  stronger baseline);
- sample validity: z ~ N(mu, sigma^2) for 40%-masked inputs, decoded; flipped triangles
  (normal turned > 90 degrees from the template's) per decoded mesh, with the ground truth
  meshes' own count beside it;
- latent statistics (|mu|, sigma) and encode+decode / decode time for a batch of 16.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..head_model import HeadModel
from ..head_model.mesh_quality import flipped_triangles
from ..complete.vae_checkpoint import load_vae, resolve_device
from ..training.vae_data import ContiguousMasks, SyntheticHeads

MM = 1000.0


class PCABaseline:
    """PCA of flattened meshes (N, V*3) with ``k`` components; completion from visible vertices."""

    def __init__(self, meshes: torch.Tensor, k: int):
        X = meshes.reshape(len(meshes), -1).double()
        self.mean = X.mean(0)
        U, S, Vh = torch.linalg.svd(X - self.mean, full_matrices=False)
        k = min(k, Vh.shape[0])
        self.components = Vh[:k]  # (k, 3V)
        self.variance = (S[:k] ** 2) / max(len(X) - 1, 1)  # (k,)

    def complete(self, vertices: torch.Tensor, visible: torch.Tensor, ridge: bool = False) -> torch.Tensor:
        """vertices (B, V, 3) sharing one visibility (V,) bool -> (B, V, 3) completed.

        Coefficients minimise the squared error on the visible coordinates (plain least
        squares, or with the prior ``c_i ~ N(0, variance_i)`` and 0.1 mm noise for
        ``ridge``). The components are orthonormal, so the normal matrix is
        ``I - C_occ C_occ^T``: cheap to form from the occluded part alone.
        """
        B, V, _ = vertices.shape
        sel = visible.reshape(-1).repeat_interleave(3)  # (3V,) over flattened coordinates
        C = self.components
        y = vertices.reshape(B, -1).double()[:, sel] - self.mean[sel]  # (B, n)
        C_occ = C[:, ~sel]
        G = torch.eye(len(C), dtype=C.dtype) - C_occ @ C_occ.T  # = C_vis C_vis^T
        rhs = C[:, sel] @ y.T  # (k, B)
        if ridge:
            c = torch.linalg.solve(G + 1e-8 * torch.diag(1.0 / self.variance), rhs)  # noise (0.1 mm)^2
        else:
            c = torch.linalg.lstsq(G, rhs, driver="gelsd").solution
        return (self.mean + c.T @ C).reshape(B, V, 3).to(vertices.dtype)


def _masked_mean(d: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """d (B, V), m (B, V) bool -> (B,) mean of d over m."""
    m = m.to(d.dtype)
    return (d * m).sum(1) / m.sum(1).clamp(min=1)


def _time(fn, repeats: int = 10) -> float:
    fn()
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000.0


SAMPLE_FRACTION = 0.4  # occluded share of the inputs whose samples' validity is measured
PRIOR_SAMPLES = 16  # decoded z ~ N(0, I) whose flipped triangles are counted
TIMING_BATCH = 16  # meshes per timed encode / decode


@torch.no_grad()
def evaluate_vae(model: HeadModel, checkpoint: str | Path, n: int = 500, seed: int = 12345,
                 fractions=(0.25, 0.4, 0.6), device="auto", pca_train: int = 2000, train_seed: int = 0,
                 samples_per_input: int = 8, validity_inputs: int = 50, batch: int = 16, num_masks: int = 50) -> dict:
    """The Mesh-VAE at ``checkpoint`` measured on ``n`` held-out heads of ``model`` (see the module
    docstring): a JSON-ready dict, errors in mm, times in ms."""
    dev = resolve_device(device)
    vae = load_vae(checkpoint, dev, model.v_template, model.faces)
    heads = SyntheticHeads(model, device=dev)
    masks = ContiguousMasks(model.v_template, model.faces, model.regions)
    rng = np.random.default_rng([seed, 1])
    gt = heads.batch(n, rng)  # (n, V, 3)
    latent = int(np.prod(vae.latent_shape))
    pca = PCABaseline(heads.batch(pca_train, np.random.default_rng([train_seed, 20_000])).cpu(), latent)

    res: dict = {"checkpoint": str(checkpoint), "n": n, "seed": seed, "device": str(dev),
                 "latent_size": latent, "pca_train": pca_train, "info": vae.info.get("preset", "")}
    d = (_vae_complete(vae, gt, None, batch) - gt).norm(dim=-1)
    res["full_mm"] = float(d.mean()) * MM
    d_pca = (pca.complete(gt.cpu(), torch.ones(gt.shape[1], dtype=torch.bool)) - gt.cpu()).norm(dim=-1)
    res["pca_full_mm"] = float(d_pca.mean()) * MM
    n_masks = min(n, num_masks)
    res["completion"] = [_completion_row(vae, pca, masks, gt, float(f), n_masks, rng, batch) for f in fractions]

    k = min(validity_inputs, n)
    occ = torch.as_tensor(masks.sample(k, SAMPLE_FRACTION, rng, kind="grow"), device=dev)
    res["samples"], res["latent"], mu = _sample_validity(model, vae, gt, occ, seed, samples_per_input)
    res["timing"] = _timings(vae, gt, occ, k, mu.shape[1:])
    return res


def _vae_complete(vae, v: torch.Tensor, vis: torch.Tensor | None, batch: int) -> torch.Tensor:
    """v (N, V, 3) metres, vis (N, V) bool or None (all visible) -> (N, V, 3) decoded at z = mu,
    ``batch`` meshes at a time."""
    out = []
    for i in range(0, len(v), batch):
        mu, _ = vae.encode(v[i: i + batch], None if vis is None else vis[i: i + batch])
        out.append(vae.decode(mu))
    return torch.cat(out)


def _completion_row(vae, pca: PCABaseline, masks: ContiguousMasks, gt: torch.Tensor, f: float, n_masks: int,
                    rng: np.random.Generator, batch: int) -> dict:
    """Completion errors (mm) of the VAE and both PCA variants on gt (n, V, 3) with a share f of the
    vertices occluded: n_masks distinct grown masks, sample i gets mask i % n_masks (PCA solves
    once per mask)."""
    n, dev = len(gt), gt.device
    occ_set = torch.as_tensor(masks.sample(n_masks, f, rng, kind="grow"))
    which = torch.arange(n) % n_masks
    occ = occ_set[which].to(dev)
    vis = ~occ
    row = {"fraction": f, "masks": n_masks}
    d = (_vae_complete(vae, gt, vis, batch) - gt).norm(dim=-1)
    row["vae_visible_mm"] = float(_masked_mean(d, vis).mean()) * MM
    row["vae_occluded_mm"] = float(_masked_mean(d, occ).mean()) * MM
    gt_cpu = gt.cpu()
    for name, ridge in (("pca_lstsq", False), ("pca_map", True)):
        out = torch.empty_like(gt_cpu)
        for j in range(n_masks):
            members = which == j
            out[members] = pca.complete(gt_cpu[members], ~occ_set[j], ridge=ridge)
        d = (out - gt_cpu).norm(dim=-1)
        row[f"{name}_visible_mm"] = float(_masked_mean(d, vis.cpu()).mean()) * MM
        row[f"{name}_occluded_mm"] = float(_masked_mean(d, occ.cpu()).mean()) * MM
    return row


def _sample_validity(model: HeadModel, vae, gt: torch.Tensor, occ: torch.Tensor, seed: int,
                     samples_per_input: int) -> tuple[dict, dict, torch.Tensor]:
    """Samples z ~ N(mu, sigma^2) of the first k = len(occ) heads under occ (k, V) bool, and
    PRIOR_SAMPLES prior samples z ~ N(0, I) (torch generator seeded with ``seed``): flipped
    triangles and the samples' spread (mm); latent statistics; and mu (k, ...) itself."""
    k, dev = len(occ), gt.device
    mu, logvar = vae.encode(gt[:k], ~occ)
    sigma = torch.exp(0.5 * logvar)
    gen = torch.Generator(device=dev).manual_seed(seed)
    z = mu[:, None] + sigma[:, None] * torch.randn((k, samples_per_input, *mu.shape[1:]), generator=gen, device=dev)
    samples = torch.cat([vae.decode(z[i: i + 2].flatten(0, 1)) for i in range(0, k, 2)]).cpu().numpy()
    tmpl, faces = model.v_template, model.faces
    flips = np.array([len(flipped_triangles(tmpl, s, faces)) for s in samples])
    gt_flips = np.array([len(flipped_triangles(tmpl, g, faces)) for g in gt[:k].cpu().numpy()])
    prior = vae.decode(torch.randn((PRIOR_SAMPLES, *mu.shape[1:]), generator=gen, device=dev)).cpu().numpy()
    prior_flips = np.array([len(flipped_triangles(tmpl, s, faces)) for s in prior])
    spread = samples.reshape(k, samples_per_input, -1, 3)
    spread = np.linalg.norm(spread - spread.mean(1, keepdims=True), axis=-1)  # (k, S, V)
    occ_np = occ.cpu().numpy()
    samples_res = {
        "inputs": k, "per_input": samples_per_input, "fraction": SAMPLE_FRACTION,
        "flipped_mean": float(flips.mean()), "flipped_max": int(flips.max()),
        "share_without_flips": float((flips == 0).mean()),
        "gt_flipped_mean": float(gt_flips.mean()), "gt_flipped_max": int(gt_flips.max()),
        "prior_flipped_mean": float(prior_flips.mean()), "prior_flipped_max": int(prior_flips.max()),
        "spread_occluded_mm": float(np.mean([spread[i][:, occ_np[i]].mean() for i in range(k)])) * MM,
        "spread_visible_mm": float(np.mean([spread[i][:, ~occ_np[i]].mean() for i in range(k)])) * MM,
        "num_faces": int(len(faces)),
    }
    latent = {"mu_norm_mean": float(mu.flatten(1).norm(dim=1).mean()),
              "sigma_mean": float(sigma.mean()), "sigma_median": float(sigma.median())}
    return samples_res, latent, mu


def _timings(vae, gt: torch.Tensor, occ: torch.Tensor, k: int, latent_shape) -> dict:
    """Median ms for a batch of 16: encode+decode (the first 16 masks when k >= 16), decode, and
    decode + backward; and the torch thread count."""
    dev = gt.device
    v16, vis16 = gt[:TIMING_BATCH], ~occ[:TIMING_BATCH] if k >= TIMING_BATCH else None
    z16 = torch.randn((TIMING_BATCH, *latent_shape), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def enc_dec():
        m_, _ = vae.encode(v16, vis16)
        vae.decode(m_)
        sync()

    def dec():
        vae.decode(z16)
        sync()

    timing = {"threads": torch.get_num_threads(), "encode_decode_16_ms": _time(enc_dec), "decode_16_ms": _time(dec)}
    with torch.enable_grad():
        zg = z16.clone().requires_grad_(True)

        def dec_grad():
            vae.decode(zg).sum().backward()
            sync()

        timing["decode_backward_16_ms"] = _time(dec_grad, 5)
    return timing


def format_report(r: dict) -> str:
    L = [f"Mesh-VAE {r['checkpoint']} on {r['n']} held-out heads (seed {r['seed']}, {r['device']}); mean per-vertex L2, mm",
         f"full-mesh reconstruction: VAE {r['full_mm']:.3f}   PCA-{r['latent_size']} {r['pca_full_mm']:.3f}",
         "completion (contiguous masks grown from a face vertex; fraction of all vertices):",
         "  fraction | VAE visible  occluded | PCA lstsq visible  occluded | PCA ridge visible  occluded"]
    for c in r["completion"]:
        L.append(f"  {c['fraction']:8.2f} | {c['vae_visible_mm']:11.3f} {c['vae_occluded_mm']:9.3f} | "
                 f"{c['pca_lstsq_visible_mm']:17.3f} {c['pca_lstsq_occluded_mm']:9.3f} | "
                 f"{c['pca_map_visible_mm']:17.3f} {c['pca_map_occluded_mm']:9.3f}")
    s = r["samples"]
    L.append(f"samples z ~ N(mu, sigma), {s['inputs']} inputs x {s['per_input']} at {s['fraction']:.0%} masks: "
             f"flipped triangles mean {s['flipped_mean']:.2f} max {s['flipped_max']} of {s['num_faces']} "
             f"({s['share_without_flips']:.0%} without any); ground truth mean {s['gt_flipped_mean']:.2f} max {s['gt_flipped_max']}; "
             f"prior z ~ N(0, I): mean {s['prior_flipped_mean']:.2f} max {s['prior_flipped_max']}")
    L.append(f"sample spread (distance to the samples' mean): occluded {s['spread_occluded_mm']:.3f} mm, "
             f"visible {s['spread_visible_mm']:.3f} mm")
    lt = r["latent"]
    L.append(f"latent: mean |mu| {lt['mu_norm_mean']:.2f} (prior shell ~{np.sqrt(r['latent_size']):.1f}), "
             f"sigma mean {lt['sigma_mean']:.3f} median {lt['sigma_median']:.3f}")
    t = r["timing"]
    L.append(f"time, batch of 16 ({t['threads']} threads): encode+decode {t['encode_decode_16_ms']:.1f} ms, "
             f"decode {t['decode_16_ms']:.1f} ms, decode+backward {t['decode_backward_16_ms']:.1f} ms")
    return "\n".join(L)

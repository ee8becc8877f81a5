"""The paper's Table 2 protocol on our data (and Table 1 from the same fits).

For each synthetic occluded face (``synthetic_faces.py``) the methods each produce M samples:
1. ``global+dpp``: the full global model fitted (the paper's "FLAME" row), then the DPP on its
   coefficients with L_S on the visible vertices;
2. ``global_local+dpp``: the global+local fit, the DPP on its coefficients;
3. ``vae``: the Mesh-VAE: z ~ N(mu, sigma^2) of the encoder for S_m, no DPP;
4. ``vae+dpp``: global+local fit, Mesh-VAE, DPP (Algorithm 2 as the paper), raw samples;
5. ``gaussian+dpp``: global+local fit, the region prior conditioned on the seen part
   (``complete/region_prior.py``), DPP, raw samples;
6. ``product``: the samples of the product's completion model (``DiversifySettings.model``)
   joined to S_m where the fit sees the face (what ``reconstruct`` writes).
Metrics (mm, face region): CSE against the ground truth after rigid alignment of each sample on
the visible face; ASD-V and ASD-O on the face's visible and hidden vertices (ground-truth hidden
set, the same for every method), and their ratio; ``cse1_mm``, the same method's CSE with one
sample (coverage: how much closer the closest of M comes than one draw).
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..complete.diversify import DiversifySettings, diversify, diversify_gaussian, diversify_linear
from ..complete.photometric import photometric_term_for_fit
from ..complete.settings import DEFAULT_SAMPLES
from ..complete.settings import StitchSettings
from ..complete.stitching import join_to_fit
from ..fit.settings import FitSettings
from ..paths import mean_texture_path
from .metrics import creased_edges, diversity_metrics
from .fit_eval import shape_error_mm
from .synthetic_faces import OCCLUDER_TYPES, TEST_SEED_BASE, SyntheticFaceMaker

METHODS = ("global+dpp", "global_local+dpp", "vae", "vae+dpp", "gaussian+dpp", "product")
# creased: edges per sample (metrics.creased_edges); cse1_mm: CSE of the method run with one sample
METRICS = ("cse_mm", "cse1_mm", "asd_v_mm", "asd_o_mm", "asd_ratio", "creased")


@dataclass
class EvalSettings:
    faces_per_type: int = 100
    samples: int = DEFAULT_SAMPLES
    seed: int = 0
    fit_landmark_iters: int = 120
    fit_photometric_iters: int = 50
    diversify_iters: int = DiversifySettings.iterations  # the product's
    heads: str = "model"  # test heads: "model" or "out-of-span" (synthetic_faces.HEAD_KINDS)
    coverage: bool = True  # also run each method with one sample (cse1_mm)
    photometric: float = DiversifySettings.lambda_pho  # lambda_pho of the Mesh-VAE + DPP row (complete/photometric.py)
    join: StitchSettings = field(default_factory=StitchSettings)  # how the "product" row joins samples to the fit


@dataclass
class DiversityEvaluation:
    rows: list = field(default_factory=list)  # dicts: occluder, seed, method, metrics, seconds
    fit_errors: list = field(default_factory=list)  # dicts: occluder, seed, global, global+local (mm, rigid)

    def summary(self) -> dict:
        """method -> occluder (and "overall") -> metric -> mean."""
        out = {}
        for m in METHODS:
            out[m] = {}
            for k in (*OCCLUDER_TYPES, "overall"):
                rows = [r for r in self.rows if r["method"] == m and (k == "overall" or r["occluder"] == k)]
                out[m][k] = {x: _mean([r[x] for r in rows]) for x in METRICS}
                # the ratio of the means (as the paper's tables), not the mean of ratios
                out[m][k]["asd_ratio"] = out[m][k]["asd_o_mm"] / max(out[m][k]["asd_v_mm"], 1e-12)
        return out

    def table1(self) -> dict:
        return {k: {m: _mean([r[m] for r in self.fit_errors if k == "overall" or r["occluder"] == k])
                    for m in ("global", "global+local")} for k in (*OCCLUDER_TYPES, "overall")}

    def markdown(self) -> str:
        s = self.summary()
        lines = ["| method | occluder | CSE (mm) | CSE, 1 sample (mm) | ASD-V (mm) | ASD-O (mm) | ASD-O/ASD-V "
                 "| creased edges/sample |", "|---|---|---|---|---|---|---|---|"]
        for k in (*OCCLUDER_TYPES, "overall"):
            for m in METHODS:
                r = s[m][k]
                lines.append(f"| {m} | {k} | {r['cse_mm']:.2f} | {r['cse1_mm']:.2f} | {r['asd_v_mm']:.2f} | {r['asd_o_mm']:.2f} "
                             f"| {r['asd_ratio']:.2f} | {r['creased']:.1f} |")
        t = self.table1()
        lines += ["", "Table 1: mean shape error (mm, face region, rigid alignment) of the single fits",
                  "| fit | " + " | ".join(OCCLUDER_TYPES) + " | overall |", "|---|" + "---|" * (len(OCCLUDER_TYPES) + 1)]
        for m in ("global", "global+local"):
            lines.append(f"| {m} | " + " | ".join(f"{t[k][m]:.2f}" for k in (*OCCLUDER_TYPES, "overall")) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["method", "occluder", *METRICS])
        s = self.summary()
        for m in METHODS:
            for k in (*OCCLUDER_TYPES, "overall"):
                w.writerow([m, k, *(f"{s[m][k][x]:.4f}" for x in METRICS)])
        return buf.getvalue()


def _mean(values) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def face_jobs(st: EvalSettings) -> list[tuple[str, int]]:
    """(occluder, seed) of every test face; test seeds never meet training seeds."""
    return [(kind, TEST_SEED_BASE + st.seed * 10_000 + ti * 1000 + i)
            for ti, kind in enumerate(OCCLUDER_TYPES) for i in range(st.faces_per_type)]


def evaluate_diversity(engine, settings: EvalSettings | None = None, progress=None, jobs=None) -> DiversityEvaluation:
    """engine: a ``ReconstructionEngine`` (head model, local model, Mesh-VAE on its device)."""
    st = settings or EvalSettings()
    fitters = {m: engine.fitter(FitSettings(mode=m, iters_landmarks=st.fit_landmark_iters,
                                            iters_photometric=st.fit_photometric_iters))
               for m in ("global", "global+local")}
    return _evaluate(engine, st, fitters, progress, face_jobs(st) if jobs is None else jobs)


def _evaluate_chunk(args) -> DiversityEvaluation:
    """One worker process's share (``--workers``): its own engine, one torch thread."""
    st, jobs, device = args
    torch.set_num_threads(1)
    from ..reconstruct import get_engine

    return evaluate_diversity(get_engine(None, device), st, None, jobs)


def evaluate_parallel(st: EvalSettings, workers: int, device: str = "cpu", progress=None) -> DiversityEvaluation:
    """The same evaluation split over ``workers`` processes (faces dealt round-robin)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    jobs = face_jobs(st)
    chunks = [jobs[k::workers] for k in range(workers)]
    chunks = [c for c in chunks if c]
    out, done = DiversityEvaluation(), 0
    with ProcessPoolExecutor(len(chunks), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_evaluate_chunk, (st, c, device)) for c in chunks]
        for fut in as_completed(futures):
            part = fut.result()
            out.rows += part.rows
            out.fit_errors += part.fit_errors
            done += len(part.fit_errors)
            if progress:
                progress(done, len(jobs))
    return out


def _evaluate(engine, st: EvalSettings, fitters: dict, progress, jobs) -> DiversityEvaluation:
    model, dev = engine.model, engine.device
    maker = SyntheticFaceMaker(model, mean_texture_path(engine.assets), heads=st.heads)  # test faces wear the mean texture
    face = model.regions["face"]
    excl = engine.dpp_excluded()
    div = DiversifySettings(samples=st.samples, iterations=st.diversify_iters, seed=st.seed, lambda_pho=st.photometric)
    out = DiversityEvaluation()
    total, done = len(jobs), 0
    for kind, seed in jobs:
        f = maker.make(seed, kind)
        fits = {m: fitters[m].fit(f.evidence) for m in fitters}
        out.fit_errors.append({"occluder": kind, "seed": seed,
                               **{m: shape_error_mm(fits[m].vertices, f.gt_vertices, face) for m in fits}})
        raw, cse1s = {}, {}
        for method in METHODS:
            t0 = time.perf_counter()
            fit = fits["global"] if method == "global+dpp" else fits["global+local"]
            if method == "product":
                samples = join_to_fit(raw[f"{div.model}+dpp"], fit.vertices, fit.occluded, model.faces, st.join.method,
                                      st.join.rings)
                cse1 = cse1s[f"{div.model}+dpp"]
            else:
                draw = lambda m: _samples(engine, fitters, fit, method, replace(div, samples=m), excl, f.evidence)  # noqa: E731
                samples = raw[method] = draw(st.samples)
                # one sample's error by the same protocol (the metrics need two samples: it is repeated)
                cse1 = cse1s[method] = (
                    diversity_metrics(np.repeat(draw(1), 2, 0), f.gt_hidden, gt=f.gt_vertices, region=face, align="rigid").cse
                    if st.coverage else float("nan"))
            dm = diversity_metrics(samples, f.gt_hidden, gt=f.gt_vertices, region=face, align="rigid")
            creased = float(creased_edges(samples, fit.vertices, model.faces, face).mean())
            out.rows.append({"occluder": kind, "seed": seed, "method": method, **dm.as_dict(), "cse1_mm": cse1,
                             "creased": creased, "seconds": time.perf_counter() - t0})
        done += 1
        if progress:
            progress(done, total)
    return out


def _samples(engine, fitters: dict, fit, method: str, div: DiversifySettings, excl: torch.Tensor, evidence) -> np.ndarray:
    """(M, V, 3) metres: ``method``'s raw samples for the fit of the crop ``evidence`` (M = div.samples)."""
    model, dev = engine.model, engine.device
    S = torch.as_tensor(fit.vertices, device=dev)
    occ = torch.as_tensor(fit.occluded, device=dev)
    if method in ("global+dpp", "global_local+dpp"):
        fitter = fitters["global" if method == "global+dpp" else "global+local"]
        basis = fitter.basis_t.T.reshape(model.num_vertices, 3, -1)
        coef0 = torch.as_tensor(np.concatenate([fit.params["shape"], fit.params["expression"], fit.params["local"]]),
                                dtype=torch.float32, device=dev)
        return diversify_linear(basis, coef0, S, occ, div, excl)[0]
    if method == "vae":
        with torch.no_grad():
            mu, logvar = engine.vae.encode(S[None], ~occ[None])
            g = torch.Generator().manual_seed(div.seed)
            eps = torch.randn((div.samples, *mu.shape[1:]), generator=g).to(dev)
            return engine.vae.decode(mu + torch.exp(0.5 * logvar) * eps).cpu().numpy()
    if method == "vae+dpp":
        pho = None
        if div.lambda_pho > 0:
            pho = photometric_term_for_fit(fit, evidence, fitters["global+local"].renderer, div.photometric_scale, dev)
        return diversify(engine.vae, S, occ, div, engine.latent_stats(), excl, photometric=pho).samples
    if method == "gaussian+dpp":
        return diversify_gaussian(engine.region_prior(div.prior), S, occ, div, excl).samples
    raise ValueError(f"unknown method {method!r}")

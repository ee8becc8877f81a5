"""The "gaussian" completion's settings compared on out-of-span synthetic heads (issue 17):

    python scripts/sweep_region_prior.py N NAME='{"bending": 20}' NAME2='{"hidden": "occluder"}' ...

N faces per occluder type (the Table 2 generator of ``d3dface evaluate --heads out-of-span``,
its seeds), each fitted once (global+local). Each NAME gives ``RegionPriorSettings`` overrides,
plus "hidden" ("unseen": M_o^v, what the product varies; "occluder": only the front-facing
vertices that project into the occluder, the authors' split) and "iterations" (default: the
product's). Each is diversified with M = 1, 8 and 16. Prints a JSON line per face and setting,
then per occluder type: CSE at M = 1 / 8 / 16 and how much closer 16 samples come than one,
ASD-V, ASD-O, their ratio and creased edges per sample at M = 8 (mm, face region), and two
bounds on coverage: the CSE of the fit with the truth pasted in where hidden (no completion that
keeps the fit where seen does better), and of the one completion of the conditioned prior
closest to the truth (``best_in_prior``: what the prior could reach if a sample hit it); and the
CSE of the fit itself (the posterior's mean where hidden), which diverse samples must beat to
be more than noise; and CSE at M = 1 and 16 on the hidden face alone (the seen face, where every
sample is the fit, left out).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from d3dface.complete.diversify import DiversifySettings, diversify_gaussian
from d3dface.complete.settings import RegionPriorSettings
from d3dface.evaluation import diversity_eval as de
from d3dface.evaluation.metrics import align_to, closest_sample_error, creased_edges, diversity_metrics, vertex_mask
from d3dface.evaluation.synthetic_faces import OCCLUDER_TYPES, SyntheticFaceMaker
from d3dface.fit.settings import FitSettings
from d3dface.reconstruct import get_engine
from d3dface.render.shading import vertex_normals


def under_occluder(fit, evidence, faces) -> np.ndarray:
    """(V,) bool: front-facing fit vertices whose projection falls in the occlusion mask."""
    cam = fit.camera_object()
    v = torch.as_tensor(fit.vertices, dtype=torch.float32)[None]
    n = vertex_normals(v, torch.as_tensor(faces, dtype=torch.int64))
    front = (((cam.centre()[:, None] - v) * n).sum(-1) > 0)[0].numpy()
    xy = cam.project(v)[0][0].round().long().numpy()
    S = evidence.occlusion_mask.shape[0]
    inside = (xy >= 0).all(1) & (xy < S).all(1)
    hit = np.zeros(len(xy), bool)
    hit[inside] = evidence.occlusion_mask[xy[inside, 1], xy[inside, 0]]
    return front & hit


def best_in_prior(prior, fit_vertices, f, hidden, seen, face) -> float:
    """CSE of the completion closest to the truth that the conditioned prior can make: the fit
    plus G eps*, eps* the MAP of the whitened coefficients given the truth on the hidden face
    (unit noise per mm, so that |eps| stays a prior draw's): a bound on any sample's CSE."""
    cond = prior.condition(torch.as_tensor(~hidden))
    G = cond.G.double().view(-1, 3, cond.num_coefficients)
    target = hidden & vertex_mask(face, len(hidden))
    r = torch.as_tensor(align_to(f.gt_vertices, fit_vertices, seen) - fit_vertices, dtype=torch.float64)
    A = G[torch.as_tensor(target)].reshape(-1, G.shape[-1]) * 1e3  # mm per unit
    b = r[torch.as_tensor(target)].reshape(-1) * 1e3
    eps = torch.linalg.solve(A.T @ A + torch.eye(A.shape[1], dtype=A.dtype), A.T @ b)
    best = fit_vertices + (G @ eps).numpy()
    return diversity_metrics(np.repeat(best[None], 2, 0), f.gt_hidden, gt=f.gt_vertices, region=face, align="rigid").cse


def main() -> None:
    n = int(sys.argv[1])
    raw = {a.split("=", 1)[0]: json.loads(a.split("=", 1)[1]) for a in sys.argv[2:]}
    hidden_of = {k: v.pop("hidden", "unseen") for k, v in raw.items()}
    iters_of = {k: v.pop("iterations", DiversifySettings.iterations) for k, v in raw.items()}
    configs = {k: RegionPriorSettings(**v) for k, v in raw.items()}
    eng = get_engine(None, "cpu")
    st = de.EvalSettings(faces_per_type=n, heads="out-of-span")
    fitter = eng.fitter(FitSettings(mode="global+local", iters_landmarks=st.fit_landmark_iters,
                                    iters_photometric=st.fit_photometric_iters))
    maker = SyntheticFaceMaker(eng.model, de.mean_texture_path(eng.assets), heads=st.heads)
    face, excl = eng.model.regions["face"], eng.dpp_excluded()
    rows = []
    for kind, seed in de.face_jobs(st):
        f = maker.make(seed, kind)
        fit = fitter.fit(f.evidence)
        # the bound on coverage: the fit where seen and the truth itself where hidden
        seen = vertex_mask(face, len(fit.vertices)) & ~fit.occluded
        oracle = align_to(fit.vertices, f.gt_vertices, seen)
        oracle[fit.occluded] = f.gt_vertices[fit.occluded]
        cse_oracle = closest_sample_error(oracle[None], f.gt_vertices, face)[0]
        # the posterior's mean (the fit itself where hidden): what diversity must beat to be useful
        cse_fit = diversity_metrics(np.repeat(fit.vertices[None], 2, 0), f.gt_hidden, gt=f.gt_vertices, region=face,
                                    align="rigid").cse
        face_v, hid = vertex_mask(face, len(fit.vertices)), vertex_mask(f.gt_hidden, len(fit.vertices))
        face_hidden, face_seen = face_v & hid, face_v & ~hid
        for name, ps in configs.items():
            hidden = fit.occluded if hidden_of[name] == "unseen" else under_occluder(fit, f.evidence, eng.model.faces)
            r = {"kind": kind, "seed": seed, "cfg": name, "cse_oracle": cse_oracle, "cse_fit": cse_fit,
                 "cse_best": best_in_prior(eng.region_prior(ps), fit.vertices, f, hidden, seen, face)}
            for M in (1, 8, 16):
                div = DiversifySettings(samples=M, iterations=iters_of[name], seed=st.seed, prior=ps)
                s = diversify_gaussian(eng.region_prior(ps), torch.as_tensor(fit.vertices), torch.as_tensor(hidden), div,
                                       excl).samples
                s = np.repeat(s, 2, 0) if M == 1 else s  # the metrics need two samples
                d = diversity_metrics(s, f.gt_hidden, gt=f.gt_vertices, region=face, align="rigid")
                r[f"cse{M}"] = d.cse
                # the same closest-sample error on the hidden face alone (aligned on the seen face)
                r[f"cse{M}_hidden"] = diversity_metrics(s, f.gt_hidden, gt=f.gt_vertices, region=face_hidden, align="rigid",
                                                        align_vertices=face_seen).cse
                if M == 8:
                    r.update(asd_v=d.asd_v, asd_o=d.asd_o,
                             creased=float(creased_edges(s, fit.vertices, eng.model.faces, face).mean()))
            rows.append(r)
            print(json.dumps(r), flush=True)
    for name in configs:
        for k in (*OCCLUDER_TYPES, None):
            rr = [r for r in rows if r["cfg"] == name and (k is None or r["kind"] == k)]
            keys = ("cse1", "cse8", "cse16", "asd_v", "asd_o", "creased", "cse_oracle", "cse_best", "cse_fit",
                    "cse1_hidden", "cse16_hidden")
            m = {x: np.mean([r[x] for r in rr]) for x in keys}
            hidden_gain = 100 * (1 - m["cse16_hidden"] / m["cse1_hidden"])
            lower = {x: 100 * (1 - m[x] / m["cse1"]) for x in ("cse16", "cse_oracle", "cse_best", "cse_fit")}
            print(f"{name:10s} {k or 'overall':9s} CSE1 {m['cse1']:.3f} CSE8 {m['cse8']:.3f} CSE16 {m['cse16']:.3f} "
                  f"(16 vs 1: {lower['cse16']:.1f}% lower) ASD-V {m['asd_v']:.2f} ASD-O {m['asd_o']:.2f} "
                  f"ratio {m['asd_o'] / max(m['asd_v'], 1e-9):.1f} creased {m['creased']:.1f} "
                  f"(truth where hidden: CSE {m['cse_oracle']:.3f}, {lower['cse_oracle']:.1f}% lower; "
                  f"best in the prior: {m['cse_best']:.3f}, {lower['cse_best']:.1f}% lower; "
                  f"the fit (posterior mean): {m['cse_fit']:.3f}, {lower['cse_fit']:.1f}% lower; "
                  f"on the hidden face alone CSE1 {m['cse1_hidden']:.3f} CSE16 {m['cse16_hidden']:.3f}, {hidden_gain:.1f}% lower)")


if __name__ == "__main__":
    main()

"""``d3dface reconstruct`` and ``d3dface interpolate``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_output_dir, write_atomic
from ..config import COMPLETION_MODELS, INTERPOLATION_STEPS, JOIN_METHODS, MAX_SAMPLES, ReconstructConfig
from ..outputs.mesh_files import write_mesh
from .common import MODEL_HELP, StageProgress, add_backend, add_device


def register(sub) -> None:
    d = ReconstructConfig()
    p = sub.add_parser("reconstruct", help="M diverse complete heads from one occluded face photo")
    p.add_argument("image", help="the photo (any common image format)")
    p.add_argument("--mask", default=d.mask,
                   help="occlusion mask image (white = occluded), 'auto' (estimated) or 'none' (default: %(default)s)")
    p.add_argument("--samples", type=int, default=d.samples, help=f"number of completions M, 1..{MAX_SAMPLES} (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed; the same seed gives the same output on a CPU (default: %(default)s)")
    p.add_argument("--diversity", type=float, default=d.completion.diversity,
                   help="strength of the DPP term, 0 = no diversification (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=d.completion.iterations,
                   help="diversification iterations (default: %(default)s)")
    p.add_argument("--completion", default=d.completion.model, choices=COMPLETION_MODELS,
                   help="what draws the completions: gaussian (the fit plus offsets from a prior whose face regions vary "
                        "on their own, conditioned on what the photo shows) or vae (the Mesh-VAE) (default: %(default)s)")
    p.add_argument("--photometric", type=float, default=d.completion.lambda_pho,
                   help="weight of Algorithm 2's photometric term on the samples, --completion vae only: each sample "
                        "rendered with the fit's camera, light and albedo against the photo's seen face; 0 = off "
                        "(default: %(default)s)")
    p.add_argument("--join", default=d.stitch.method, choices=JOIN_METHODS,
                   help="how each sample joins the fit where the photo shows the face: laplacian (no crease) or "
                        "smoothstep (the former default) (default: %(default)s)")
    add_device(p, d.device)
    add_backend(p, d.backend)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--expressions", action="store_true",
                   help="also write expressions/: the first sample neutral and under each of the 52 ARKit expressions (.obj)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.set_defaults(run=run_reconstruct)

    p = sub.add_parser("interpolate", help="decode z(alpha) between two samples of a result (Appendix A.3)")
    p.add_argument("result", help="result.npz of a reconstruction")
    p.add_argument("--from", dest="i", type=int, required=True, help="first sample (1-based)")
    p.add_argument("--to", dest="j", type=int, required=True, help="second sample (1-based)")
    p.add_argument("--steps", type=int, default=INTERPOLATION_STEPS, help="number of meshes from one sample to the other, ends included (default: %(default)s)")
    add_device(p, d.device)
    p.add_argument("--model", help="head model the result was made with (default: the embedded open model)")
    p.add_argument("--out", required=True, help="output folder: interpolation.npz and one .obj per step")
    p.set_defaults(run=run_interpolate)


def run_reconstruct(args) -> int:
    from ..outputs.texture_bake import TEXTURE_FILE
    from ..reconstruct import get_engine

    t0 = time.perf_counter()
    cfg = ReconstructConfig.create(samples=args.samples, seed=args.seed, mask=args.mask, backend=args.backend,
                                   diversity=args.diversity, iterations=args.iterations, device=args.device, join=args.join,
                                   model=args.model, expressions=args.expressions, completion=args.completion,
                                   photometric=args.photometric)
    engine = get_engine(args.model, cfg.device)
    bar = StageProgress()
    try:
        result, path = engine.reconstruct(args.image, cfg, args.out, progress=bar)
    finally:
        bar.close()
    t = result.timings
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
    files = ["result.npz", f"fit and {result.num_samples} samples (.obj, .ply)",
             *(["texture.png"] if (Path(args.out) / TEXTURE_FILE).is_file() else []), "contact_sheet.png",
             *(["expressions/"] if args.expressions else [])]
    print(f"mask {result.settings['mask_source']}: hides {result.settings['occluded_fraction_of_face'] * 100:.1f}% "
          f"of the face")
    print(f"wrote {args.out}: {', '.join(files)}")
    print(f"time {time.perf_counter() - t0:.1f} s ({stages}); device {engine.device}")
    return 0


def run_interpolate(args) -> int:
    from ..reconstruct import get_engine

    engine = get_engine(args.model, args.device)
    alphas, verts = engine.interpolate(args.result, args.i, args.j, args.steps)
    faces = engine.model
    with atomic_output_dir(args.out) as tmp:
        write_atomic(Path(tmp) / "interpolation.npz",
                     lambda p: np.savez_compressed(p, alphas=alphas, vertices=verts.astype(np.float32), i=args.i, j=args.j))
        for k, v in enumerate(verts):
            write_mesh(Path(tmp) / f"step_{k:02d}.obj", v, faces.faces, faces.uvs, faces.uv_faces)
    print(f"wrote {args.out}: interpolation.npz and {len(verts)} meshes from sample {args.i} to {args.j}")
    return 0

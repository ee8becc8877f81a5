"""``d3dface reconstruct`` and ``d3dface interpolate``."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_output_dir, write_atomic
from ..outputs.mesh_files import write_mesh
from .common import StageProgress


def register(sub) -> None:
    p = sub.add_parser("reconstruct", help="M diverse complete heads from one occluded face photo")
    p.add_argument("image")
    p.add_argument("--mask", default="auto", help="occlusion mask image (white = occluded), auto or none")
    p.add_argument("--samples", type=int, default=8, help="number of completions M (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diversity", type=float, default=1.0, help="strength of the DPP term (0 = no diversification)")
    p.add_argument("--iterations", type=int, help="diversification iterations (default: the engine's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--backend", default="auto", help="landmarks: auto, mediapipe or fan")
    p.add_argument("--model", help="head model (default: the embedded open model)")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.set_defaults(run=run_reconstruct)

    p = sub.add_parser("interpolate", help="decode z(alpha) between two samples of a result (Appendix A.3)")
    p.add_argument("result", help="result.npz of a reconstruction")
    p.add_argument("--from", dest="i", type=int, required=True, help="first sample (1-based)")
    p.add_argument("--to", dest="j", type=int, required=True, help="second sample (1-based)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--model", help="head model the result was made with (default: the embedded open model)")
    p.add_argument("--out", required=True, help="output folder: interpolation.npz and one .obj per step")
    p.set_defaults(run=run_interpolate)


def run_reconstruct(args) -> int:
    from ..reconstruct import ReconstructSettings, get_engine

    t0 = time.perf_counter()
    engine = get_engine(args.model, args.device)
    st = ReconstructSettings(samples=args.samples, seed=args.seed, mask=args.mask, backend=args.backend, diversity=args.diversity)
    if args.iterations is not None:
        st.iterations = args.iterations
    bar = StageProgress()
    try:
        result, path = engine.reconstruct(args.image, st, args.out, progress=bar)
    finally:
        bar.close()
    t = result.timings
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
    print(f"wrote {args.out}: result.npz, fit and {result.num_samples} samples (.obj, .ply), contact_sheet.png")
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

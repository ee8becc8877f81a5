"""``d3dface fit``, ``build-local-model`` and ``evaluate-fit``: the partial fit (Algorithm 1)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_output_dir, write_text_atomic
from ..errors import InputFileError
from ..fit.evidence import evidence_from_inputs
from ..fit.local_model import cached_local_model_path
from ..training.local_models import LocalModelSettings, build_local_model, load_or_build_local_model
from ..fit.partial_fit import PartialFitter
from ..fit.settings import FitSettings
from ..head_model import load_head_model
from ..outputs.fit_files import write_fit_outputs
from ..paths import mean_texture_path
from .common import StageProgress, resolve_device


def register(sub) -> None:
    p = sub.add_parser("fit", help="partial fit of the head model to one photo (Algorithm 1)")
    p.add_argument("image")
    p.add_argument("--mask", default="auto", help="occlusion mask: a mask image (white = occluded), auto or none")
    p.add_argument("--backend", default="auto", help="landmarks: auto, mediapipe or fan")
    p.add_argument("--mode", default="global+local", choices=["global+local", "global"])
    p.add_argument("--model", help="head model (default: the embedded open model)")
    p.add_argument("--local-model", help="local model .npz (default: built once and cached)")
    p.add_argument("--assets", help="shared assets folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run_fit)

    p = sub.add_parser("build-local-model", help="learn the per-region local models (paper section 4.1)")
    p.add_argument("--model", help="head model (default: the embedded open model)")
    p.add_argument("--meshes", help="folder of registered FLAME-topology meshes (.ply/.obj); default: head-model samples")
    p.add_argument("--assets", help="shared assets folder")
    p.add_argument("--components", type=int, default=LocalModelSettings.components_per_region)
    p.add_argument("--out", help="output .npz (default: the cache next to the model)")
    p.set_defaults(run=run_build_local)

    p = sub.add_parser("evaluate-fit", help="Table 1 on synthetic occluded faces: global vs global+local fit")
    p.add_argument("--n", type=int, default=50, help="synthetic faces in all, shared evenly by the three occlusion types")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="head model (default: the embedded open model)")
    p.add_argument("--assets", help="shared assets folder")
    p.add_argument("--out", help="also write the table (.md) and per-face errors (.json) to this folder")
    p.set_defaults(run=run_evaluate)


def run_fit(args) -> int:
    from ..inputs import prepare_face_inputs

    device = str(resolve_device(args.device))
    if not Path(args.image).exists():
        raise InputFileError(f"image not found: {args.image}")
    model = load_head_model(args.model, assets=args.assets)
    local = load_or_build_local_model(model, args.local_model) if args.mode == "global+local" else None
    bar = StageProgress()
    t0 = time.perf_counter()
    bar("inputs: landmarks, masks", 0.0)
    inputs = prepare_face_inputs(args.image, mask=args.mask, backend=args.backend)
    t_inputs = time.perf_counter() - t0
    fitter = PartialFitter(model, local, FitSettings(mode=args.mode, device=device, seed=args.seed), mean_texture_path(args.assets))
    result = fitter.fit(evidence_from_inputs(inputs), progress=bar)
    bar.close()
    result.timings["inputs"] = t_inputs
    with atomic_output_dir(args.out) as tmp:
        write_fit_outputs(tmp, inputs, result, model, fitter.renderer)
    print(f"wrote {args.out}: fit.obj, fit.npz, overlay.png (fit {result.timings['total']:.1f} s, "
          f"landmark error {result.landmark_error_px:.2f} px, {int((~result.occluded).sum())} visible vertices)")
    return 0


def run_build_local(args) -> int:
    from ..outputs.mesh_files import read_mesh_vertices

    model = load_head_model(args.model, assets=args.assets)
    meshes = None
    if args.meshes:
        folder = Path(args.meshes)
        files = sorted([p for p in folder.glob("*") if p.suffix.lower() in (".ply", ".obj")]) if folder.is_dir() else []
        if not files:
            raise InputFileError(f"no .ply or .obj meshes in {folder}")
        arrays = []
        for f in files:
            v, _ = read_mesh_vertices(f)
            if v.shape[0] != model.num_vertices:
                raise InputFileError(f"{f} has {v.shape[0]} vertices; the head model has {model.num_vertices}")
            arrays.append(v)
        meshes = np.stack(arrays).astype(np.float64)
    lm = build_local_model(model, meshes, LocalModelSettings(components_per_region=args.components))
    path = lm.save(args.out or cached_local_model_path(model))
    print(f"wrote {path} ({lm.num_components} local components over {len(lm.region_names)} regions)")
    return 0


def run_evaluate(args) -> int:
    from tqdm import tqdm

    from ..evaluation.fit_eval import evaluate_fit

    model = load_head_model(args.model, assets=args.assets)
    local = load_or_build_local_model(model)
    bar = tqdm(total=args.n, desc="evaluate-fit", unit="face")
    ev = evaluate_fit(model, local, n=args.n, seed=args.seed, texture_path=mean_texture_path(args.assets),
                      progress=lambda d, t: bar.update(d - bar.n))
    bar.close()
    text = ev.markdown()
    print(text)
    if args.out:
        out = Path(args.out)
        write_text_atomic(out / "table1.md", text + "\n")
        write_text_atomic(out / "table1.json", json.dumps({"errors_mm": ev.errors_mm, "seconds": ev.seconds}, indent=1))
    return 0

"""``d3dface fit``, ``build-local-model``, ``evaluate-fit``, ``evaluate-reprojection`` and
``evaluate-expressions``: the partial fit (Algorithm 1) and what its heads do."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import atomic_output_dir, write_text_atomic
from ..defaults import DEFAULT_SEED
from ..errors import D3DFaceError, InputFileError
from ..evaluation.fit_eval import METHODS as FIT_METHODS, TABLE1_LANDMARKS
from ..evaluation.synthetic_faces import HEAD_KINDS, LANDMARK_SOURCES, OCCLUDER_TYPES
from ..fit.evidence import evidence_from_inputs
from ..fit.local_model import cached_local_model_path
from ..fit.partial_fit import PartialFitter
from ..fit.settings import ALBEDO_BASES, FIT_MODES, FitSettings, uses_local_model
from ..head_model import load_head_model
from ..inputs.settings import MaskSettings
from ..outputs.fit_files import write_fit_outputs
from ..paths import find_assets_dir, mean_texture_path
from ..reconstruct import RUN_TIME_TEXTURE
from ..training.local_models import LocalModelSettings, build_local_model, load_or_build_local_model
from .common import (ASSETS_HELP, MODEL_HELP, StageProgress, add_backend, add_device, add_json, json_to_stdout,
                     resolve_device, write_json)


EVAL_FIT_FACES_PER_TYPE = 17  # x 3 occlusion types: about the 50 faces of the paper's Table 1 runs


def register(sub) -> None:
    p = sub.add_parser("fit", help="partial fit of the head model to one photo (Algorithm 1)")
    p.add_argument("image", help="photo of a face (jpg/png/...)")
    p.add_argument("--mask", default=MaskSettings.occlusion,
                   help="occlusion mask: a mask image (white = occluded), auto (estimate) or none (default: %(default)s)")
    add_backend(p)
    p.add_argument("--mode", default=FitSettings.mode, choices=list(FIT_MODES),
                   help="global: every mode of the head model; global+local: 10 identity and 10 expression modes and "
                        "the per-region local models (the paper's); full+local: every mode and the local models "
                        "(default: %(default)s)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--local-model", help="local model .npz (default: built once and cached)")
    p.add_argument("--assets", help=ASSETS_HELP)
    add_device(p)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder: fit.obj, fit.npz, overlay.png (written atomically)")
    p.set_defaults(run=run_fit)

    p = sub.add_parser("build-local-model", help="learn the per-region local models (paper section 4.1)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--meshes", help="folder of registered FLAME-topology meshes (.ply/.obj); default: head-model samples")
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--components", type=int, default=LocalModelSettings.components_per_region,
                   help="components per region and per kind (shape, expression) (default: %(default)s)")
    p.add_argument("--out", help="output .npz (default: the cache next to the model)")
    p.set_defaults(run=run_build_local)

    p = sub.add_parser("evaluate-fit", help="Table 1 on synthetic occluded faces: global, global+local and full+local fits")
    p.add_argument("--n", type=int, default=EVAL_FIT_FACES_PER_TYPE,
                   help=f"synthetic faces per occlusion type ({', '.join(OCCLUDER_TYPES)}; default: %(default)s, "
                        f"{EVAL_FIT_FACES_PER_TYPE * len(OCCLUDER_TYPES)} in all)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the synthetic faces (default: %(default)s)")
    p.add_argument("--heads", default="out-of-span", choices=list(HEAD_KINDS),
                   help="ground truth: out-of-span (region-mixed heads with local detail, which no fit mode holds "
                        "exactly) or model (drawn from the head model itself) (default: %(default)s)")
    p.add_argument("--landmarks", default=TABLE1_LANDMARKS, choices=list(LANDMARK_SOURCES),
                   help="what the fit is given: detected (MediaPipe on the occluded render, the product's input path) "
                        "or projected (the model's embedded landmarks + 1 px noise: an ideal detector that agrees "
                        "with the fit's embedding, which flatters weakly regularised fits) "
                        "(default: %(default)s)")
    p.add_argument("--methods", nargs="+", default=list(FIT_METHODS), choices=list(FIT_MODES),
                   help="fit modes to compare (default: %(default)s)")
    add_albedo_option(p)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--out", help="also write the table (table1.md) and per-face errors (table1.json) to this folder")
    p.set_defaults(run=run_evaluate)

    p = sub.add_parser("evaluate-reprojection",
                       help="fit every shared photo; reprojection error on dense and 68 landmarks (%% IOD) and overlays")
    p.add_argument("--images", help="folder holding faces/ and occluded/ (default: <shared>/images)")
    p.add_argument("--mode", default=FitSettings.mode, choices=list(FIT_MODES), help="fit mode (default: %(default)s)")
    add_albedo_option(p)
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--assets", help=ASSETS_HELP)
    add_json(p, "the per-photo errors")
    p.add_argument("--out", required=True, help="output folder: reprojection.md and overlays/<photo>.png (atomically)")
    p.set_defaults(run=run_evaluate_reprojection)
    register_expression_checks(sub)


def add_albedo_option(p) -> None:
    p.add_argument("--albedo", default=FitSettings.albedo_basis, choices=list(ALBEDO_BASES),
                   help="the fit's albedo offsets: regions (one per soft region) or smooth (low-frequency "
                        "per-vertex) (default: %(default)s)")


def register_expression_checks(sub) -> None:
    p = sub.add_parser("evaluate-expressions",
                       help="fit every shared photo; do its neutral head's eyeBlink, jawOpen and mouthClose keys keep it whole?")
    p.add_argument("--images", help="folder holding faces/ and occluded/ (default: <shared>/images)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--assets", help=ASSETS_HELP)
    p.add_argument("--identities", type=int, default=0, metavar="N",
                   help="also check N random identities of the model (coefficients ~ N(0, 1), seed 0); default 0")
    add_json(p, "the per-photo checks")
    p.set_defaults(run=run_evaluate_expressions)


def _shared_photos_and_fitter(args, mode: str, albedo_basis: str = FitSettings.albedo_basis):
    """The shared photos ((photo, mask) of ``--images``, default <shared>/images), the head model
    and a fitter of ``mode`` with the product's albedo (its offsets on ``albedo_basis``)."""
    from ..evaluation.reprojection_eval import shared_photos

    images = Path(args.images) if args.images else find_assets_dir(args.assets).parent / "images"
    photos = shared_photos(images)
    if not photos:
        raise InputFileError(f"no photos under {images}/faces or {images}/occluded")
    model = load_head_model(args.model, assets=args.assets)
    local = load_or_build_local_model(model) if uses_local_model(mode) else None
    return photos, model, PartialFitter(model, local, FitSettings(mode=mode, albedo_basis=albedo_basis), RUN_TIME_TEXTURE)


def run_evaluate_expressions(args) -> int:
    from ..evaluation.expression_checks import check_head, markdown, random_identities
    from ..head_model.expression_split import ExpressionState, neutralise
    from ..inputs import prepare_face_inputs

    if args.identities < 0:
        raise D3DFaceError(f"--identities must be 0 or more, got {args.identities}")
    photos, model, fitter = _shared_photos_and_fitter(args, FitSettings.mode)
    rows = [("template", check_head(model, model.v_template))]
    rows += [(f"identity_{i:02d}", check_head(model, v)) for i, v in enumerate(random_identities(model, args.identities))]
    for photo, mask in tqdm(photos, desc="photos", file=sys.stderr):
        try:
            fit = fitter.fit(evidence_from_inputs(prepare_face_inputs(photo, mask=mask)))
        except D3DFaceError as exc:
            print(f"d3dface: {photo.name}: {exc}", file=sys.stderr)
            continue
        state = ExpressionState.from_fit(model, fit.params, fit.unposed_vertices)
        rows.append((photo.stem, check_head(model, neutralise(model, fit.vertices, state))))
    table = markdown(rows)
    print(table, end="", file=sys.stderr if json_to_stdout(args) else sys.stdout)
    if args.json_path:
        write_json(args.json_path, dict(rows))
    return 0


def run_fit(args) -> int:
    from ..inputs import prepare_face_inputs

    device = str(resolve_device(args.device))
    if not Path(args.image).exists():
        raise InputFileError(f"image not found: {args.image}")
    model = load_head_model(args.model, assets=args.assets)
    local = load_or_build_local_model(model, args.local_model) if uses_local_model(args.mode) else None
    bar = StageProgress()
    t0 = time.perf_counter()
    bar("inputs: landmarks, masks", 0.0)
    inputs = prepare_face_inputs(args.image, mask=args.mask, backend=args.backend)
    t_inputs = time.perf_counter() - t0
    fitter = PartialFitter(model, local, FitSettings(mode=args.mode, device=device, seed=args.seed), RUN_TIME_TEXTURE)
    result = fitter.fit(evidence_from_inputs(inputs), progress=bar)
    bar.close()
    result.timings["inputs"] = t_inputs
    with atomic_output_dir(args.out) as tmp:
        write_fit_outputs(tmp, inputs, result, model, fitter.renderer)
    print(f"wrote {args.out}: fit.obj, fit.npz, overlay.png (fit {result.timings['total']:.1f} s, "
          f"landmark error {result.landmark_error_px:.2f} px, {int((~result.occluded).sum())} visible vertices)")
    return 0


def run_evaluate_reprojection(args) -> int:
    from ..evaluation.reprojection_eval import fit_photo, markdown_table
    from ..outputs.pictures import write_png

    photos, _, fitter = _shared_photos_and_fitter(args, args.mode, args.albedo)
    rows = []
    with atomic_output_dir(args.out) as tmp:
        (tmp / "overlays").mkdir()
        for photo, mask in tqdm(photos, desc="photos", file=sys.stderr):
            row = fit_photo(fitter, photo, mask)
            if row.overlay is not None:
                write_png(tmp / "overlays" / f"{row.name}.png", row.overlay)
            rows.append(row)
        table = markdown_table(rows)
        (tmp / "reprojection.md").write_text(table)
    print(table, end="", file=sys.stderr if json_to_stdout(args) else sys.stdout)
    if args.json_path:
        write_json(args.json_path, [{k: v for k, v in vars(r).items() if k != "overlay"} for r in rows])
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
    total = args.n * len(OCCLUDER_TYPES)  # evaluate_fit's n is the total, shared evenly by the types
    bar = tqdm(total=total, desc="evaluate-fit", unit="face")
    # the test faces wear FLAME's mean texture when the assets are here; the fitter has the product's albedo
    ev = evaluate_fit(model, local, n=total, seed=args.seed, texture_path=mean_texture_path(args.assets),
                      progress=lambda d, t: bar.update(d - bar.n), heads=args.heads, methods=tuple(args.methods),
                      fit_texture_path=RUN_TIME_TEXTURE, landmarks=args.landmarks,
                      settings=FitSettings(albedo_basis=args.albedo))
    bar.close()
    text = ev.markdown()
    print(text)
    if args.out:
        out = Path(args.out)
        write_text_atomic(out / "table1.md", text + "\n")
        write_text_atomic(out / "table1.json", json.dumps({"heads": ev.heads, "errors_mm": ev.errors_mm,
                                                           "seconds": ev.seconds}, indent=1))
    return 0

"""``d3dface evaluate``: the paper's Table 1 and Table 2 protocols on synthetic occluded faces."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ..atomic import atomic_output_dir, write_text_atomic
from ..complete.settings import DEFAULT_SAMPLES, DiversifySettings
from ..defaults import DEFAULT_SEED
from ..errors import D3DFaceError
from ..evaluation.synthetic_faces import HEAD_KINDS
from .common import add_device


QUICK_FACES_PER_TYPE = 3
QUICK_SAMPLES = 6
DEFAULT_FACES_PER_TYPE = 100


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="Table 1 and 2 on synthetic occluded faces: four methods, CSE / ASD-V / ASD-O")
    p.add_argument("--n", type=int, default=None,
                   help=f"synthetic faces per occlusion type (glasses, face_mask, object; default {DEFAULT_FACES_PER_TYPE}); "
                        "not with --quick")
    p.add_argument("--quick", action="store_true",
                   help=f"a small preset for CI: {QUICK_FACES_PER_TYPE} faces per type, at most {QUICK_SAMPLES} samples, "
                        "fewer iterations (not with --n)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per face, M (default: %(default)s; --quick: at most "
                                                          f"{QUICK_SAMPLES})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the synthetic faces and the samples (default: %(default)s)")
    add_device(p)
    p.add_argument("--heads", default="model", choices=list(HEAD_KINDS),
                   help="test heads: drawn from the head model, or out-of-span (regions of independent draws and local "
                        "detail the model cannot represent) (default: %(default)s)")
    p.add_argument("--photometric", type=float, default=DiversifySettings.lambda_pho,
                   help="weight of Algorithm 2's photometric term in the Mesh-VAE + DPP row (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes to share the faces, one torch thread each (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder: table.md, table.csv, rows.json, chart.png")
    p.set_defaults(run=run)
    register_photos(sub)


def run(args) -> int:
    if args.quick and args.n is not None:
        raise D3DFaceError(f"give --quick ({QUICK_FACES_PER_TYPE} faces per type) or --n, not both")
    if args.photometric < 0:
        raise D3DFaceError(f"--photometric must be 0 or more, not {args.photometric}")
    from tqdm import tqdm

    from ..devices import resolve_device
    from ..evaluation.diversity_eval import METHODS, EvalSettings, evaluate_diversity, evaluate_parallel
    from ..evaluation.synthetic_faces import OCCLUDER_TYPES
    from ..outputs.charts import bar_chart
    from ..outputs.pictures import grid, write_png
    from ..reconstruct import get_engine

    if args.quick:
        st = EvalSettings(faces_per_type=QUICK_FACES_PER_TYPE, samples=min(args.samples, QUICK_SAMPLES), seed=args.seed,
                          fit_landmark_iters=80, fit_photometric_iters=25, diversify_iters=40, heads=args.heads,
                          photometric=args.photometric)
    else:
        st = EvalSettings(faces_per_type=DEFAULT_FACES_PER_TYPE if args.n is None else args.n, samples=args.samples,
                          seed=args.seed, heads=args.heads, photometric=args.photometric)
    device = str(resolve_device(args.device))
    t0 = time.perf_counter()
    bar = tqdm(total=3 * st.faces_per_type, desc="evaluate", unit="face")
    if args.workers > 1:
        ev = evaluate_parallel(st, args.workers, device, progress=lambda d, t: bar.update(d - bar.n))
    else:
        ev = evaluate_diversity(get_engine(None, device), st, progress=lambda d, t: bar.update(d - bar.n))
    bar.close()
    s = ev.summary()
    groups = [*OCCLUDER_TYPES, "overall"]
    ratio = bar_chart(groups, {m: [s[m][k]["asd_ratio"] for k in groups] for m in METHODS}, "ASD-O / ASD-V (higher is better)")
    cse = bar_chart(groups, {m: [s[m][k]["cse_mm"] for k in groups] for m in METHODS}, "CSE, mm (lower is better)")
    text = (ev.markdown() + f"\n\n{st.faces_per_type} faces per type ({st.heads} heads), M = {st.samples}, "
            f"product completion {DiversifySettings().model}, Mesh-VAE + DPP photometric weight {st.photometric:g}, "
            f"{time.perf_counter() - t0:.0f} s, "
            f"device {device}, {args.workers} worker(s)\n")
    with atomic_output_dir(args.out) as tmp:
        write_text_atomic(Path(tmp) / "table.md", text)
        write_text_atomic(Path(tmp) / "table.csv", ev.csv())
        write_text_atomic(Path(tmp) / "rows.json", json.dumps({"rows": ev.rows, "fit_errors": ev.fit_errors,
                                                              "settings": asdict(st)}, indent=1, default=float))
        write_png(Path(tmp) / "chart.png", grid([[ratio], [cse]]))
    print(text)
    return 0


def register_photos(sub) -> None:
    p = sub.add_parser("evaluate-photos", help="reconstruct every photo of a folder (with NAME_mask.png when present) and report ASD-V / ASD-O")
    p.add_argument("--images", help="folder of photos (default: <shared>/images/occluded)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="samples per photo, M (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the samples (default: %(default)s)")
    p.add_argument("--masks", choices=["given", "auto"], default="given",
                   help="given: NAME_mask.png where present, else the automatic mask; auto: the automatic mask "
                        "everywhere, to compare with the given ones (default: %(default)s)")
    add_device(p)
    p.add_argument("--out", required=True, help="output folder: one reconstruction per photo and photos.md")
    p.set_defaults(run=run_photos)


def run_photos(args) -> int:
    from ..config import ReconstructConfig
    from ..errors import InputFileError
    from ..paths import find_assets_dir
    from ..reconstruct import get_engine

    folder = Path(args.images) if args.images else find_assets_dir().parent / "images" / "occluded"
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.stem.endswith("_mask"))
    if not photos:
        raise InputFileError(f"no photos in {folder}")
    engine = get_engine(None, args.device)
    lines = ["| photo | mask | ASD-V (mm) | ASD-O (mm) | ratio | creased/sample | raw ASD-V | raw ASD-O | raw ratio | "
             "raw creased/sample | other join: ASD-O, creased/sample | valid samples; worst flipped / degenerate / "
             "lip pairs / lid-eyeball pairs (the fit's) | mask hides (% of the face) | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out = Path(args.out)
    for photo in photos:
        mask = photo.with_name(photo.stem + "_mask.png")
        given = mask.exists() and args.masks == "given"
        cfg = ReconstructConfig.create(samples=args.samples, seed=args.seed, mask=str(mask) if given else "auto",
                                       device=args.device)
        t0 = time.perf_counter()
        try:
            res, _ = engine.reconstruct(photo, cfg, out / photo.stem)
        except D3DFaceError as exc:
            lines.append(f"| {photo.name} | {'given' if given else 'auto'} | error: {exc} ||||||||||||")
            continue
        lines.append(f"| {photo.name} | {'given' if given else 'auto'} | {_photo_row(res, engine.model, cfg.stitch.method)} | "
                     f"{res.settings['occluded_fraction_of_face'] * 100:.0f} | {time.perf_counter() - t0:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + (f"\n\nM = {args.samples}, face region, occluded = M_o^v of the fit; "
                               "creased: face edges whose dihedral angle exceeds the fit's by more than 30 degrees; "
                               "valid: samples with no more of any check than the fit (evaluation/plausibility.py); "
                               f"completion {ReconstructConfig().completion.model}; product join "
                               f"{ReconstructConfig().stitch.method}, other join computed from the raw samples; "
                               f"device {engine.device}\n")
    write_text_atomic(out / "photos.md", text)
    print(text)
    return 0


def _photo_row(res, model, method: str) -> str:
    """Diversity and creases of the product's samples, the raw ones, and the other join's."""
    from ..complete.stitching import join_to_fit
    from ..evaluation.metrics import creased_edges, diversity_metrics
    from ..evaluation.plausibility import CHECKS, sample_health

    face = model.regions["face"]
    other = "laplacian" if method == "smoothstep" else "smoothstep"
    alt = join_to_fit(res.samples_raw, res.fit_vertices, res.occluded, res.faces, other)
    cells = []
    for samples in (res.samples, res.samples_raw):
        d = diversity_metrics(samples, res.occluded, region=face)
        creases = creased_edges(samples, res.fit_vertices, res.faces, face).mean()
        cells.append(f"{d.asd_v:.2f} | {d.asd_o:.2f} | {d.ratio:.2f} | {creases:.1f}")
    d = diversity_metrics(alt, res.occluded, region=face)
    cells.append(f"{other} {d.asd_o:.2f}, {creased_edges(alt, res.fit_vertices, res.faces, face).mean():.1f}")
    h = sample_health(res.samples, res.fit_vertices, model)
    cells.append(f"{h['valid']}/{res.num_samples}; " + " / ".join(f"{h['worst'][k]} ({h['fit'][k]})" for k in CHECKS))
    return " | ".join(cells)

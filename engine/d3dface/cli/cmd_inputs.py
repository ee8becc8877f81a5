"""``d3dface landmarks IMAGE --out DIR``: face inputs of one photo (overlay + JSON + npz);
``d3dface evaluate-inputs --out DIR``: the face-inputs measurements on the shared photos;
``d3dface train-occlusion-net --out DIR``: train the automatic mask's network on composites."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_output_dir
from ..errors import InputFileError
from ..inputs.settings import LandmarkSettings, MaskSettings
from .common import add_backend


def register(sub) -> None:
    p = sub.add_parser("landmarks", help="landmarks with validity, face mask and occlusion mask of one photo")
    p.add_argument("image", help="photo (jpg/png/...; EXIF, gray, RGBA, 16-bit accepted)")
    p.add_argument("--mask", default=MaskSettings.occlusion, help="occlusion mask: 'auto' (estimate), 'none', or a mask image "
                                                  "(white = occluded; any size) (default: %(default)s)")
    add_backend(p)
    p.add_argument("--fan-weights", help="FAN weights file, TorchScript or state dict (default: $D3DFACE_FAN_WEIGHTS, "
                                          "else the torch hub cache); never downloaded")
    p.add_argument("--tau", type=float, default=None,
                   help=f"confidence threshold for a valid landmark (default: {LandmarkSettings.tau})")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.set_defaults(run=run_landmarks)

    e = sub.add_parser("evaluate-inputs", help="measure landmarks and masks on the shared photos")
    e.add_argument("--images", help="images folder holding faces/, occluded/, backgrounds/ (default: ../shared/images)")
    add_backend(e, default="mediapipe")
    e.add_argument("--seeds", type=int, default=2, help="synthetic occluders per photo and type (default: %(default)s)")
    e.add_argument("--out", required=True, help="output folder: report.json, report.md, overlays/")
    e.set_defaults(run=run_evaluate)

    t = sub.add_parser("train-occlusion-net", help="train the automatic mask's occlusion network on composites")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder: last.pt, log.csv, model.pt")
    t.add_argument("--images", help="images folder holding faces/ and backgrounds/ (default: ../shared/images)")
    t.add_argument("--steps", type=int, help="training steps (default: 2000)")
    t.add_argument("--batch-size", type=int, help="crops per step (default: 16)")
    t.add_argument("--no-eval-kinds", action="store_true",
                   help="train on the training occluders only, not also the evaluation generator's kinds")
    t.add_argument("--highlights", type=float, metavar="P",
                   help="share of crops with soft highlights on the skin that are not occluders (default: 0)")
    t.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    t.add_argument("--export", help="also copy the final model to this path (e.g. engine/d3dface/data/occlusion_net.pt)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=run_train)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise InputFileError(f"cannot write {path}")


def run_landmarks(args) -> int:
    from ..outputs.landmark_overlay import draw_overlay
    from ..inputs.prepare import prepare_face_inputs
    from ..inputs.settings import InputSettings

    settings = InputSettings()
    if args.tau is not None:
        settings = InputSettings(landmarks=LandmarkSettings(tau=args.tau))
    fi = prepare_face_inputs(args.image, mask=args.mask, backend=args.backend, settings=settings,
                             fan_weights=args.fan_weights)
    lm = fi.landmarks
    stem = Path(args.image).stem
    with atomic_output_dir(args.out) as tmp:
        _write_png(tmp / f"{stem}_overlay.png", draw_overlay(fi.image, lm, fi.face_mask, fi.occlusion_mask))
        arrays = dict(points68=lm.points68, confidence68=lm.confidence68, valid68=lm.valid68,
                      face_box=lm.face_box, face_mask=fi.face_mask, occlusion_mask=fi.occlusion_mask,
                      crop_box=fi.crop.box)
        if lm.dense is not None:
            arrays["dense"], arrays["valid_dense"] = lm.dense, lm.valid_dense
        np.savez_compressed(tmp / f"{stem}_inputs.npz", **arrays)
        summary = fi.summary() | {
            "points68": np.round(lm.points68, 2).tolist(),
            "confidence68": np.round(lm.confidence68, 4).tolist(),
            "valid68": lm.valid68.astype(int).tolist(),
        }
        (tmp / f"{stem}_inputs.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(f"{args.image}: {lm.backend}, {lm.face_count} face(s), {int(lm.valid68.sum())}/68 valid landmarks, "
          f"occluded {summary['occluded_fraction_of_face'] * 100:.1f}% of the face -> {args.out}")
    return 0


def _images_dir(arg) -> Path:
    if arg:
        p = Path(arg)
    else:
        from ..paths import find_assets_dir

        p = find_assets_dir().parent / "images"
    if not (p / "faces").is_dir():
        raise InputFileError(f"images folder {p} has no faces/ sub-folder")
    return p


def _fmt(x) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def run_evaluate(args) -> int:
    from tqdm import tqdm

    from ..evaluation import inputs_eval as ev
    from ..inputs.image_io import load_image
    from ..inputs.landmarks_base import detect_landmarks
    from ..inputs.masks import estimate_occlusion, face_mask
    from ..inputs.occluders import KINDS, apply_occluder, load_textures
    from ..outputs.landmark_overlay import draw_overlay

    images = _images_dir(args.images)
    seeds = tuple(range(args.seeds))
    n_faces = len([p for p in (images / "faces").iterdir() if p.suffix.lower() in ev.IMAGE_SUFFIXES])
    with tqdm(total=n_faces * len(KINDS) * len(seeds), desc="synthetic occluders", leave=False) as bar:
        synth = ev.evaluate_synthetic(images, args.backend, seeds, progress=bar.update)
    real = ev.evaluate_real_masks(images, args.backend)
    timing = ev.time_backends(images)
    timing["fan_network_only_sec_per_crop"] = ev.time_fan_network()
    report = {"backend": args.backend, "auto_mask_method": MaskSettings().auto.method, "seeds": list(seeds), "synthetic": synth, "real_masks": real, "timing": timing}

    lines = [f"# Face inputs evaluation ({args.backend}, seeds {list(seeds)}, auto mask: {MaskSettings().auto.method})", "",
             "| occluder | cases | visible lmk err (% IOD) | occluded lmks | P / R invalid (auto M_o) |"
             " P / R invalid (true M_o) | auto IoU | auto IoU in M_f | other method's IoU in M_f |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, r in synth.items():
        lines.append(f"| {k} | {r['cases']} | {_fmt(r['visible_lmk_error_pct_iod'])} | {r['occluded_landmarks']} | "
                     f"{_fmt(r['invalid_precision_auto_mask'])} / {_fmt(r['invalid_recall_auto_mask'])} | "
                     f"{_fmt(r['invalid_precision_true_mask'])} / {_fmt(r['invalid_recall_true_mask'])} | "
                     f"{_fmt(r['auto_iou'])} | {_fmt(r['auto_iou_in_face'])} | "
                     f"{_fmt(next(v for k, v in r.items() if k.startswith('auto_iou_in_face_')))} |")
    others = sorted({k for r in real.values() for k in r if k.startswith("iou_in_face_")})
    lines += ["", f"| real mask | auto IoU | auto IoU in M_f | {' | '.join(o[12:] + ' IoU in M_f' for o in others)} |",
              "|---|---|---|" + "---|" * len(others)]
    lines += [f"| {k} | {_fmt(r['iou'])} | {_fmt(r['iou_in_face'])} | {' | '.join(_fmt(r[o]) for o in others)} |"
              for k, r in real.items()]
    lines += ["", "| backend | sec / image (landmarks) | sec / image (auto mask) |", "|---|---|---|"]
    for k, r in timing.items():
        if isinstance(r, dict):
            lines.append(f"| {k} | {_fmt(r['sec_per_image']) if r['available'] else 'unavailable: ' + r['reason']} | "
                         f"{_fmt(r.get('auto_mask_sec_per_image', float('nan')))} |")
    lines.append(f"| FAN network forward only (untrained 4-stack, 256 px crop) | "
                 f"{_fmt(timing['fan_network_only_sec_per_crop'])} | |")

    textures = load_textures(images / "backgrounds")
    with atomic_output_dir(args.out) as tmp:
        (tmp / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        (tmp / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        ov = tmp / "overlays"
        ov.mkdir()
        for name in ev.REAL_MASKED + ("surgical_mask_man", "eyeglasses_woman"):
            img = load_image(images / "occluded" / f"{name}.jpg")
            lm = detect_landmarks(img, args.backend)
            mf = face_mask(lm)
            mo = estimate_occlusion(img, lm, mf)
            _write_png(ov / f"real_{name}_auto.png", draw_overlay(img, lm.with_occlusion(mo, margin=0.03), mf, mo))
        for i, path in enumerate(sorted(p for p in (images / "faces").iterdir() if p.suffix.lower() in ev.IMAGE_SUFFIXES)[:3]):
            img = load_image(path)
            lm0 = detect_landmarks(img, args.backend)
            for kind in KINDS:
                occ = apply_occluder(img, lm0.points68, kind, i, textures)
                lm = detect_landmarks(occ.image, args.backend)
                mf = face_mask(lm)
                mo = estimate_occlusion(occ.image, lm, mf)
                _write_png(ov / f"synthetic_{path.stem}_{kind}_auto.png",
                           draw_overlay(occ.image, lm.with_occlusion(mo, margin=0.03), mf, mo))
    print("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


def run_train(args) -> int:
    from dataclasses import replace

    from ..training.occlusion_net_training import OcclusionTrainer, OcclusionTrainSettings

    st = OcclusionTrainSettings(seed=args.seed, eval_kinds=not args.no_eval_kinds)
    if args.steps is not None:
        st = replace(st, steps=args.steps)
    if args.batch_size is not None:
        st = replace(st, batch_size=args.batch_size)
    if args.highlights is not None:
        st = replace(st, p_highlight=args.highlights)
    if st.steps < 1 or st.batch_size < 1:
        raise InputFileError("--steps and --batch-size must be at least 1")
    if not 0.0 <= st.p_highlight <= 1.0:
        raise InputFileError("--highlights must be between 0 and 1")
    trainer = OcclusionTrainer(args.out, _images_dir(args.images), st, resume=args.resume, progress=not args.quiet)
    path = trainer.run()
    if args.export:
        from ..atomic import write_bytes_atomic

        write_bytes_atomic(args.export, path.read_bytes())
    print(f"trained {trainer.step} steps, final loss {trainer.log[-1]['loss'] if trainer.log else 'n/a'} -> {path}"
          + (f" (copied to {args.export})" if args.export else ""))
    return 0

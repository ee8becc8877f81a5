"""The face-inputs measurements: landmark error and invalid-flag precision/recall under
synthetic occluders, automatic-mask IoU (real and synthetic masks), time per backend."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..inputs.image_io import load_image
from ..inputs.landmarks_base import BackendUnavailable, NoFaceError, detect_landmarks, get_backend
from ..inputs.masks import AUTO_METHODS, estimate_occlusion, face_mask, load_user_mask
from ..inputs.occluders import KINDS, apply_occluder, load_textures
from ..inputs.settings import InputSettings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
REAL_MASKED = ("glasses_woman", "watch_over_nose", "sunglasses_beard")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def _pr(tp, fp, fn):
    return (tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"))


def evaluate_synthetic(images_dir: Path, backend: str = "mediapipe", seeds=(0, 1),
                       settings: InputSettings | None = None, progress=None) -> dict:
    """Per occluder type, over the photos in ``images_dir/faces`` and ``seeds``."""
    settings = settings or InputSettings()
    ls = settings.landmarks
    be = get_backend(backend, ls)
    textures = load_textures(images_dir / "backgrounds")
    faces = sorted(p for p in (images_dir / "faces").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    acc = {k: dict(err=[], tp_auto=0, fp_auto=0, fn_auto=0, tp_true=0, fp_true=0, fn_true=0,
                   iou_full=[], iou_face=[], iou_face_other=[], n=0, failed=0) for k in KINDS}
    other = replace(settings.masks.auto, method=next(m for m in AUTO_METHODS if m != settings.masks.auto.method))
    for path in faces:
        img = load_image(path)
        lm0 = detect_landmarks(img, be, ls)
        mf0 = face_mask(lm0)
        iod = lm0.inter_ocular
        for kind in KINDS:
            for seed in seeds:
                a = acc[kind]
                occ = apply_occluder(img, lm0.points68, kind, seed, textures)
                truth = lm0.occluded68(occ.mask)              # ground-truth occluded landmarks
                try:
                    lm1 = detect_landmarks(occ.image, be, ls)
                except NoFaceError:
                    a["failed"] += 1
                    continue
                a["n"] += 1
                vis = ~truth
                a["err"].append(float(np.mean(np.linalg.norm(lm1.points68[vis] - lm0.points68[vis], axis=1)) / iod * 100))
                mf1 = face_mask(lm1)
                auto = estimate_occlusion(occ.image, lm1, mf1, settings.masks.auto)
                a["iou_full"].append(iou(auto, occ.mask))
                a["iou_face"].append(iou(auto & mf0, occ.mask & mf0))
                a["iou_face_other"].append(iou(estimate_occlusion(occ.image, lm1, mf1, other) & mf0, occ.mask & mf0))
                for mo, tag in ((auto, "auto"), (occ.mask, "true")):
                    inv = ~lm1.with_occlusion(mo, ls.tau, ls.occlusion_margin).valid68
                    a[f"tp_{tag}"] += int((inv & truth).sum())
                    a[f"fp_{tag}"] += int((inv & ~truth).sum())
                    a[f"fn_{tag}"] += int((~inv & truth).sum())
                if progress:
                    progress()
    out = {}
    for kind, a in acc.items():
        pa, ra = _pr(a["tp_auto"], a["fp_auto"], a["fn_auto"])
        pt, rt = _pr(a["tp_true"], a["fp_true"], a["fn_true"])
        out[kind] = {
            "cases": a["n"], "no_face": a["failed"],
            "visible_lmk_error_pct_iod": float(np.mean(a["err"])) if a["err"] else float("nan"),
            "occluded_landmarks": a["tp_true"] + a["fn_true"],
            "invalid_precision_auto_mask": pa, "invalid_recall_auto_mask": ra,
            "invalid_precision_true_mask": pt, "invalid_recall_true_mask": rt,
            "auto_iou": float(np.mean(a["iou_full"])) if a["iou_full"] else float("nan"),
            "auto_iou_in_face": float(np.mean(a["iou_face"])) if a["iou_face"] else float("nan"),
            f"auto_iou_in_face_{other.method}": float(np.mean(a["iou_face_other"])) if a["iou_face_other"] else float("nan"),
        }
    return out


def evaluate_real_masks(images_dir: Path, backend: str = "mediapipe", settings: InputSettings | None = None) -> dict:
    """Auto-mask IoU against the hand-drawn masks of ``images_dir/occluded``, by the configured
    method and, for comparison, by each other method (``iou_in_face_<method>``)."""
    settings = settings or InputSettings()
    auto_settings = settings.masks.auto
    out = {}
    for name in REAL_MASKED:
        img = load_image(images_dir / "occluded" / f"{name}.jpg")
        lm = detect_landmarks(img, backend, settings.landmarks)
        gt = load_user_mask(images_dir / "occluded" / f"{name}_mask.png", img.shape[:2])
        mf = face_mask(lm)
        auto = estimate_occlusion(img, lm, mf, auto_settings)
        out[name] = {"iou": iou(auto, gt), "iou_in_face": iou(auto & mf, gt & mf)}
        for method in AUTO_METHODS:
            if method != auto_settings.method:
                other = estimate_occlusion(img, lm, mf, replace(auto_settings, method=method))
                out[name][f"iou_in_face_{method}"] = iou(other & mf, gt & mf)
    return out


def time_backends(images_dir: Path, backends=("mediapipe", "fan"), repeats: int = 2,
                  settings: InputSettings | None = None) -> dict:
    """Mean seconds per image of ``detect_landmarks`` (warm, after one untimed call) and of the auto mask."""
    settings = settings or InputSettings()
    faces = sorted(p for p in (images_dir / "faces").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    imgs = [load_image(p) for p in faces]
    out = {}
    for name in backends:
        try:
            be = get_backend(name, settings.landmarks)
        except BackendUnavailable as exc:
            out[name] = {"available": False, "reason": str(exc)}
            continue
        detect_landmarks(imgs[0], be, settings.landmarks)
        t0 = time.perf_counter()
        lms = [detect_landmarks(im, be, settings.landmarks) for _ in range(repeats) for im in imgs]
        t_lmk = (time.perf_counter() - t0) / (repeats * len(imgs))
        t0 = time.perf_counter()
        for im, lm in zip(imgs, lms):
            estimate_occlusion(im, lm, None, settings.masks.auto)
        out[name] = {"available": True, "sec_per_image": t_lmk,
                     "auto_mask_sec_per_image": (time.perf_counter() - t0) / len(imgs),
                     "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in imgs})}
    return out


def time_fan_network(repeats: int = 3) -> float:
    """Seconds per 256x256 crop of a 4-stack FAN forward pass (untrained: same compute as the real one)."""
    import torch

    from ..inputs.fan_backend import build_fan

    net = build_fan(4).eval()
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        net(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
    return (time.perf_counter() - t0) / repeats

"""Files of a partial fit: the mesh, an .npz of everything fitted, and an overlay picture."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import __version__
from ..atomic import write_atomic
from .mesh_files import write_mesh
from .pictures import label, write_png

VISIBLE_TINT = np.array([0.25, 0.85, 0.35])
HIDDEN_TINT = np.array([0.95, 0.3, 0.25])
OUTLINE_RGB = (255, 220, 0)
DENSE_DETECTED_RGB, DENSE_FITTED_RGB = (40, 230, 60), (255, 40, 40)
L68_DETECTED_RGB, L68_FITTED_RGB = (0, 220, 255), (255, 0, 255)


@torch.no_grad()
def fit_overlay(image: np.ndarray, occlusion: np.ndarray, result, renderer, scale: int = 2) -> np.ndarray:
    """(S, 3S) RGB uint8 x scale: the crop with M_o tinted | the shaded fit over it | the fit coloured
    by per-vertex visibility (green: visible evidence, red: occluded, M_o^v)."""
    cam = result.camera_object()
    v = torch.as_tensor(result.vertices)[None]
    shaded = renderer.render(v, cam, light=torch.as_tensor(result.light)[None], vertex_colors=torch.as_tensor(result.albedo)[None])
    vis_col = np.where(result.occluded[:, None], HIDDEN_TINT, VISIBLE_TINT).astype(np.float32)
    grey = torch.zeros(1, 9, 3)
    grey[0, 0] = 1.0 / 0.886227
    visr = renderer.render(v, cam, light=grey, vertex_colors=torch.as_tensor(vis_col)[None])
    m = shaded.mask[0, 0].numpy()[..., None]
    img = image.astype(np.float32)
    tinted = img.copy()
    tinted[occlusion] = 0.5 * tinted[occlusion] + 0.5 * np.array([1.0, 0.0, 1.0])
    over = img * (1 - 0.75 * m) + 0.75 * m * shaded.image[0].permute(1, 2, 0).clamp(0, 1).numpy()
    vis = img * (1 - 0.7 * m) + 0.7 * m * visr.image[0].permute(1, 2, 0).clamp(0, 1).numpy()
    panels = [(np.clip(p, 0, 1) * 255).astype(np.uint8) for p in (tinted, over, vis, img)]
    S = image.shape[0] * scale
    panels = [cv2.resize(p, (S, S), interpolation=cv2.INTER_LINEAR) for p in panels]
    panels[3] = outline_and_landmarks(panels[3], m[..., 0] > 0, result.reprojection, scale)
    rp = result.reprojection
    names = ["input, M_o tinted", "fit over the photo", "visible (green) / occluded (red)",
             f"outline; dense {rp.get('dense_error_iod_pct', float('nan')):.1f}% / 68: "
             f"{rp.get('lmk68_error_iod_pct', float('nan')):.1f}% IOD"]
    return np.concatenate([label(p, n, 0.5) for p, n in zip(panels, names)], axis=1)


def outline_and_landmarks(panel: np.ndarray, covered: np.ndarray, reprojection: dict, scale: int) -> np.ndarray:
    """panel (S*scale, S*scale, 3) uint8 photo; covered (S, S) bool fit silhouette. Draws the fit's
    outline (yellow), the detected points used (green), the fit's points (red) joined to them, and the
    68 points (detected: cyan, fitted: magenta)."""
    out = np.ascontiguousarray(panel.copy())
    big = cv2.resize(covered.astype(np.uint8), out.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, OUTLINE_RGB, 1, cv2.LINE_AA)
    s = float(scale)
    pt = lambda p: (int(round((p[0] + 0.5) * s - 0.5)), int(round((p[1] + 0.5) * s - 0.5)))  # noqa: E731
    for kind, det_col, fit_col in (("dense", DENSE_DETECTED_RGB, DENSE_FITTED_RGB), ("lmk68", L68_DETECTED_RGB, L68_FITTED_RGB)):
        if f"{kind}_detected" not in reprojection:
            continue
        det, fit, used = (reprojection[f"{kind}_{k}"] for k in ("detected", "fitted", "used"))
        for d, f in zip(det[used], fit[used]):
            cv2.line(out, pt(d), pt(f), fit_col, 1, cv2.LINE_AA)
            cv2.circle(out, pt(d), 1, det_col, -1, cv2.LINE_AA)
    return out


def fit_arrays(result) -> dict:
    arrays = {
        "vertices": result.vertices.astype(np.float32),
        "occluded": result.occluded,
        "light": result.light.astype(np.float32),
        "albedo": result.albedo.astype(np.float32),
        "camera_json": np.array(json.dumps(result.camera)),
        "mode": np.array(result.mode),
        "landmark_error_px": np.array(result.landmark_error_px),
        "crop_size": np.array(result.crop_size),
        "timings_json": np.array(json.dumps(result.timings)),
        "engine_version": np.array(__version__),
    }
    if result.crop_box is not None:
        arrays["crop_box"] = result.crop_box
    for k, a in result.params.items():
        arrays[f"param/{k}"] = np.asarray(a)
    for k, a in result.reprojection.items():
        arrays[f"reprojection/{k}"] = np.asarray(a)
    return arrays


def write_fit_outputs(folder: Path, inputs, result, model, renderer) -> None:
    folder = Path(folder)
    write_mesh(folder / "fit.obj", result.vertices, model.faces, model.uvs, model.uv_faces)
    arrays = fit_arrays(result)
    write_atomic(folder / "fit.npz", lambda p: np.savez_compressed(p, **arrays))
    crop = inputs.crop
    image = crop.apply(inputs.image).astype(np.float32) / 255
    write_png(folder / "overlay.png", fit_overlay(image, crop.apply(inputs.occlusion_mask), result, renderer))

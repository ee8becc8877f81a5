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
    panels = [(np.clip(p, 0, 1) * 255).astype(np.uint8) for p in (tinted, over, vis)]
    S = image.shape[0] * scale
    panels = [cv2.resize(p, (S, S), interpolation=cv2.INTER_LINEAR) for p in panels]
    names = ["input, M_o tinted", "fit over the photo", "visible (green) / occluded (red)"]
    return np.concatenate([label(p, n, 0.5) for p, n in zip(panels, names)], axis=1)


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
    return arrays


def write_fit_outputs(folder: Path, inputs, result, model, renderer) -> None:
    folder = Path(folder)
    write_mesh(folder / "fit.obj", result.vertices, model.faces, model.uvs, model.uv_faces)
    arrays = fit_arrays(result)
    write_atomic(folder / "fit.npz", lambda p: np.savez_compressed(p, **arrays))
    crop = inputs.crop
    image = crop.apply(inputs.image).astype(np.float32) / 255
    write_png(folder / "overlay.png", fit_overlay(image, crop.apply(inputs.occlusion_mask), result, renderer))

"""The contact sheet of a reconstruction: the input with its occlusion mask, the fit over the
photo, a heat map of the per-vertex standard deviation across samples, and every sample
rendered front and three-quarter."""

from __future__ import annotations

import cv2
import numpy as np

from .pictures import grid, label, render_views

TILE = 192


def heat_colours(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(V,) non-negative values -> (V, 3) RGB in [0, 1] (inferno colour map, 0 = dark)."""
    vmax = float(vmax if vmax is not None else max(np.percentile(values, 99), 1e-9))
    idx = np.clip(values / vmax * 255, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(idx[:, None], cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    return rgb.astype(np.float32) / 255


def contact_sheet(crop_image: np.ndarray, occlusion: np.ndarray, fit_overlay: np.ndarray, result, faces: np.ndarray,
                  per_row: int = 4) -> np.ndarray:
    """crop_image (S, S, 3) float [0, 1]; occlusion (S, S) bool; fit_overlay (S, S, 3) uint8;
    result: a ReconstructionResult. Returns an RGB uint8 sheet."""
    def tile(img):
        return cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_AREA)

    inp = crop_image.copy()
    inp[occlusion] = 0.5 * inp[occlusion] + 0.5 * np.array([1.0, 0.0, 1.0])
    inp = (np.clip(inp, 0, 1) * 255).astype(np.uint8)
    std = result.diversity
    mean = result.samples.mean(0)
    heat = render_views(mean[None], faces, ("front", "three_quarter"), size=TILE, colors=heat_colours(std)[None])[0]
    vmax_mm = float(max(np.percentile(std, 99), 1e-9) * 1000)
    first = [label(tile(inp), "input, M_o"), label(tile(fit_overlay), "fit"),
             label(heat[0], f"std 0-{vmax_mm:.1f} mm"), label(heat[1], "std, 3/4")]
    views = render_views(result.samples, faces, ("front", "three_quarter"), size=TILE)
    flat = []
    for i in range(result.num_samples):  # each sample: front and three-quarter side by side
        flat += [label(views[i, 0], f"sample {i + 1:02d}"), views[i, 1]]
    rows = [first] + [flat[k:k + 2 * per_row] for k in range(0, len(flat), 2 * per_row)]
    return grid(rows)

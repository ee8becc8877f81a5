"""The contact sheet of a reconstruction: the input with its occlusion mask, the fit over the
photo, a heat map of the per-vertex standard deviation across samples, and every sample
rendered front and three-quarter, with a close-up of the part the photo hides and a heat map of
that sample's distance from the set's mean (where it differs from the others)."""

from __future__ import annotations

import cv2
import numpy as np

from .pictures import grid, label, render_views

TILE = 192
CLOSE_UP_MIN_M = 0.07  # the close-up spans at least this many metres (a small hidden part)


def heat_colours(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """(V,) non-negative values -> (V, 3) RGB in [0, 1] (inferno colour map, 0 = dark)."""
    vmax = float(vmax if vmax is not None else max(np.percentile(values, 99), 1e-9))
    idx = np.clip(values / vmax * 255, 0, 255).astype(np.uint8)
    rgb = cv2.applyColorMap(idx[:, None], cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    return rgb.astype(np.float32) / 255


def contact_sheet(crop_image: np.ndarray, occlusion: np.ndarray, fit_overlay: np.ndarray, result, faces: np.ndarray,
                  per_row: int = 2, face: np.ndarray | None = None) -> np.ndarray:
    """crop_image (S, S, 3) float [0, 1]; occlusion (S, S) bool; fit_overlay (S, S, 3) uint8;
    result: a ReconstructionResult; face: the face region's vertices (the close-up frames the
    hidden ones among them; None: all). Returns an RGB uint8 sheet."""
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
    close, where = _close_ups(result, faces, face)
    dist = np.linalg.norm(result.samples - mean[None], axis=-1)  # (M, V) metres
    dmax = float(max(np.percentile(dist, 99), 1e-9))
    diff = render_views(result.samples, faces, ("front",), size=TILE, colors=np.stack([heat_colours(d, dmax) for d in dist]))
    flat = []
    for i in range(result.num_samples):  # each sample: front, three-quarter, close-up, its distance from the mean
        flat += [label(views[i, 0], f"sample {i + 1:02d}"), views[i, 1], label(close[i], where),
                 label(diff[i, 0], f"- mean, 0-{dmax * 1000:.1f} mm")]
    rows = [first] + [flat[k:k + 4 * per_row] for k in range(0, len(flat), 4 * per_row)]
    return grid(rows)


def _close_ups(result, faces: np.ndarray, face: np.ndarray | None) -> tuple[np.ndarray, str]:
    """(M, TILE, TILE, 3) front close-ups framing the hidden face vertices (all samples alike),
    and their label; the whole face when nothing of it is hidden."""
    V = result.samples.shape[1]
    region = np.zeros(V, bool)
    region[np.arange(V) if face is None else face] = True
    hidden = region & np.asarray(result.occluded, bool)
    pick, where = (hidden, "close-up: hidden") if hidden.sum() >= 3 else (region, "close-up: face")
    pts = result.samples.mean(0)[pick]
    lo, hi = np.percentile(pts, 2, axis=0), np.percentile(pts, 98, axis=0)  # a few stray vertices do not widen it
    centre = 0.5 * (lo + hi)
    span = max(float((hi - lo)[:2].max()) * 1.3, CLOSE_UP_MIN_M)
    return render_views(result.samples, faces, ("front",), size=TILE, head_size=span, centre=centre)[:, 0], where

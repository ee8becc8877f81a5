"""How far the fit's projected landmarks lie from the detected ones, in % of the inter-ocular distance.

IOD is the distance between the detected outer eye corners (iBUG 36 and 45, the 300-W
normalisation), in crop pixels; MediaPipe places them even behind sunglasses, so every photo
has one. ``dense``: the embedded MediaPipe points the fit used (seen, not contour, not iris);
``lmk68``: the valid 68 points through FLAME's 68-point embedding; ``jaw``: their contour 0-16 alone.
"""

from __future__ import annotations

import numpy as np
import torch

OUTER_EYE_CORNERS = (36, 45)
JAW_POINTS = 17  # iBUG 0-16, the yaw-dependent contour


@torch.no_grad()
def reprojection_report(layer, v: torch.Tensor, cam, ev_t: dict, valid68: np.ndarray) -> dict:
    """v (1, V, 3) metres, cam the fit's camera, ev_t the fitter's evidence tensors -> dict of
    detected/fitted 2D points (crop px), the weights used, IOD px and the mean errors in % IOD
    (nan when no point of a kind is used)."""
    fit68, _ = cam.project(layer.landmarks68(v, cam.rotation_matrix()))
    det68 = ev_t["lmk68"][0].cpu().numpy()
    fit68 = fit68[0].cpu().numpy()
    iod = float(np.linalg.norm(det68[OUTER_EYE_CORNERS[0]] - det68[OUTER_EYE_CORNERS[1]]))
    jaw = valid68 & (np.arange(68) < JAW_POINTS)
    out = {"iod_px": iod, "lmk68_detected": det68, "lmk68_fitted": fit68, "lmk68_used": valid68.copy(),
           "lmk68_error_iod_pct": _mean_pct(det68, fit68, valid68, iod),
           "jaw_error_iod_pct": _mean_pct(det68, fit68, jaw, iod)}
    if "mp" in ev_t:
        fit_mp, _ = cam.project(layer.landmarks_mediapipe(v))
        det = ev_t["mp"][0].cpu().numpy()
        fit = fit_mp[0].cpu().numpy()
        used = ev_t["wmp"][0].cpu().numpy() > 0
        out |= {"dense_detected": det, "dense_fitted": fit, "dense_used": used,
                "dense_error_iod_pct": _mean_pct(det, fit, used, iod)}
    else:
        out["dense_error_iod_pct"] = float("nan")
    return out


def _mean_pct(det: np.ndarray, fit: np.ndarray, used: np.ndarray, iod: float) -> float:
    if not used.any() or iod <= 0:
        return float("nan")
    return float(100.0 * np.linalg.norm(det[used] - fit[used], axis=1).mean() / iod)

"""Settings of the partial fit (Algorithm 1). One place for each default."""

from __future__ import annotations

from dataclasses import dataclass

from ..defaults import DEFAULT_SEED

# global+local: the paper's (N_S = 10 identity and N_E = 10 expression modes + the local region models);
# global: every mode of the head model, no local models (the paper's FLAME row); full+local: both
FIT_MODES = ("global+local", "global", "full+local")
ALBEDO_BASES = ("regions", "smooth", "regions+smooth")  # fit/albedo.py


def uses_local_model(mode: str) -> bool:
    """Whether a fit mode needs the local region models."""
    return mode.endswith("+local")


@dataclass(frozen=True)
class FitSettings:
    mode: str = "full+local"  # FIT_MODES; the best measured on out-of-span heads and on the photos' landmarks
    fov_deg: float = 20.0  # assumed vertical field of view of the face crop's camera (an unknown photo's)
    estimate_focal: bool = False  # also fit the focal length, log(f / f(fov_deg)) ~ N(0, focal_prior_sd^2)
    focal_prior_sd: float = 0.5  # log-focal sd: crop fields of view of about 8-50 degrees within 2 sd
    w_focal_reg: float = 1e-2
    # iterations per stage
    iters_landmarks: int = 150  # camera, pose, shape, expression from landmarks
    iters_photometric: int = 80  # + light, albedo, local models from pixels
    lr: float = 2e-2
    # loss weights (paper Eqs. 11-12; authors' code: landmarks 5, photometric 16, regularisers 1e-2)
    w_landmarks: float = 5.0
    w_photometric: float = 16.0 * 0.125  # our L_pho is a mean absolute RGB error, theirs a sum over channels/8
    w_shape_reg: float = 1e-2
    w_expr_reg: float = 1e-2
    w_local_reg: float = 5e-2
    w_pose_reg: float = 1e-2
    w_albedo_reg: float = 1e-1
    # ALBEDO_BASES (fit/albedo.py): "regions", one offset per soft region; "smooth", offsets on the mesh's
    # low-frequency Laplacian eigenvectors (explains the seen skin better, but extrapolates dark hair and
    # shadows over the unseen head); "regions+smooth", both, the smooth ones only where the fit sees the
    # face. Measured on the 13 shared photos (README "The photometric term"): photometric error 0.058-0.077
    # against 0.067-0.102 for "regions", lower on every photo, with the unseen head at the regional tone
    albedo_basis: str = "regions+smooth"
    albedo_smooth_modes: int = 32  # K eigenvectors of the "smooth" rows
    photometric_robust_scale: float = 0.0  # 0: L1; c > 0: c log(1 + e / c) per pixel (L1 below c, logarithmic above)
    landmark_contour_weight: float = 0.5  # jaw contour points are less reliable (2D/3D ambiguity)
    use_mediapipe_points: bool = True  # add the head model's embedded MediaPipe points (478 shipped) when detected
    dense_replaces_inner68: bool = True  # with dense points, the 68-point term keeps only the jaw contour (0-16):
    # MediaPipe's inner 68 are dense points already, and FLAME's 68 embedding would pull them ~2 mm elsewhere
    mediapipe_contour: bool = False  # face-oval points slide with the view: the 68-point dynamic contour does the jaw
    mediapipe_iris: bool = False  # iris points follow the gaze, which the fit does not estimate
    visibility_depth_tol: float = 2e-3  # m, for per-vertex visibility
    seed: int = DEFAULT_SEED
    device: str = "cpu"  # the engine sets the device it resolved

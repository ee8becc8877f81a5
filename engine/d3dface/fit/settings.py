"""Settings of the partial fit (Algorithm 1). One place for each default."""

from __future__ import annotations

from dataclasses import dataclass

from ..defaults import DEFAULT_SEED

FIT_MODES = ("global+local", "global")


@dataclass(frozen=True)
class FitSettings:
    mode: str = "global+local"  # or "global": the full head model, no local models (the paper's FLAME row)
    fov_deg: float = 20.0  # assumed vertical field of view of an unknown photo's camera
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
    landmark_contour_weight: float = 0.5  # jaw contour points are less reliable (2D/3D ambiguity)
    use_mediapipe_points: bool = True  # add the 105 FLAME-embedded MediaPipe points when the backend gives them
    visibility_depth_tol: float = 2e-3  # m, for per-vertex visibility
    seed: int = DEFAULT_SEED
    device: str = "cpu"  # the engine sets the device it resolved

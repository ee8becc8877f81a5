"""Algorithm 1: the partial fit of the global+local model to the visible evidence of one photo.

Stages (each an Adam loop over one batch):
0. camera from landmarks: PnP (OpenCV) of the mean head's inner landmarks;
1. landmarks: camera, jaw pose, global identity and expression from the valid landmarks
   (68 points with FLAME's yaw-dependent contour, plus the 105 MediaPipe points when given);
2. photometric: + SH light, albedo and the local region models, on pixels in M_f and not M_o.
Loss: w_lmk L_lmk + w_pho L_pho + L_reg (paper Eqs. 3-6, 11, 12).

The head stays in its canonical pose (FLAME axes); the camera carries the head's rotation
and position. The result's vertices are the canonical partial shape S_m.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..errors import D3DFaceError
from ..head_model import HeadLayer, HeadModel
from ..head_model.lbs import lbs
from ..render import PerspectiveCamera, Renderer, SH_CONSTANTS
from ..render.cameras import focal_from_fov
from .albedo import AlbedoModel, seen_weights, smooth_albedo_basis, vertex_mean_albedo
from .evidence import CropEvidence
from .local_model import LocalModel
from .regions import soft_partition
from .reprojection import reprojection_report
from .settings import FitSettings

INNER = np.arange(17, 68)
MIN_VISIBLE_LANDMARKS = 6  # inner landmarks needed to place the camera (PnP)
CV_TO_OURS = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes (y down, z forward) -> ours (y up, -z forward)

# fallback camera when PnP cannot place the head: a frontal head FALLBACK_HEAD_WIDTH_M wide whose
# image spans FALLBACK_CROP_FILL of the crop's width, i.e. distance = width * f / (fill * size)
FALLBACK_HEAD_WIDTH_M = 0.25  # metres
FALLBACK_CROP_FILL = 0.8  # share of the crop's width (unitless)
# loss scales (unitless): the landmark loss is a mean squared distance in (crop widths)^2, small
# (a 2 px error on 224 px is ~1e-4), scaled towards order 1; the jaw pose's squared norm (radians^2)
# weighs 100 times its setting w_pose_reg
LANDMARK_LOSS_SCALE = 1e3
JAW_POSE_REG_SCALE = 100
LANDMARK_STAGE_PARAMS = ("rotation", "translation", "shape", "expression", "jaw")  # fitted from stage 1 on
# stage 2 learning rates: shape, pose, camera, albedo and local models at half the base lr; light at lr
PHOTOMETRIC_GEOMETRY_LR_FACTOR = 0.5
# albedo gain from the image (per RGB channel, unitless): needs more than GAIN_MIN_PIXELS covered
# face pixels; mean albedo floored at GAIN_ALBEDO_FLOOR; the gain clamped to [GAIN_MIN, GAIN_MAX]
GAIN_MIN_PIXELS = 50
GAIN_ALBEDO_FLOOR = 1e-3
GAIN_MIN, GAIN_MAX = 0.2, 3.0


@dataclass
class FitResult:
    """The partial fit. vertices (V, 3) canonical S_m, metres; occluded (V,) bool M_o^v (projects into
    M_o, back-facing, self-occluded or off the crop); camera in crop pixels; light (9, 3) SH;
    albedo (V, 3); params: fitted coefficients; timings: seconds per stage."""

    vertices: np.ndarray
    occluded: np.ndarray
    camera: dict
    light: np.ndarray
    albedo: np.ndarray
    params: dict
    mode: str
    landmark_error_px: float
    crop_box: np.ndarray | None
    crop_size: int
    timings: dict = field(default_factory=dict)
    iterations: dict = field(default_factory=dict)
    reprojection: dict = field(default_factory=dict)  # fit/reprojection.py: points and errors in % IOD
    unposed_vertices: np.ndarray | None = None  # (V, 3) S_m before the jaw pose (the rest shape the rig poses)
    photometric_error: float = float("nan")  # mean absolute RGB error (0-1) of the fitted render on the seen face pixels

    def camera_object(self, device="cpu") -> PerspectiveCamera:
        c = self.camera
        t = lambda k: torch.as_tensor(np.asarray(c[k], np.float32), device=device)[None]  # noqa: E731
        return PerspectiveCamera(t("focal"), t("principal"), t("rotation"), t("translation"), tuple(c["image_size"]))


class PartialFitter:
    """Fits one crop at a time; holds the model tensors so repeated fits reuse them."""

    def __init__(self, model: HeadModel, local_model: LocalModel | None = None, settings: FitSettings | None = None,
                 texture_path=None):
        self.settings = st = settings or FitSettings()
        self.model = model
        dev = torch.device(st.device)
        self.device = dev
        self.layer = HeadLayer(model).to(dev)
        if st.mode in ("global+local", "full+local"):
            if local_model is None:
                raise ValueError(f"mode {st.mode!r} needs a local model")
            shape_idx, expr_idx = local_model.global_shape, local_model.global_expr
            if st.mode == "full+local":  # every identity and expression mode, then the local models
                shape_idx, expr_idx = np.arange(model.num_shape), np.arange(model.num_expr)
            local = torch.as_tensor(local_model.basis, device=dev)
        elif st.mode == "global":
            shape_idx, expr_idx = np.arange(model.num_shape), np.arange(model.num_expr)
            local = torch.zeros(model.num_vertices, 3, 0, device=dev)
        else:
            raise ValueError(f"unknown fit mode {st.mode!r}")
        self.shape_basis = torch.as_tensor(model.shapedirs[:, :, shape_idx], device=dev)
        self.expr_basis = torch.as_tensor(model.exprdirs[:, :, expr_idx], device=dev)
        self.expr_idx = np.asarray(expr_idx)
        self.shape_idx = np.asarray(shape_idx)
        self.local_basis = local
        # one (K, V*3) matrix for all linear parts: a single GEMM per evaluation
        self.num_coef = (self.shape_basis.shape[2], self.expr_basis.shape[2], local.shape[2])
        self.basis_t = torch.cat([self.shape_basis, self.expr_basis, local], dim=2).reshape(-1, sum(self.num_coef)).T.contiguous()
        self.template_flat = self.layer.v_template.reshape(1, -1)
        regional = lambda: local_model.region_weights if st.mode != "global" else soft_partition(model)  # noqa: E731
        seen_rows = 0
        if st.albedo_basis == "smooth":
            weights = smooth_albedo_basis(model, st.albedo_smooth_modes)
        elif st.albedo_basis == "regions":
            weights = regional()
        elif st.albedo_basis == "regions+smooth":  # the smooth rows only where the face is seen
            seen_rows = st.albedo_smooth_modes
            weights = np.concatenate([regional(), smooth_albedo_basis(model, seen_rows)])
        else:
            raise ValueError(f"unknown albedo basis {st.albedo_basis!r}")
        self.albedo = AlbedoModel(vertex_mean_albedo(model, texture_path), weights, seen_rows).to(dev)
        self.renderer = Renderer.from_head_model(model)
        self.renderer.settings.visibility_depth_tol = st.visibility_depth_tol
        lmk = self.layer.landmarks68_static_embedding(self.layer.v_template[None])[0]
        self._mean_inner = lmk[INNER].detach().cpu().numpy().astype(np.float64)

    # ---- model -----------------------------------------------------------------------------
    def unposed(self, p: dict) -> torch.Tensor:
        """Template plus identity, expression and local parts, before the jaw pose: (B, V, 3)."""
        coef = torch.cat([p["shape"], p["expression"], p["local"]], dim=1)
        return torch.addmm(self.template_flat.expand(coef.shape[0], -1), coef, self.basis_t).view(coef.shape[0], -1, 3)

    def shaped(self, p: dict) -> torch.Tensor:
        """The fitted head, posed (the jaw): (B, V, 3)."""
        v = self.unposed(p)
        if self.layer.has_lbs:
            pose = torch.zeros(v.shape[0], 3 * self.layer.num_joints, device=v.device)
            pose = torch.cat([pose[:, :6], p["jaw"], pose[:, 9:]], dim=1)
            v = lbs(v, pose, self.layer.joint_regressor, self.layer.posedirs, self.layer.skinning_weights, self.layer.parents)[0]
        return v

    def _camera(self, p: dict, size: int) -> PerspectiveCamera:
        """The crop's camera: focal length from ``fov_deg`` times exp(log_focal) (1, 1), which the fit
        estimates only with ``estimate_focal`` (else 0)."""
        f = focal_from_fov(size, self.settings.fov_deg)
        dev = self.device
        focal = (f * torch.exp(p["log_focal"])).expand(-1, 2)
        return PerspectiveCamera(focal, torch.tensor([[(size - 1) / 2.0] * 2], device=dev),
                                 p["rotation"], p["translation"], (size, size))

    def _init_camera(self, ev: CropEvidence) -> tuple[np.ndarray, np.ndarray]:
        """Axis-angle rotation (3,) and translation (3,) metres of the camera, from PnP of the mean
        head's inner landmarks (float64, crop pixels), or a frontal fallback."""
        size = ev.size
        f = focal_from_fov(size, self.settings.fov_deg)
        K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
        ok = ev.valid68[INNER]
        if ok.sum() >= MIN_VISIBLE_LANDMARKS:
            pts3 = self._mean_inner[ok]
            pts2 = ev.landmarks68[INNER][ok].astype(np.float64)
            # OpenCV's camera looks down +z with y down; our head looks down +z towards a camera on +z
            success, rvec, tvec = cv2.solvePnP(pts3, pts2, K, None, flags=cv2.SOLVEPNP_EPNP)
            if success:
                success, rvec, tvec = cv2.solvePnP(pts3, pts2, K, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
            if success and tvec[2, 0] > 0:
                R = CV_TO_OURS @ cv2.Rodrigues(rvec)[0]
                return cv2.Rodrigues(R)[0].ravel(), (CV_TO_OURS @ tvec).ravel()
        # too few landmarks: a frontal head filling the crop
        return np.zeros(3), np.array([0.0, 0.0, -FALLBACK_HEAD_WIDTH_M * f / (FALLBACK_CROP_FILL * size)])

    # ---- losses ----------------------------------------------------------------------------
    def _landmark_loss(self, v, cam, ev_t) -> torch.Tensor:
        """v (1, V, 3) metres -> scalar: weighted mean squared landmark distance in crop widths over
        the 68 points and the dense MediaPipe points together (each point its own weight)."""
        R = cam.rotation_matrix()
        lmk = self.layer.landmarks68(v, R)
        pix, _ = cam.project(lmk)
        d = ((pix - ev_t["lmk68"]) ** 2).sum(-1) / ev_t["size"] ** 2
        w = ev_t["w68"]
        total, weight = (d * w).sum(), w.sum()
        if "mp" in ev_t:
            pm, _ = cam.project(self.layer.landmarks_mediapipe(v))
            dm = ((pm - ev_t["mp"]) ** 2).sum(-1) / ev_t["size"] ** 2
            total, weight = total + (dm * ev_t["wmp"]).sum(), weight + ev_t["wmp"].sum()
        return total / weight.clamp(min=1)

    def _evidence_tensors(self, ev: CropEvidence) -> dict:
        """The evidence as tensors: lmk68 (1, 68, 2) px, w68 (1, 68), image (1, 3, S, S),
        pix_mask (1, 1, S, S) bool (M_f and not M_o); mp (1, N, 2) px and wmp (1, N) for the model's N
        embedded MediaPipe points, when used."""
        st, dev = self.settings, self.device
        w68 = ev.valid68.astype(np.float32)
        w68[:17] *= st.landmark_contour_weight
        out = {"lmk68": torch.as_tensor(ev.landmarks68, device=dev)[None], "w68": torch.as_tensor(w68, device=dev)[None],
               "size": float(ev.size),
               "image": torch.as_tensor(ev.image, device=dev).permute(2, 0, 1)[None],
               "pix_mask": torch.as_tensor(ev.face_mask & ~ev.occlusion_mask, device=dev)[None, None]}
        mp = self._mediapipe_evidence(ev)
        if mp is not None:
            out["mp"] = torch.as_tensor(mp[0], device=dev)[None]
            out["wmp"] = torch.as_tensor(mp[1], device=dev)[None]
            if st.dense_replaces_inner68:
                out["w68"][:, INNER] = 0
        return out

    def _mediapipe_evidence(self, ev: CropEvidence) -> tuple[np.ndarray, np.ndarray] | None:
        """The detected points (N, 2) crop px of the model's N embedded MediaPipe ids and their weights
        (N,) (seen, and not a contour or iris point unless the settings ask), or None when unused."""
        st, layer = self.settings, self.layer
        if not st.use_mediapipe_points or ev.points_mp is None or not hasattr(layer, "lmk_mp_ids"):
            return None
        ids = layer.lmk_mp_ids.cpu().numpy()
        have = ids < len(ev.points_mp)
        pts = np.zeros((len(ids), 2), np.float32)
        pts[have] = ev.points_mp[ids[have]]
        w = np.zeros(len(ids), np.float32)
        w[have] = ev.valid_mp[ids[have]] & np.isfinite(ev.points_mp[ids[have]]).all(1)
        if not st.mediapipe_contour:
            w[layer.lmk_mp_contour.cpu().numpy()] = 0
        if not st.mediapipe_iris:
            w[layer.lmk_mp_iris.cpu().numpy()] = 0
        pts[~np.isfinite(pts).all(1)] = 0
        return (pts, w) if w.any() else None

    # ---- the fit -----------------------------------------------------------------------------
    def fit(self, ev: CropEvidence, progress=None, seed: int | None = None) -> FitResult:
        """Fit one crop. progress(stage, fraction) is called after each iteration; seed: torch's
        seed for this fit (None: ``settings.seed``). ``self.settings`` is not changed."""
        st = self.settings
        _check_visible(ev)
        torch.manual_seed(st.seed if seed is None else seed)
        timings, iters = {}, {}
        t0 = time.perf_counter()
        p = self._initial_params(ev)
        ev_t = self._evidence_tensors(ev)
        timings["camera_init"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        self._fit_landmarks(p, ev, ev_t, progress)
        timings["landmarks"] = time.perf_counter() - t1
        iters["landmarks"] = st.iters_landmarks

        if self.albedo.seen_rows:
            with torch.no_grad():
                seen = ~self._occluded_vertices(self.shaped(p), self._camera(p, ev.size), ev)
            ev_t["albedo_seen"] = torch.as_tensor(seen_weights(self.model.faces, seen), device=self.device)
        self._init_gain(p, ev, ev_t)
        t2 = time.perf_counter()
        self._fit_photometric(p, ev, ev_t, progress)
        timings["photometric"] = time.perf_counter() - t2
        iters["photometric"] = st.iters_photometric

        t3 = time.perf_counter()
        with torch.no_grad():
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            occluded = self._occluded_vertices(v, cam, ev)
            lmk_err = self._landmark_error_px(v, cam, ev, ev_t)
            reproj = reprojection_report(self.layer, v, cam, ev_t, ev.valid68)
            albedo = self._albedo(p, ev_t)[0].cpu().numpy()
            pho_err = self._photometric_error(p, v, cam, ev_t)
        timings["visibility"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
        result = self._result(p, ev, v, cam, occluded, albedo, lmk_err, timings, iters)
        result.reprojection = reproj
        result.photometric_error = pho_err
        if "albedo_seen" in ev_t:  # (V,) the weight of the albedo's seen-only rows
            result.params["albedo_seen"] = ev_t["albedo_seen"].cpu().numpy()
        return result

    def _albedo(self, p: dict, ev_t: dict) -> torch.Tensor:
        """(1, V, 3) the albedo of p; its seen-only rows weighted by ev_t["albedo_seen"] (V,), the
        vertices the landmark stage's fit sees, when the basis has such rows."""
        return self.albedo(p["gain"], p["offsets"], ev_t.get("albedo_seen"))

    def _pixel_errors(self, p: dict, v: torch.Tensor, cam: PerspectiveCamera, ev_t: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The render of p (vertices v (1, V, 3)) against the crop: per-pixel mean absolute RGB error
        (1, 1, S, S) and the seen pixels (1, 1, S, S) bool, those it covers in M_f and not M_o."""
        res = self.renderer.render(v, cam, light=p["light"], vertex_colors=self._albedo(p, ev_t))
        seen = (res.mask.detach() > 0) & ev_t["pix_mask"]
        return (res.image - ev_t["image"]).abs().sum(1, keepdim=True) / 3, seen

    def _photometric_error(self, p: dict, v: torch.Tensor, cam: PerspectiveCamera, ev_t: dict) -> float:
        """Mean absolute RGB error (0-1) of the render of p over the seen pixels; nan when none is seen."""
        err, seen = self._pixel_errors(p, v, cam, ev_t)
        return float(err[seen].mean()) if bool(seen.any()) else float("nan")

    def _initial_params(self, ev: CropEvidence) -> dict:
        """The parameters before the fit (batch 1, float32): camera rotation (1, 3) axis-angle and
        translation (1, 3) metres from ``_init_camera``; zero shape, expression, jaw (1, 3) and local
        coefficients; the albedo model's neutral gain (1, 3) and offsets; ambient SH light (1, 9, 3)."""
        dev = self.device
        rot0, trans0 = self._init_camera(ev)
        p = {
            "rotation": torch.tensor(rot0[None], dtype=torch.float32, device=dev),
            "translation": torch.tensor(trans0[None], dtype=torch.float32, device=dev),
            "shape": torch.zeros(1, self.shape_basis.shape[2], device=dev),
            "expression": torch.zeros(1, self.expr_basis.shape[2], device=dev),
            "jaw": torch.zeros(1, 3, device=dev),
            "log_focal": torch.zeros(1, 1, device=dev),
            "local": torch.zeros(1, self.local_basis.shape[2], device=dev),
            **self.albedo.init_params(1),
            "light": torch.zeros(1, 9, 3, device=dev),
        }
        p["light"][:, 0] = 1.0 / SH_CONSTANTS[0]  # unit ambient irradiance
        return p

    def _regulariser(self, p: dict) -> torch.Tensor:
        """L_reg (scalar): weighted squared norms of shape, expression, jaw pose and local coefficients."""
        st = self.settings
        r = st.w_shape_reg * (p["shape"] ** 2).sum() + st.w_expr_reg * (p["expression"] ** 2).sum()
        r = r + st.w_pose_reg * (p["jaw"] ** 2).sum() * JAW_POSE_REG_SCALE
        if st.estimate_focal:
            r = r + st.w_focal_reg * ((p["log_focal"] / st.focal_prior_sd) ** 2).sum()
        if p["local"].shape[1]:
            r = r + st.w_local_reg * (p["local"] ** 2).sum()
        return r

    def _landmark_stage_names(self) -> list[str]:
        """The parameters fitted from stage 1 on: LANDMARK_STAGE_PARAMS, plus log_focal when estimated."""
        return list(LANDMARK_STAGE_PARAMS) + (["log_focal"] if self.settings.estimate_focal else [])

    def _fit_landmarks(self, p: dict, ev: CropEvidence, ev_t: dict, progress) -> None:
        """Stage 1, in place on p: camera, shape, expression and jaw from the landmarks (Adam, lr)."""
        st = self.settings
        names = self._landmark_stage_names()
        for k in names:
            p[k].requires_grad_(True)
        opt = torch.optim.Adam([p[k] for k in names], lr=st.lr)
        total = st.iters_landmarks + st.iters_photometric
        for it in range(st.iters_landmarks):
            opt.zero_grad()
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            loss = st.w_landmarks * self._landmark_loss(v, cam, ev_t) * LANDMARK_LOSS_SCALE + self._regulariser(p)
            loss.backward()
            if it < st.iters_landmarks // 4:  # camera and pose settle before the shape (and focal length) move
                for k in ("shape", "expression", "jaw", "log_focal"):
                    p[k].grad = None
            opt.step()
            with torch.no_grad():
                p["expression"].clamp_(0.0, 1.0)
            if progress:
                progress("fit: landmarks", (it + 1) / total)

    @torch.no_grad()
    def _init_gain(self, p: dict, ev: CropEvidence, ev_t: dict) -> None:
        """In place on p: gain (1, 3) from the image, the mean colour of the visible face over the
        mean albedo there (unchanged when too few pixels are covered)."""
        v = self.shaped(p)
        cam = self._camera(p, ev.size)
        res = self.renderer.render(v, cam, vertex_colors=self._albedo(p, ev_t))
        m = (res.mask > 0) & ev_t["pix_mask"]
        if m.sum() > GAIN_MIN_PIXELS:
            img_mean = (ev_t["image"] * m).sum((0, 2, 3)) / m.sum()
            alb_mean = (res.image * m).sum((0, 2, 3)) / m.sum()
            p["gain"] = (img_mean / alb_mean.clamp(min=GAIN_ALBEDO_FLOOR)).clamp(GAIN_MIN, GAIN_MAX)[None]

    def _fit_photometric(self, p: dict, ev: CropEvidence, ev_t: dict, progress) -> None:
        """Stage 2, in place on p: + light, albedo and local models from the pixels (Adam)."""
        st = self.settings
        names = self._landmark_stage_names() + ["gain", "offsets", "light"] + (["local"] if p["local"].shape[1] else [])
        for k in names:
            p[k] = p[k].detach().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [p[k] for k in names if k not in ("light",)],
                                 "lr": st.lr * PHOTOMETRIC_GEOMETRY_LR_FACTOR},
                                {"params": [p["light"]], "lr": st.lr}])
        total = st.iters_landmarks + st.iters_photometric
        for it in range(st.iters_photometric):
            opt.zero_grad()
            loss = self._photometric_stage_loss(p, ev, ev_t)
            loss.backward()
            opt.step()
            with torch.no_grad():
                p["expression"].clamp_(0.0, 1.0)
            if progress:
                progress("fit: photometric", (st.iters_landmarks + it + 1) / total)

    def _photometric_stage_loss(self, p: dict, ev: CropEvidence, ev_t: dict) -> torch.Tensor:
        """Stage 2's loss (scalar): w_pho L_pho (mean absolute RGB error e over M_f and not M_o and the
        rendered face; c log(1 + e / c) per pixel with a robust scale c) + w_lmk L_lmk + L_reg + the albedo regulariser."""
        st = self.settings
        v = self.shaped(p)
        cam = self._camera(p, ev.size)
        err, seen = self._pixel_errors(p, v, cam, ev_t)
        mf = seen.float()
        if st.photometric_robust_scale > 0:
            c = st.photometric_robust_scale
            err = c * torch.log1p(err / c)
        pho = (err * mf).sum() / mf.sum().clamp(min=1)
        alb_reg = st.w_albedo_reg * ((p["offsets"] ** 2).sum() + ((p["gain"] - p["gain"].detach().mean()) ** 2).sum())
        return (st.w_photometric * pho + st.w_landmarks * self._landmark_loss(v, cam, ev_t) * LANDMARK_LOSS_SCALE
                + self._regulariser(p) + alb_reg)

    def _occluded_vertices(self, v: torch.Tensor, cam: PerspectiveCamera, ev: CropEvidence) -> np.ndarray:
        """v (1, V, 3) metres -> (V,) bool M_o^v: back-facing, self-occluded, off the crop or in M_o."""
        frags = self.renderer.rasterize(v, cam)
        visible = self.renderer.vertex_visibility(v, cam, frags)[0].cpu().numpy()
        pix, _ = cam.project(v)
        xy = pix[0].round().long().cpu().numpy()
        S = ev.size
        inside = (xy >= 0).all(1) & (xy < S).all(1)
        in_mask = np.zeros(len(xy), bool)
        in_mask[inside] = ev.occlusion_mask[xy[inside, 1], xy[inside, 0]]
        return ~visible | ~inside | in_mask

    def _landmark_error_px(self, v: torch.Tensor, cam: PerspectiveCamera, ev: CropEvidence, ev_t: dict) -> float:
        """Mean distance in crop pixels of the valid 68 landmarks (nan when none is valid)."""
        lmk_pix, _ = cam.project(self.layer.landmarks68(v, cam.rotation_matrix()))
        err = (lmk_pix[0] - ev_t["lmk68"][0]).norm(dim=-1).cpu().numpy()
        return float(err[ev.valid68].mean()) if ev.valid68.any() else float("nan")

    def _result(self, p: dict, ev: CropEvidence, v: torch.Tensor, cam: PerspectiveCamera, occluded: np.ndarray,
                albedo: np.ndarray, lmk_err: float, timings: dict, iters: dict) -> FitResult:
        """The FitResult of the fitted parameters p and final vertices v (1, V, 3)."""
        S = ev.size
        c = cam
        return FitResult(
            vertices=v[0].cpu().numpy().astype(np.float32),
            occluded=occluded,
            camera={"focal": c.focal[0].tolist(), "principal": c.principal[0].tolist(), "rotation": c.rotation[0].tolist(),
                    "translation": c.translation[0].tolist(), "image_size": [S, S]},
            light=p["light"][0].detach().cpu().numpy(),
            albedo=albedo,
            params={k: p[k].detach().cpu().numpy()[0] for k in ("shape", "expression", "jaw", "local", "gain", "offsets")}
            | {"shape_index": self.shape_idx, "expression_index": self.expr_idx},
            unposed_vertices=self.unposed(p)[0].detach().cpu().numpy().astype(np.float32),
            mode=self.settings.mode,
            landmark_error_px=lmk_err,
            crop_box=None if ev.crop is None else np.asarray(ev.crop.box, np.float64),
            crop_size=S,
            timings=timings,
            iterations=iters,
        )


def _check_visible(ev: CropEvidence) -> None:
    """Raise D3DFaceError when fewer than MIN_VISIBLE_LANDMARKS inner landmarks are valid."""
    if int(ev.valid68[INNER].sum()) < MIN_VISIBLE_LANDMARKS:
        raise D3DFaceError(
            f"only {int(ev.valid68[INNER].sum())} of the 51 inner face landmarks are visible (at least "
            f"{MIN_VISIBLE_LANDMARKS} needed): the occlusion mask hides too much of the face")

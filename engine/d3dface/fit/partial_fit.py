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
from .albedo import AlbedoModel, vertex_mean_albedo
from .evidence import CropEvidence
from .local_model import LocalModel
from .regions import soft_partition
from .settings import FitSettings

INNER = np.arange(17, 68)
MIN_VISIBLE_LANDMARKS = 6  # inner landmarks needed to place the camera (PnP)
CV_TO_OURS = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes (y down, z forward) -> ours (y up, -z forward)


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
        if st.mode == "global+local":
            if local_model is None:
                raise ValueError("mode 'global+local' needs a local model")
            shape_idx, expr_idx = local_model.global_shape, local_model.global_expr
            local = torch.as_tensor(local_model.basis, device=dev)
            weights = local_model.region_weights
        elif st.mode == "global":
            shape_idx, expr_idx = np.arange(model.num_shape), np.arange(model.num_expr)
            local = torch.zeros(model.num_vertices, 3, 0, device=dev)
            weights = soft_partition(model)
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
        self.albedo = AlbedoModel(vertex_mean_albedo(model, texture_path), weights).to(dev)
        self.renderer = Renderer.from_head_model(model)
        self.renderer.settings.visibility_depth_tol = st.visibility_depth_tol
        lmk = self.layer.landmarks68_static_embedding(self.layer.v_template[None])[0]
        self._mean_inner = lmk[INNER].detach().cpu().numpy().astype(np.float64)

    # ---- model -----------------------------------------------------------------------------
    def shaped(self, p: dict) -> torch.Tensor:
        coef = torch.cat([p["shape"], p["expression"], p["local"]], dim=1)
        v = torch.addmm(self.template_flat.expand(coef.shape[0], -1), coef, self.basis_t).view(coef.shape[0], -1, 3)
        if self.layer.has_lbs:
            pose = torch.zeros(v.shape[0], 3 * self.layer.num_joints, device=v.device)
            pose = torch.cat([pose[:, :6], p["jaw"], pose[:, 9:]], dim=1)
            v = lbs(v, pose, self.layer.joint_regressor, self.layer.posedirs, self.layer.skinning_weights, self.layer.parents)[0]
        return v

    def _camera(self, p: dict, size: int) -> PerspectiveCamera:
        f = focal_from_fov(size, self.settings.fov_deg)
        dev = self.device
        return PerspectiveCamera(torch.tensor([[f, f]], device=dev), torch.tensor([[(size - 1) / 2.0] * 2], device=dev),
                                 p["rotation"], p["translation"], (size, size))

    def _init_camera(self, ev: CropEvidence) -> tuple[np.ndarray, np.ndarray]:
        size = ev.size
        f = focal_from_fov(size, self.settings.fov_deg)
        K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
        ok = ev.valid68[INNER]
        if ok.sum() >= 6:
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
        return np.zeros(3), np.array([0.0, 0.0, -0.25 * f / (0.8 * size)])

    # ---- losses ----------------------------------------------------------------------------
    def _landmark_loss(self, v, cam, ev_t) -> torch.Tensor:
        R = cam.rotation_matrix()
        lmk = self.layer.landmarks68(v, R)
        pix, _ = cam.project(lmk)
        d = ((pix - ev_t["lmk68"]) ** 2).sum(-1) / ev_t["size"] ** 2
        w = ev_t["w68"]
        loss = (d * w).sum() / w.sum().clamp(min=1)
        if "mp" in ev_t:
            pm, _ = cam.project(self.layer.landmarks_mediapipe(v))
            dm = ((pm - ev_t["mp"]) ** 2).sum(-1) / ev_t["size"] ** 2
            loss = 0.5 * loss + 0.5 * (dm * ev_t["wmp"]).sum() / ev_t["wmp"].sum().clamp(min=1)
        return loss

    def _evidence_tensors(self, ev: CropEvidence) -> dict:
        st, dev = self.settings, self.device
        w68 = ev.valid68.astype(np.float32)
        w68[:17] *= st.landmark_contour_weight
        out = {"lmk68": torch.as_tensor(ev.landmarks68, device=dev)[None], "w68": torch.as_tensor(w68, device=dev)[None],
               "size": float(ev.size),
               "image": torch.as_tensor(ev.image, device=dev).permute(2, 0, 1)[None],
               "pix_mask": torch.as_tensor(ev.face_mask & ~ev.occlusion_mask, device=dev)[None, None]}
        if st.use_mediapipe_points and ev.points_mp105 is not None and ev.valid_mp105 is not None and ev.valid_mp105.any():
            out["mp"] = torch.as_tensor(ev.points_mp105, device=dev)[None]
            out["wmp"] = torch.as_tensor(ev.valid_mp105.astype(np.float32), device=dev)[None]
        return out

    # ---- the fit -----------------------------------------------------------------------------
    def fit(self, ev: CropEvidence, progress=None) -> FitResult:
        st, dev = self.settings, self.device
        if int(ev.valid68[INNER].sum()) < MIN_VISIBLE_LANDMARKS:
            raise D3DFaceError(
                f"only {int(ev.valid68[INNER].sum())} of the 51 inner face landmarks are visible (at least "
                f"{MIN_VISIBLE_LANDMARKS} needed): the occlusion mask hides too much of the face")
        torch.manual_seed(st.seed)
        timings, iters = {}, {}
        t0 = time.perf_counter()
        rot0, trans0 = self._init_camera(ev)
        p = {
            "rotation": torch.tensor(rot0[None], dtype=torch.float32, device=dev),
            "translation": torch.tensor(trans0[None], dtype=torch.float32, device=dev),
            "shape": torch.zeros(1, self.shape_basis.shape[2], device=dev),
            "expression": torch.zeros(1, self.expr_basis.shape[2], device=dev),
            "jaw": torch.zeros(1, 3, device=dev),
            "local": torch.zeros(1, self.local_basis.shape[2], device=dev),
            **self.albedo.init_params(1),
            "light": torch.zeros(1, 9, 3, device=dev),
        }
        p["light"][:, 0] = 1.0 / SH_CONSTANTS[0]
        ev_t = self._evidence_tensors(ev)
        timings["camera_init"] = time.perf_counter() - t0

        def reg(p):
            r = st.w_shape_reg * (p["shape"] ** 2).sum() + st.w_expr_reg * (p["expression"] ** 2).sum()
            r = r + st.w_pose_reg * (p["jaw"] ** 2).sum() * 100
            if p["local"].shape[1]:
                r = r + st.w_local_reg * (p["local"] ** 2).sum()
            return r

        # stage 1: landmarks
        t1 = time.perf_counter()
        names = ["rotation", "translation", "shape", "expression", "jaw"]
        for k in names:
            p[k].requires_grad_(True)
        opt = torch.optim.Adam([p[k] for k in names], lr=st.lr)
        for it in range(st.iters_landmarks):
            if it == 0:  # camera first: a few steps with the shape frozen
                pass
            opt.zero_grad()
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            loss = st.w_landmarks * self._landmark_loss(v, cam, ev_t) * 1e3 + reg(p)
            loss.backward()
            if it < st.iters_landmarks // 4:  # camera and pose settle before the shape moves
                for k in ("shape", "expression", "jaw"):
                    p[k].grad = None
            opt.step()
            with torch.no_grad():
                p["expression"].clamp_(0.0, 1.0)
            if progress:
                progress("fit: landmarks", (it + 1) / (st.iters_landmarks + st.iters_photometric))
        timings["landmarks"] = time.perf_counter() - t1
        iters["landmarks"] = st.iters_landmarks

        # gain from the image: mean colour of the visible face over the mean albedo there
        with torch.no_grad():
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            res = self.renderer.render(v, cam, vertex_colors=self.albedo(p["gain"], p["offsets"]))
            m = (res.mask > 0) & ev_t["pix_mask"]
            if m.sum() > 50:
                img_mean = (ev_t["image"] * m).sum((0, 2, 3)) / m.sum()
                alb_mean = (res.image * m).sum((0, 2, 3)) / m.sum()
                p["gain"] = (img_mean / alb_mean.clamp(min=1e-3)).clamp(0.2, 3.0)[None]

        # stage 2: photometric (+ local models)
        t2 = time.perf_counter()
        names2 = names + ["gain", "offsets", "light"] + (["local"] if p["local"].shape[1] else [])
        for k in names2:
            p[k] = p[k].detach().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [p[k] for k in names2 if k not in ("light",)], "lr": st.lr * 0.5},
                                {"params": [p["light"]], "lr": st.lr}])
        for it in range(st.iters_photometric):
            opt.zero_grad()
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            res = self.renderer.render(v, cam, light=p["light"], vertex_colors=self.albedo(p["gain"], p["offsets"]))
            m = (res.mask.detach() > 0) & ev_t["pix_mask"]
            mf = m.float()
            pho = ((res.image - ev_t["image"]).abs().sum(1, keepdim=True) / 3 * mf).sum() / mf.sum().clamp(min=1)
            alb_reg = st.w_albedo_reg * ((p["offsets"] ** 2).sum() + ((p["gain"] - p["gain"].detach().mean()) ** 2).sum())
            loss = st.w_photometric * pho + st.w_landmarks * self._landmark_loss(v, cam, ev_t) * 1e3 + reg(p) + alb_reg
            loss.backward()
            opt.step()
            with torch.no_grad():
                p["expression"].clamp_(0.0, 1.0)
            if progress:
                progress("fit: photometric", (st.iters_landmarks + it + 1) / (st.iters_landmarks + st.iters_photometric))
        timings["photometric"] = time.perf_counter() - t2
        iters["photometric"] = st.iters_photometric

        # result: canonical S_m, visibility, camera
        t3 = time.perf_counter()
        with torch.no_grad():
            v = self.shaped(p)
            cam = self._camera(p, ev.size)
            frags = self.renderer.rasterize(v, cam)
            visible = self.renderer.vertex_visibility(v, cam, frags)[0].cpu().numpy()
            pix, _ = cam.project(v)
            xy = pix[0].round().long().cpu().numpy()
            S = ev.size
            inside = (xy >= 0).all(1) & (xy < S).all(1)
            in_mask = np.zeros(len(xy), bool)
            in_mask[inside] = ev.occlusion_mask[xy[inside, 1], xy[inside, 0]]
            occluded = ~visible | ~inside | in_mask
            lmk_pix, _ = cam.project(self.layer.landmarks68(v, cam.rotation_matrix()))
            err = (lmk_pix[0] - ev_t["lmk68"][0]).norm(dim=-1).cpu().numpy()
            lmk_err = float(err[ev.valid68].mean()) if ev.valid68.any() else float("nan")
            albedo = self.albedo(p["gain"], p["offsets"])[0].cpu().numpy()
        timings["visibility"] = time.perf_counter() - t3
        timings["total"] = time.perf_counter() - t0
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
            mode=st.mode,
            landmark_error_px=lmk_err,
            crop_box=None if ev.crop is None else np.asarray(ev.crop.box, np.float64),
            crop_size=S,
            timings=timings,
            iterations=iters,
        )

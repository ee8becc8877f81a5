"""Synthetic occluded test faces: random identity, expression, head pose and lighting of a head
model, rendered over real background photos, with one of the paper's occluder types.

Ground truth is the generating mesh (canonical pose). The landmarks the fit receives are either
"projected": the model's own embedded landmarks projected, plus 1 px noise, flagged invalid inside
the occluder (an ideal detector that agrees with the embedding); or "detected": MediaPipe run
on the occluded render through the product's input path (``prepare_face_inputs`` with the
occluder's mask), so the fit sees a real detector's errors and its crop. M_f is the hull of
those landmarks, as for a photo.
Train and test faces never share a seed: tests use seeds from ``TEST_SEED_BASE`` upwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..fit.albedo import vertex_mean_albedo
from ..fit.evidence import CropEvidence, evidence_from_inputs
from ..head_model import HeadLayer, HeadModel
from ..head_model.lbs import axis_angle_to_matrix
from ..head_model.landmark_embedding import NUM_MEDIAPIPE_POINTS
from ..inputs.landmarks_base import Landmarks
from ..inputs.masks import face_mask
from ..inputs.occluders import apply_occluder, hidden_vertices, load_textures
from ..inputs.prepare import prepare_face_inputs
from .out_of_span import OutOfSpanOffsets
from ..render import SH_CONSTANTS, PerspectiveCamera, Renderer
from ..render.cameras import focal_from_fov

TEST_SEED_BASE = 1_000_000
OCCLUDER_TYPES = ("glasses", "face_mask", "object")
HEAD_KINDS = ("model", "out-of-span")
LANDMARK_SOURCES = ("projected", "detected")
DEFAULT_LANDMARKS = "projected"  # Table 2 and the tests; Table 1 (fit_eval.TABLE1_LANDMARKS) uses "detected"


def _by_mediapipe_id(points: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(478, 2) points by MediaPipe id from embedded points (N, 2) with ids (N,); NaN where absent."""
    out = np.full((NUM_MEDIAPIPE_POINTS, 2), np.nan)
    out[ids] = points
    return out


@dataclass
class SyntheticFace:
    evidence: CropEvidence  # what the fit sees
    gt_vertices: np.ndarray  # (V, 3) canonical, metres
    gt_hidden: np.ndarray  # (V,) bool: hidden by the occluder, back-facing, self-occluded or off-image
    occluder: str
    seed: int
    shape: np.ndarray
    expression: np.ndarray
    fov_deg: float = 20.0  # the camera's vertical field of view over the crop


class SyntheticFaceMaker:
    def __init__(self, model: HeadModel, texture_path=None, background_dir=None, size: int = 224, fov_deg: float = 20.0,
                 heads: str = "model", landmarks: str = DEFAULT_LANDMARKS, fov_range: tuple | None = None):
        """heads: "model" (identity and expression drawn from the model) or "out-of-span" (plus
        region mixing and local detail, evaluation/out_of_span.py); landmarks: LANDMARK_SOURCES
        (module docstring); fov_range: (min, max) degrees to draw each face's field of view from
        (log-uniform; None: every face at fov_deg, the fit's assumption)."""
        if landmarks not in LANDMARK_SOURCES:
            raise ValueError(f"landmarks must be one of {LANDMARK_SOURCES}, not {landmarks!r}")
        self.landmarks = landmarks
        if heads not in HEAD_KINDS:
            raise ValueError(f"unknown heads {heads!r}; expected one of {HEAD_KINDS}")
        self.model, self.size, self.fov, self.fov_range = model, size, fov_deg, fov_range
        self.out_of_span = OutOfSpanOffsets(model) if heads == "out-of-span" else None
        self.layer = HeadLayer(model)
        self.renderer = Renderer.from_head_model(model)
        self.albedo = torch.as_tensor(vertex_mean_albedo(model, texture_path))
        self.backgrounds = load_textures(background_dir) if background_dir is not None else load_textures()

    def _background(self, rng) -> np.ndarray:
        S = self.size
        if not self.backgrounds:
            return np.full((S, S, 3), rng.integers(40, 200), np.uint8)
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        h, w = bg.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        return cv2.resize(bg[y:y + side, x:x + side], (S, S), interpolation=cv2.INTER_AREA)

    @torch.no_grad()
    def make(self, seed: int, occluder: str) -> SyntheticFace:
        rng = np.random.default_rng(seed)
        m, S = self.model, self.size
        beta = rng.standard_normal(m.num_shape)
        psi = rng.uniform(0, 1, m.num_expr) * (rng.uniform(0, 1, m.num_expr) < 0.1)
        v = self.layer(torch.tensor(beta, dtype=torch.float32)[None], torch.tensor(psi, dtype=torch.float32)[None]).vertices
        if self.out_of_span is not None:
            v = v + torch.as_tensor(self.out_of_span(rng, beta))[None]
        yaw, pitch, roll = np.radians([rng.uniform(-30, 30), rng.uniform(-15, 15), rng.uniform(-8, 8)])
        R = (axis_angle_to_matrix(torch.tensor([[0.0, yaw, 0.0]])) @ axis_angle_to_matrix(torch.tensor([[pitch, 0.0, 0.0]]))
             @ axis_angle_to_matrix(torch.tensor([[0.0, 0.0, roll]])))[0]
        rotvec = torch.tensor(cv2.Rodrigues(R.numpy().astype(np.float64))[0].ravel(), dtype=torch.float32)
        fov = self.fov if self.fov_range is None else float(np.exp(rng.uniform(*np.log(self.fov_range))))
        f = focal_from_fov(S, fov)
        face_width = rng.uniform(0.5, 0.6) * S  # px across the cheeks, as in a detector's crop
        dist = 0.15 * f / face_width
        t = torch.tensor([rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01) + 0.01, -dist], dtype=torch.float32)
        cam = PerspectiveCamera(torch.tensor([[f, f]]), torch.tensor([[(S - 1) / 2.0] * 2]), rotvec[None], t[None], (S, S))

        light = torch.zeros(1, 9, 3)
        light[0, 0] = torch.tensor(rng.uniform(0.6, 1.0) * (1 + rng.uniform(-0.08, 0.08, 3)), dtype=torch.float32) / SH_CONSTANTS[0]
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.5
        d /= np.linalg.norm(d)
        strength = rng.uniform(0.2, 0.6)
        for k in range(3):
            light[0, 1 + k] = float(d[k] * strength) / SH_CONSTANTS[1 + k]
        gain = torch.tensor(rng.uniform(0.65, 1.15) * (1 + rng.uniform(-0.08, 0.08, 3)), dtype=torch.float32)
        colours = (self.albedo * gain).clamp(0, 1)[None]

        bg = torch.tensor(self._background(rng), dtype=torch.float32).permute(2, 0, 1)[None] / 255
        res = self.renderer.render(v, cam, light=light, vertex_colors=colours, background=bg)
        img = (res.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)

        lmk68, _ = cam.project(self.layer.landmarks68(v, cam.rotation_matrix()))
        mp, _ = cam.project(self.layer.landmarks_mediapipe(v))
        noise = lambda a: a[0].numpy() + rng.normal(0, 1.0, a[0].shape)  # noqa: E731
        p68, pmp = noise(lmk68), noise(mp)
        # the occluder module works in pixel-corner coordinates (centre of pixel j at j + 0.5)
        occ = apply_occluder(img, p68 + 0.5, occluder, seed)
        hidden68 = hidden_vertices(p68 + 0.5, occ.mask)
        mp_ids = self.layer.lmk_mp_ids.numpy()
        seen_mp = np.zeros(NUM_MEDIAPIPE_POINTS, bool)
        seen_mp[mp_ids] = ~hidden_vertices(pmp + 0.5, occ.mask)
        pmp = _by_mediapipe_id(pmp, mp_ids)
        lm = Landmarks(points68=(p68 + 0.5).astype(np.float32), confidence68=np.ones(68, np.float32), valid68=~hidden68,
                       face_box=np.r_[p68.min(0), p68.max(0)].astype(np.float32), face_count=1, backend="synthetic",
                       image_size=(S, S))
        pix, _ = cam.project(v)
        visible = self.renderer.vertex_visibility(v, cam)[0].numpy()
        gt_hidden = hidden_vertices(pix[0].numpy() + 0.5, occ.mask, visible)
        if self.landmarks == "detected":
            ev = evidence_from_inputs(prepare_face_inputs(occ.image, mask=occ.mask, backend="mediapipe"))
        else:
            ev = CropEvidence(image=occ.image.astype(np.float32) / 255, landmarks68=p68.astype(np.float32),
                              valid68=~hidden68, face_mask=face_mask(lm, (S, S)), occlusion_mask=occ.mask,
                              points_mp=pmp.astype(np.float32), valid_mp=seen_mp)
        return SyntheticFace(ev, v[0].numpy(), gt_hidden, occluder, seed, beta, psi, fov)

"""L_pho of Algorithm 2 (paper section 4.3): each completion rendered with the fit's camera, light and
albedo, compared with the photo on the face pixels the photo shows.

The seen pixels are those in M_f and not M_o that the fit's own render covers (the authors'
"visible skin"); a sample's error is the mean absolute RGB difference (0-1) over the seen pixels
its render also covers, and the term is the mean over samples. The render may run at a fraction
of the crop's resolution (``scale``): the term's cost is one batched render and its backward per
iteration, which on a CPU is most of Algorithm 2's time at full resolution.

Only samples that move where seen feel it (the Mesh-VAE's): the "gaussian" completion is
conditioned to keep the fit there, so its render of the seen face is the fit's.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..render.cameras import PerspectiveCamera
from ..render.renderer import Renderer


def scaled_camera(camera: PerspectiveCamera, scale: float) -> PerspectiveCamera:
    """The same camera for an image ``scale`` times the size (pixel centres at integers, so the
    principal point maps as (c + 0.5) s - 0.5)."""
    H, W = camera.image_size
    size = (max(1, round(H * scale)), max(1, round(W * scale)))
    s = torch.tensor([size[1] / W, size[0] / H], dtype=camera.focal.dtype, device=camera.device)
    principal = (camera.principal + 0.5) * s - 0.5
    return PerspectiveCamera(camera.focal * s, principal, camera.rotation, camera.translation, size)


class SamplePhotometricTerm:
    """term(x) -> scalar: x (M, V, 3) metres in the fit's frame.

    renderer: the head model's; camera: the fit's (crop pixels); light (9, 3) SH; albedo (V, 3)
    RGB 0-1; image (S, S, 3) float 0-1, the crop; seen (S, S) bool, the photo's face pixels not
    in M_o; fit_vertices (V, 3); scale: render resolution relative to the crop (0 < scale <= 1)."""

    def __init__(self, renderer: Renderer, camera: PerspectiveCamera, light, albedo, image: np.ndarray,
                 seen: np.ndarray, fit_vertices, scale: float = 0.5):
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], not {scale}")
        dev = camera.device
        self.renderer = renderer
        self.camera = scaled_camera(camera, scale)
        H, W = self.camera.image_size
        img, keep = np.asarray(image, np.float32), np.asarray(seen, bool)
        if scale < 1:  # the photo area-averaged to the render's pixels; a pixel counts when mostly seen
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)
            keep = cv2.resize(keep.astype(np.float32), (W, H), interpolation=cv2.INTER_AREA) > 0.5
        self.image = torch.as_tensor(img, device=dev).permute(2, 0, 1)[None].contiguous()  # (1, 3, H, W)
        self.light = torch.as_tensor(np.asarray(light, np.float32), device=dev)[None]
        self.albedo = torch.as_tensor(np.asarray(albedo, np.float32), device=dev)[None]
        with torch.no_grad():
            fit = torch.as_tensor(np.asarray(fit_vertices, np.float32), device=dev)[None]
            covered = renderer.render(fit, self.camera, light=self.light, vertex_colors=self.albedo).mask[0, 0] > 0
        self.seen = torch.as_tensor(keep, device=dev) & covered  # (H, W) bool

    @property
    def num_pixels(self) -> int:
        return int(self.seen.sum())

    def per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """(M,) mean absolute RGB error of each sample's render over the seen pixels it covers."""
        res = self.renderer.render(x, self.camera, light=self.light, vertex_colors=self.albedo)
        m = ((res.mask[:, 0] > 0) & self.seen[None]).float()  # (M, H, W)
        err = (res.image - self.image).abs().mean(1)  # (M, H, W)
        return (err * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_sample(x).mean()


def photometric_term_for_fit(fit, evidence, renderer: Renderer, scale: float = 0.5, device="cpu") -> SamplePhotometricTerm:
    """L_pho for completions of ``fit`` (a FitResult) of the crop ``evidence`` (a CropEvidence)."""
    return SamplePhotometricTerm(renderer, fit.camera_object(device), fit.light, fit.albedo, evidence.image,
                                 evidence.face_mask & ~evidence.occlusion_mask, fit.vertices, scale)

"""A batched, differentiable perspective pinhole camera.

Conventions
-----------
* World (FLAME): y up, metres; the face looks down +z.
* Camera frame (OpenGL-like): x right, y up, the camera looks toward -z. A world point X
  maps to ``X_cam = R @ X + t`` with ``R`` from the axis-angle ``rotation``. With
  ``rotation = 0`` and ``translation = (0, 0, -d)`` the camera sits at ``(0, 0, d)`` on the
  world's +z axis and looks at the face.
* Depth is the distance along the viewing axis, ``depth = -z_cam`` (> 0 in front).
* Image: pixel (0, 0) is top-left, x (columns) to the right, y (rows) down. Pixel
  coordinates are continuous with the *centre* of pixel (row r, column c) at (c, r)
  (the OpenCV convention); the image covers [-0.5, W - 0.5] x [-0.5, H - 0.5].
* ``u = cx + fx * x_cam / depth``, ``v = cy - fy * y_cam / depth``. This equals OpenCV's
  ``projectPoints`` with rotation ``diag(1, -1, -1) @ R`` and translation ``diag(1, -1, -1) @ t``.

All tensors are batched over B; focal lengths and principal points are in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..head_model.lbs import axis_angle_to_matrix


@dataclass
class PerspectiveCamera:
    """Pinhole camera; every tensor field may require grad.

    focal (B, 2) fx, fy in pixels; principal (B, 2) cx, cy in pixels;
    rotation (B, 3) axis-angle world->camera; translation (B, 3) metres; image_size (H, W).
    """

    focal: torch.Tensor
    principal: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    image_size: tuple[int, int]

    def __post_init__(self):
        if self.focal.dim() == 1:  # (B,) one focal for both axes
            self.focal = self.focal[:, None].expand(-1, 2)
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    # ---- basics -------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.translation.shape[0]

    @property
    def device(self) -> torch.device:
        return self.translation.device

    @property
    def dtype(self) -> torch.dtype:
        return self.translation.dtype

    def to(self, device=None, dtype=None) -> "PerspectiveCamera":
        f = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return replace(
            self, focal=f(self.focal), principal=f(self.principal), rotation=f(self.rotation), translation=f(self.translation)
        )

    def expand(self, batch: int) -> "PerspectiveCamera":
        """The same camera repeated to ``batch`` (only from a batch of 1)."""
        if self.batch_size == batch:
            return self
        if self.batch_size != 1:
            raise ValueError(f"cannot expand a camera batch of {self.batch_size} to {batch}")
        e = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return replace(
            self, focal=e(self.focal), principal=e(self.principal), rotation=e(self.rotation), translation=e(self.translation)
        )

    # ---- geometry -----------------------------------------------------------------
    def rotation_matrix(self) -> torch.Tensor:
        """(B, 3, 3) world -> camera rotation."""
        return axis_angle_to_matrix(self.rotation)

    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) world metres -> (B, N, 3) camera frame metres."""
        R = self.rotation_matrix()
        return points @ R.transpose(1, 2) + self.translation[:, None, :]

    def centre(self) -> torch.Tensor:
        """(B, 3) the camera's position in world coordinates, -R^T t."""
        R = self.rotation_matrix()
        return -(R.transpose(1, 2) @ self.translation[:, :, None])[..., 0]

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3) world -> pixel coordinates (B, N, 2) (x right, y down) and depth (B, N) metres."""
        if points.shape[0] != self.batch_size:
            cam = self.expand(points.shape[0])
            return cam.project(points)
        pc = self.world_to_camera(points)
        depth = -pc[..., 2]
        inv = 1.0 / depth
        u = self.principal[:, None, 0] + self.focal[:, None, 0] * pc[..., 0] * inv
        v = self.principal[:, None, 1] - self.focal[:, None, 1] * pc[..., 1] * inv
        return torch.stack([u, v], dim=-1), depth

    def intrinsic_matrix(self) -> torch.Tensor:
        """(B, 3, 3) OpenCV-style K (for an OpenCV camera: flip y and z of the camera frame)."""
        K = torch.zeros(self.batch_size, 3, 3, dtype=self.dtype, device=self.device)
        K[:, 0, 0], K[:, 1, 1] = self.focal[:, 0], self.focal[:, 1]
        K[:, 0, 2], K[:, 1, 2] = self.principal[:, 0], self.principal[:, 1]
        K[:, 2, 2] = 1
        return K


def focal_from_fov(size_px: float, fov_deg: float) -> float:
    """Focal length (px) of a pinhole camera whose field of view ``fov_deg`` spans ``size_px``."""
    return 0.5 * size_px / math.tan(math.radians(fov_deg) / 2)


def head_camera(
    image_size: int | tuple[int, int],
    batch: int = 1,
    head_size: float = 0.25,
    fill: float = 0.9,
    fov_deg: float = 14.0,
    device=None,
    dtype=torch.float32,
) -> PerspectiveCamera:
    """A camera on +z looking at the origin that frames a head ``head_size`` metres tall.

    image_size: S or (H, W) pixels. The head's extent covers ``fill`` of the shorter image
    side; ``fov_deg`` is the vertical field of view (a portrait-lens-like 14 degrees).
    The FLAME template with its neck is about 0.31 m tall: ``head_size=0.33`` shows all of it.
    """
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    f = focal_from_fov(H, fov_deg)
    distance = head_size * f / (fill * min(H, W))
    t = lambda x: torch.as_tensor(x, dtype=dtype, device=device).expand(batch, -1).clone()  # noqa: E731
    return PerspectiveCamera(
        focal=t([f, f]),
        principal=t([(W - 1) / 2.0, (H - 1) / 2.0]),
        rotation=t([0.0, 0.0, 0.0]),
        translation=t([0.0, 0.0, -distance]),
        image_size=(H, W),
    )

"""HeadLayer: the differentiable forward model of a HeadModel (torch, batched, CPU or CUDA).

vertices = LBS(template + shapedirs @ shape + exprdirs @ expression, pose)
pose is (B, 3*J) axis-angle in FLAME joint order (root, neck, jaw, left eye, right eye).
For a model without LBS data only the root (global) rotation is accepted, applied
rigidly about the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .landmarks import barycentric_points, dynamic_contour_bins, neck_chain_rotation
from .lbs import axis_angle_to_matrix, lbs
from .model import HeadModel


@dataclass
class HeadOutput:
    vertices: torch.Tensor  # (B, V, 3) metres
    joints: torch.Tensor | None  # (B, J, 3) posed joints, None without LBS


class HeadLayer(nn.Module):
    """Forward model; buffers live on the module's device and dtype."""

    def __init__(self, model: HeadModel, num_shape: int | None = None, num_expr: int | None = None, dtype=torch.float32):
        super().__init__()
        self.model = model
        n_s = model.num_shape if num_shape is None else min(num_shape, model.num_shape)
        n_e = model.num_expr if num_expr is None else min(num_expr, model.num_expr)
        self.num_shape, self.num_expr = n_s, n_e
        t = lambda a, dt=dtype: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
        self.register_buffer("v_template", t(model.v_template))
        self.register_buffer("faces", t(model.faces, torch.long))
        self.register_buffer("shapedirs", t(model.shapedirs[:, :, :n_s]))
        self.register_buffer("exprdirs", t(model.exprdirs[:, :, :n_e]))
        self.has_lbs = model.has_lbs
        self.num_joints = model.num_joints if model.has_lbs else 1
        if model.has_lbs:
            V = model.num_vertices
            self.register_buffer("joint_regressor", t(model.joint_regressor))
            self.register_buffer("skinning_weights", t(model.skinning_weights))
            self.register_buffer("posedirs", t(model.posedirs.reshape(V * 3, -1).T))  # (P, V*3)
            self.register_buffer("parents", t(model.parents, torch.long))
        self._lmk = {}
        for key, value in model.lmk68.items():
            self.register_buffer(f"lmk68_{key}", t(value, torch.long if "faces" in key else dtype))
            self._lmk[key] = f"lmk68_{key}"
        if model.lmk_mediapipe:
            self.register_buffer("lmk_mp_faces", t(model.lmk_mediapipe["faces"], torch.long))
            self.register_buffer("lmk_mp_bary", t(model.lmk_mediapipe["bary"]))
            n_mp = len(model.lmk_mediapipe["faces"])
            flag = lambda k: torch.as_tensor(np.asarray(model.lmk_mediapipe.get(k, np.zeros(n_mp, bool)), bool))  # noqa: E731
            self.register_buffer("lmk_mp_ids", t(model.lmk_mediapipe["ids"], torch.long))
            self.register_buffer("lmk_mp_contour", flag("contour"))
            self.register_buffer("lmk_mp_iris", flag("iris"))

    # ---- parameters -------------------------------------------------------------
    def zeros(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Neutral parameters: shape (B, S), expression (B, E), pose (B, 3J)."""
        kw = dict(dtype=self.v_template.dtype, device=self.v_template.device)
        return {
            "shape": torch.zeros(batch, self.num_shape, **kw),
            "expression": torch.zeros(batch, self.num_expr, **kw),
            "pose": torch.zeros(batch, 3 * self.num_joints, **kw),
        }

    def shaped(self, shape: torch.Tensor | None = None, expression: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """Template plus identity and expression blendshapes, (B, V, 3)."""
        v = self.v_template.unsqueeze(0)
        if shape is not None:
            batch = shape.shape[0]
            v = v + torch.einsum("vcs,bs->bvc", self.shapedirs[:, :, : shape.shape[1]], shape)
        if expression is not None:
            batch = expression.shape[0]
            v = v + torch.einsum("vce,be->bvc", self.exprdirs[:, :, : expression.shape[1]], expression)
        return v.expand(batch, -1, -1) if v.shape[0] != batch else v

    def forward(self, shape=None, expression=None, pose=None) -> HeadOutput:
        """shape (B, <=S), expression (B, <=E), pose (B, 3J) -> HeadOutput."""
        batch = next((x.shape[0] for x in (shape, expression, pose) if x is not None), 1)
        v = self.shaped(shape, expression, batch)
        if pose is None:
            return HeadOutput(v, None)
        if self.has_lbs:
            verts, joints = lbs(v, pose, self.joint_regressor, self.posedirs, self.skinning_weights, self.parents)
            return HeadOutput(verts, joints)
        if pose.shape[1] != 3:
            raise ValueError(f"{self.model.meta.get('name', 'this head model')} has no joints: pose must be (B, 3) global rotation")
        R = axis_angle_to_matrix(pose)
        return HeadOutput(v @ R.transpose(1, 2), None)

    # ---- landmarks --------------------------------------------------------------
    def landmarks68(self, vertices: torch.Tensor, head_rotation: torch.Tensor | None = None) -> torch.Tensor:
        """FLAME's 68 points (B, 68, 3): 17 yaw-dependent contour points then 51 static points.

        head_rotation (B, 3, 3) chooses the contour bin (use ``head_rotation(pose)``, times
        the camera rotation when the camera turns the head); None uses the frontal contour.
        """
        B = vertices.shape[0]
        dyn_faces = getattr(self, self._lmk["dynamic_faces"])
        dyn_bary = getattr(self, self._lmk["dynamic_bary"])
        if head_rotation is None:
            bins = torch.zeros(B, dtype=torch.long, device=vertices.device)
        else:
            bins = dynamic_contour_bins(head_rotation)
        faces_idx = torch.cat([dyn_faces[bins], getattr(self, self._lmk["static_faces"]).expand(B, -1)], 1)
        bary = torch.cat([dyn_bary[bins], getattr(self, self._lmk["static_bary"]).expand(B, -1, -1)], 1)
        return barycentric_points(vertices, self.faces, faces_idx, bary)

    def landmarks68_static_embedding(self, vertices: torch.Tensor) -> torch.Tensor:
        """FLAME's fixed 68-point embedding (``full``), (B, 68, 3)."""
        return barycentric_points(vertices, self.faces, getattr(self, self._lmk["full_faces"]), getattr(self, self._lmk["full_bary"]))

    def landmarks_mediapipe(self, vertices: torch.Tensor) -> torch.Tensor:
        """The embedded MediaPipe points (the shipped 478, or a model's own), (B, N, 3); their
        MediaPipe ids are ``lmk_mp_ids`` (N,)."""
        return barycentric_points(vertices, self.faces, self.lmk_mp_faces, self.lmk_mp_bary)

    @staticmethod
    def head_rotation(pose: torch.Tensor) -> torch.Tensor:
        return neck_chain_rotation(pose)

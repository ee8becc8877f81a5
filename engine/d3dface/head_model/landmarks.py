"""Landmarks from barycentric embeddings, including FLAME's yaw-dependent 68-point contour."""

from __future__ import annotations

import math

import torch

from .lbs import axis_angle_to_matrix

NUM_YAW_BINS = 79  # dynamic contour bins: 0..39 for yaw 0..39 degrees, 40..78 for -1..-39


def barycentric_points(vertices: torch.Tensor, faces: torch.Tensor, face_idx: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """vertices (B, V, 3), faces (F, 3), face_idx (B, L) or (L,), bary (B, L, 3) or (L, 3) -> (B, L, 3)."""
    B = vertices.shape[0]
    if face_idx.dim() == 1:
        face_idx = face_idx.expand(B, -1)
    if bary.dim() == 2:
        bary = bary.expand(B, -1, -1)
    tri = faces[face_idx]  # (B, L, 3)
    batch = torch.arange(B, device=vertices.device).view(B, 1, 1)
    corners = vertices[batch, tri]  # (B, L, 3, 3)
    return (corners * bary.unsqueeze(-1)).sum(-2)


def yaw_degrees(rotation: torch.Tensor) -> torch.Tensor:
    """Yaw (rotation about y) of (B, 3, 3) matrices, in degrees, as FLAME's rot_mat_to_euler."""
    sy = torch.sqrt(rotation[:, 0, 0] ** 2 + rotation[:, 1, 0] ** 2)
    return torch.atan2(-rotation[:, 2, 0], sy) * (180.0 / math.pi)


def dynamic_contour_bins(head_rotation: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) head rotation (neck chain, and camera if the caller adds it) -> (B,) contour bin index."""
    yaw = torch.round(yaw_degrees(head_rotation)).long().clamp(-39, 39)
    return torch.where(yaw < 0, 39 - yaw, yaw)


def neck_chain_rotation(pose: torch.Tensor) -> torch.Tensor:
    """pose (B, J*3) in FLAME order -> rotation of the head (root then neck), (B, 3, 3)."""
    aa = pose.reshape(pose.shape[0], -1, 3)
    root = axis_angle_to_matrix(aa[:, 0])
    if aa.shape[1] < 2:
        return root
    return root @ axis_angle_to_matrix(aa[:, 1])

"""Linear blend skinning for FLAME-style models, batched and differentiable (torch).

Shapes: B batch, V vertices, J joints. Rotations are axis-angle vectors in radians.
"""

from __future__ import annotations

import torch


def axis_angle_to_matrix(rot_vecs: torch.Tensor) -> torch.Tensor:
    """(N, 3) axis-angle -> (N, 3, 3) rotation matrices (Rodrigues); smooth at zero."""
    angle_sq = (rot_vecs * rot_vecs).sum(-1, keepdim=True)  # (N, 1)
    angle = torch.sqrt(angle_sq + 1e-16)
    small = angle_sq < 1e-8
    # sin(a)/a and (1-cos(a))/a^2 with Taylor expansions near zero (finite gradients everywhere)
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 1 - angle_sq / 6, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - angle_sq / 24, (1 - torch.cos(safe)) / (safe * safe))
    x, y, z = rot_vecs.unbind(-1)
    zeros = torch.zeros_like(x)
    K = torch.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], dim=-1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device).expand_as(K)
    return eye + a.unsqueeze(-1) * K + b.unsqueeze(-1) * (K @ K)


def rigid_transforms(rot_mats: torch.Tensor, joints: torch.Tensor, parents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain local joint rotations down the kinematic tree.

    rot_mats (B, J, 3, 3), joints (B, J, 3) rest positions, parents (J,) with parents[0] = -1.
    Returns posed joints (B, J, 3) and relative transforms (B, J, 4, 4) that map rest-pose
    points to posed points for a vertex fully bound to that joint.
    """
    B, J = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.cat([rot_mats, rel.unsqueeze(-1)], dim=-1)  # (B, J, 3, 4)
    bottom = torch.tensor([0, 0, 0, 1], dtype=joints.dtype, device=joints.device).expand(B, J, 1, 4)
    local = torch.cat([local, bottom], dim=-2)  # (B, J, 4, 4)
    chain = [local[:, 0]]
    for j in range(1, J):
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
    posed_joints = world[:, :, :3, 3]
    # remove the rest-pose joint location: T = world @ [I, -j_rest]
    offset = (world[:, :, :3, :3] @ joints.unsqueeze(-1)).squeeze(-1)
    rel_transforms = world.clone()
    rel_transforms[:, :, :3, 3] = world[:, :, :3, 3] - offset
    return posed_joints, rel_transforms


def lbs(
    v_shaped: torch.Tensor,
    pose: torch.Tensor,
    joint_regressor: torch.Tensor,
    posedirs: torch.Tensor,
    skinning_weights: torch.Tensor,
    parents: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose shaped vertices.

    v_shaped (B, V, 3) template + blendshapes; pose (B, J*3) axis-angle per joint;
    joint_regressor (J, V); posedirs (P, V*3) with P = 9*(J-1); skinning_weights (V, J); parents (J,).
    Returns posed vertices (B, V, 3) and posed joints (B, J, 3).
    """
    B, V = v_shaped.shape[:2]
    J = joint_regressor.shape[0]
    joints = torch.einsum("jv,bvc->bjc", joint_regressor, v_shaped)
    rot_mats = axis_angle_to_matrix(pose.reshape(-1, 3)).view(B, J, 3, 3)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    pose_feature = (rot_mats[:, 1:] - eye).reshape(B, -1)
    v_posed = v_shaped + (pose_feature @ posedirs).view(B, V, 3)
    posed_joints, A = rigid_transforms(rot_mats, joints, parents)
    # blend the top 3x4 of each joint transform per vertex; apply as a broadcast product
    # (a batched matmul of V tiny 3x3 matrices is far slower on CPU)
    T = torch.einsum("vj,bjk->bvk", skinning_weights, A[:, :, :3, :].reshape(B, J, 12)).view(B, V, 3, 4)
    verts = (T[..., :3] * v_posed.unsqueeze(-2)).sum(-1) + T[..., 3]
    return verts, posed_joints

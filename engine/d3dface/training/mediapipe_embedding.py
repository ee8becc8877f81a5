"""Derive our own embedding of MediaPipe's 478 face-mesh points on a head model's mesh.

How (no third-party embedding is used): render heads of the model (the mean and random
identities, neutral unless ``EmbeddingSettings.expressions`` asks for more; a flat skin tone
with dark irises painted on the eyeballs, SH-lit) from a grid of yaws and pitches, run
MediaPipe's face mesh (the model inside the mediapipe 0.10.21 wheel, Apache-2.0) on each
render, and carry every detected 2D point back onto the rendered mesh: the triangle under the
point and the point's barycentric coordinates in it. Each hit is a surface point of the
template (same triangle, same barycentrics); per MediaPipe id, the coordinate-wise median over
all renders is snapped to the nearest point of the template's skin (ids 0-467) or of the
eyeball on the same side (iris ids 468-477). The spread (median distance of the hits from the
result, metres) is kept as a per-point quality record.

Assumptions: MediaPipe places its points on a rendered, textureless head where it places them
on a photographed face (checked against FLAME's independent 105-point embedding in
tests/test_mediapipe_embedding.py); the median over a few views of neutral heads is where a
point lies on faces in general (open-mouth and smiling renders and pitches of +-25 degrees were
measured and not adopted: README, "Landmarks of the fit"); points on the face oval lie on a
silhouette that moves with the view, so they are flagged ``contour`` and the fit leaves the jaw
line to the 68-point dynamic contour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import trimesh

from ..fit.albedo import painted_eyes_albedo
from ..head_model.landmark_embedding import CONTOUR_IDS, IRIS_IDS, NUM_MEDIAPIPE_POINTS, MediaPipeEmbedding
from ..head_model.lbs import axis_angle_to_matrix
from ..head_model.model import HeadModel
from ..head_model.random_heads import random_coefficients
from ..head_model.topology_hash import faces_hash
from ..inputs.mediapipe_backend import MediaPipeBackend
from ..outputs.texture_bake import barycentric
from ..render import Renderer, default_light, head_camera

SKIN_RGB = (0.80, 0.66, 0.58)
BACKGROUND = 0.5


@dataclass(frozen=True)
class EmbeddingSettings:
    """The renders: identities (mean + random heads at ``identity_sigma``), expressions (each a
    tuple of (expression name, weight) pairs; () is neutral; a name the model lacks drops that
    expression), yaw and pitch grids (degrees), image size (px), seed of the random identities.
    Every identity is rendered with every expression from every view."""

    random_heads: int = 6
    identity_sigma: float = 1.0
    expressions: tuple = ((),)
    yaws_deg: tuple = (-20.0, -10.0, 0.0, 10.0, 20.0)
    pitches_deg: tuple = (-10.0, 0.0, 10.0)
    image_size: int = 512
    seed: int = 20261201


def snap_to_surface(model: HeadModel, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest surface points of the template for points (478, 3) metres: skin triangles (no
    eyeball vertex) for the face-mesh ids, the nearer eyeball's triangles for the iris ids.
    Returns triangle ids (478,) into ``model.faces`` and barycentric coordinates (478, 3)."""
    faces, verts = model.faces, model.v_template.astype(np.float64)
    eyes = {s: np.isin(faces, model.regions[s]).any(1) for s in ("left_eyeball", "right_eyeball")}
    groups = {"skin": ~(eyes["left_eyeball"] | eyes["right_eyeball"]), **eyes}
    ids = np.arange(len(points))
    tri, bary = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    centres = {s: verts[model.regions[s]].mean(0) for s in eyes}
    for name, sel in groups.items():
        if name == "skin":
            want = ~np.isin(ids, IRIS_IDS)
        else:
            other = "right_eyeball" if name == "left_eyeball" else "left_eyeball"
            d = lambda s: np.linalg.norm(points - centres[s], axis=1)  # noqa: E731
            want = np.isin(ids, IRIS_IDS) & (d(name) < d(other))
        if not want.any():
            continue
        sub = np.flatnonzero(sel)
        mesh = trimesh.Trimesh(verts, faces[sub], process=False)
        closest, _, local = trimesh.proximity.closest_point(mesh, points[want])
        tri[want] = sub[local]
        bary[want] = trimesh.triangles.points_to_barycentric(verts[faces[sub[local]]], closest)
    return tri, bary


def _expression_offsets(model: HeadModel, st: EmbeddingSettings) -> np.ndarray:
    """(X, V, 3) metres: the offset of each of ``st.expressions`` the model has (neutral: zeros)."""
    out = []
    for pairs in st.expressions:
        if any(name not in model.expr_names for name, _ in pairs):
            continue
        psi = np.zeros(model.num_expr, np.float32)
        for name, weight in pairs:
            psi[model.expr_names.index(name)] = weight
        out.append(np.einsum("vck,k->vc", model.exprdirs, psi))
    return np.stack(out) if out else np.zeros((1,) + model.v_template.shape, np.float32)


def _heads(model: HeadModel, st: EmbeddingSettings) -> np.ndarray:
    """(N, V, 3) metres: the mean head and ``random_heads`` random identities, each with every
    expression of ``st`` (identity-major)."""
    rng = np.random.default_rng(st.seed)
    beta, _ = random_coefficients(model, st.random_heads, rng)
    heads = model.v_template[None] + st.identity_sigma * np.einsum("vck,nk->nvc", model.shapedirs, beta)
    identities = np.concatenate([model.v_template[None], heads]).astype(np.float32)
    offsets = _expression_offsets(model, st).astype(np.float32)
    return (identities[:, None] + offsets[None]).reshape(-1, *model.v_template.shape)


def _hits_of_render(renderer: Renderer, verts: torch.Tensor, cam, faces: np.ndarray, points: np.ndarray,
                    template: np.ndarray) -> np.ndarray:
    """Template-space points (478, 3) under the detected 2D points (478, 2), renderer pixel
    convention; NaN where a point falls off the mesh."""
    frags = renderer.rasterize(verts, cam)
    pix, _ = cam.project(verts)
    pix = pix[0].numpy().astype(np.float64)
    tri_id = frags.tri_id[0].numpy()
    H, W = tri_id.shape
    out = np.full((len(points), 3), np.nan)
    xy = np.round(points).astype(int)
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    tri = np.full(len(points), -1)
    tri[ok] = tri_id[xy[ok, 1], xy[ok, 0]]
    hit = np.flatnonzero(tri >= 0)
    b = np.clip(barycentric(points[hit], pix[faces[tri[hit]]]), 0.0, None)
    out[hit] = np.einsum("nk,nkc->nc", b / b.sum(1, keepdims=True), template[faces[tri[hit]]])
    return out


def collect_hits(model: HeadModel, st: EmbeddingSettings = EmbeddingSettings(), progress=None) -> np.ndarray:
    """(R, 478, 3) template-space hits of every render (NaN: no detection or off the mesh)."""
    backend = MediaPipeBackend()
    renderer = Renderer(model.faces)
    heads = _heads(model, st)
    views = [(y, p) for y in st.yaws_deg for p in st.pitches_deg]
    S, hits = st.image_size, []
    for n, head in enumerate(heads):
        colours = torch.as_tensor(painted_eyes_albedo(model, head, SKIN_RGB))[None]
        centre = 0.5 * (head.min(0) + head.max(0))
        for k, (yaw, pitch) in enumerate(views):
            R = axis_angle_to_matrix(torch.tensor([[math.radians(pitch), 0.0, 0.0]]))[0] @ \
                axis_angle_to_matrix(torch.tensor([[0.0, math.radians(yaw), 0.0]]))[0]
            v = (torch.as_tensor(head - centre) @ R.T)[None]
            cam = head_camera(S, head_size=0.30)
            res = renderer.render(v, cam, light=default_light(1), vertex_colors=colours,
                                  background=torch.full((1, 3, S, S), BACKGROUND))
            img = (res.image.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            found = backend.detect(img)
            if len(found) == 1:  # continuous coordinates with pixel centres at +0.5 -> the renderer's
                hits.append(_hits_of_render(renderer, v, cam, model.faces, found[0].dense - 0.5, model.v_template))
            if progress:
                progress((n * len(views) + k + 1) / (len(heads) * len(views)))
    if not hits:
        raise RuntimeError("MediaPipe found no face in any render of the head model")
    return np.stack(hits)


def derive_embedding(model: HeadModel, st: EmbeddingSettings = EmbeddingSettings(), progress=None) -> MediaPipeEmbedding:
    """The 478-point embedding of ``model``'s template (see the module docstring)."""
    hits = collect_hits(model, st, progress)
    median = np.nanmedian(hits, axis=0)  # (478, 3)
    if np.isnan(median).any():
        missing = np.flatnonzero(np.isnan(median).any(1))
        raise RuntimeError(f"MediaPipe points never landed on the mesh: {missing[:10].tolist()}")
    spread = np.nanmedian(np.linalg.norm(hits - median[None], axis=2), axis=0)
    count = np.isfinite(hits).all(2).sum(0)
    faces, bary = snap_to_surface(model, median)
    ids = np.arange(NUM_MEDIAPIPE_POINTS)
    info = {"renders": int(hits.shape[0]), "settings": repr(st),
            "method": "MediaPipe 0.10.21 face mesh on renders of the head model, back-projected (training/mediapipe_embedding.py)"}
    return MediaPipeEmbedding(faces=faces, bary=bary, ids=ids, contour=np.isin(ids, CONTOUR_IDS),
                              iris=np.isin(ids, IRIS_IDS), spread_m=spread.astype(np.float32),
                              hit_count=count.astype(np.int32), faces_hash=faces_hash(model.faces), info=info)

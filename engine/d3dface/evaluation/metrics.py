"""The paper's section-5 metrics for a set of completions, and Procrustes alignment.

Meshes share the FLAME topology: samples (M, V, 3), ground truth (V, 3), metres in,
millimetres out. Distances are per-vertex Euclidean distances reduced over a vertex set:
``reduction="mean"`` (default) is the mean per-vertex L2 distance; ``"rms"`` is the root
mean square, ``||A - B||_F / sqrt(V)``, which is what the authors' evaluation code
prints. Vertex sets are (V,) bool masks or integer index arrays.

- CSE (closest sample error): min over samples of the distance to the ground truth on
  the evaluation set (e.g. the face region);
- ASD-V (average sample distance, visible): for each sample, the distance on the visible
  vertices of the set to the nearest *other* sample (nearest on that same vertex set),
  averaged over the samples;
- ASD-O: the same on the occluded vertices of the set;
- ASD-O / ASD-V: the headline ratio (inf when ASD-V is 0 and ASD-O is not).

Alignment (the same for every method): ``align="rigid"`` or ``"similarity"`` moves each
sample onto the ground truth by weighted Procrustes on ``align_vertices`` (default: the
visible part of the evaluation set) before any distance is taken.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch

Reduction = Literal["mean", "rms"]
Alignment = Literal["none", "rigid", "similarity"]
MM = 1000.0


# ---- Procrustes ------------------------------------------------------------------


@dataclass
class SimilarityTransform:
    """y = scale * R @ x + t, batched over leading dims; arrays of the input's kind (numpy or torch)."""

    rotation: np.ndarray | torch.Tensor  # (..., 3, 3) proper rotation (det +1)
    translation: np.ndarray | torch.Tensor  # (..., 3) metres
    scale: np.ndarray | torch.Tensor  # (...) 1 for a rigid fit

    def apply(self, points):
        """(..., V, 3) -> (..., V, 3), same kind as the points."""
        if isinstance(points, torch.Tensor):
            R, t, s = (torch.as_tensor(a, dtype=points.dtype, device=points.device) for a in self.astuple())
            return s[..., None, None] * points @ R.transpose(-1, -2) + t[..., None, :]
        R, t, s = (np.asarray(a) for a in self.astuple())
        return s[..., None, None] * points @ np.swapaxes(R, -1, -2) + t[..., None, :]

    def astuple(self):
        return self.rotation, self.translation, self.scale


def procrustes(source, target, weights=None, scale: bool = False) -> SimilarityTransform:
    """Weighted least-squares rigid (or similarity) fit of source onto target (Umeyama 1991).

    source, target (..., V, 3) numpy or torch (same kind); weights (V,) or (..., V), or None
    for all ones (a bool vertex mask works). Minimises sum_v w_v ||s R x_v + t - y_v||^2 with
    det R = +1. Computed in float64; returns arrays of the input's kind (and torch device).
    """
    is_torch = isinstance(source, torch.Tensor)
    x = torch.as_tensor(source).to(torch.float64)
    y = torch.as_tensor(target, device=x.device).to(torch.float64)
    if x.shape[-1] != 3 or y.shape[-1] != 3:
        raise ValueError("procrustes expects (..., V, 3) points")
    V = x.shape[-2]
    if weights is None:
        w = torch.ones(V, dtype=torch.float64, device=x.device)
    else:
        w = torch.as_tensor(weights, device=x.device).to(torch.float64)
    if w.shape[-1] != V:
        raise ValueError(f"weights have {w.shape[-1]} entries, points have {V}")
    wsum = w.sum(-1)
    if torch.any(wsum <= 0):
        raise ValueError("procrustes needs a positive total weight")
    wn = (w / wsum[..., None])[..., :, None]  # (..., V, 1)
    mx, my = (wn * x).sum(-2), (wn * y).sum(-2)  # (..., 3)
    xc, yc = x - mx[..., None, :], y - my[..., None, :]
    cov = (wn * yc).transpose(-1, -2) @ xc  # (..., 3, 3) = sum w y x^T
    U, D, Vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(U @ Vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    fix = torch.ones(*sign.shape, 3, dtype=torch.float64, device=x.device)
    fix[..., 2] = sign
    R = U @ (fix[..., :, None] * Vh)
    if scale:
        var_x = (wn * xc * xc).sum((-2, -1))
        s = (D * fix).sum(-1) / var_x
    else:
        s = torch.ones(R.shape[:-2], dtype=torch.float64, device=x.device)
    t = my - s[..., None] * (R @ mx[..., :, None])[..., 0]
    if is_torch:
        dt = source.dtype if source.is_floating_point() else torch.float64
        return SimilarityTransform(R.to(dt), t.to(dt), s.to(dt))
    return SimilarityTransform(R.cpu().numpy(), t.cpu().numpy(), s.cpu().numpy())


def align_to(source, target, vertices=None, scale: bool = False):
    """source (..., V, 3) moved onto target (V, 3) or (..., V, 3) by Procrustes on a vertex set."""
    V = source.shape[-2]
    weights = None if vertices is None else vertex_mask(vertices, V)
    return procrustes(source, target, weights, scale).apply(source)


# ---- distances and metrics -----------------------------------------------------------


def vertex_mask(vertices, num_vertices: int) -> np.ndarray:
    """(V,) bool mask from a bool mask or an index array (numpy, torch or list)."""
    if isinstance(vertices, torch.Tensor):
        vertices = vertices.detach().cpu().numpy()
    v = np.asarray(vertices)
    if v.dtype == bool:
        if v.shape != (num_vertices,):
            raise ValueError(f"vertex mask has shape {v.shape}, expected ({num_vertices},)")
        return v
    mask = np.zeros(num_vertices, dtype=bool)
    mask[v.astype(np.int64).ravel()] = True
    return mask


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def per_vertex_distance(a, b) -> np.ndarray:
    """(..., V, 3), (..., V, 3) -> (..., V) Euclidean distances, same units as the input."""
    return np.linalg.norm(_np(a) - _np(b), axis=-1)


def reduce_distance(per_vertex: np.ndarray, mask: np.ndarray, reduction: Reduction = "mean") -> np.ndarray:
    """(..., V) per-vertex distances -> (...) mean or rms over the masked vertices (nan if none)."""
    if not mask.any():
        return np.full(per_vertex.shape[:-1], np.nan)
    d = per_vertex[..., mask]
    if reduction == "mean":
        return d.mean(-1)
    if reduction == "rms":
        return np.sqrt((d * d).mean(-1))
    raise ValueError(f"unknown reduction {reduction!r} (use 'mean' or 'rms')")


def closest_sample_error(samples, gt, vertices=None, reduction: Reduction = "mean") -> tuple[float, int]:
    """CSE: (error in mm, index) of the sample closest to gt on a vertex set. samples (M, V, 3), gt (V, 3) metres."""
    x, y = _np(samples), _np(gt)
    mask = np.ones(x.shape[-2], bool) if vertices is None else vertex_mask(vertices, x.shape[-2])
    errs = reduce_distance(per_vertex_distance(x, y[None]), mask, reduction)  # (M,)
    i = int(np.argmin(errs))
    return float(errs[i] * MM), i


def sample_distance_matrix(samples, vertices=None, reduction: Reduction = "mean") -> np.ndarray:
    """(M, V, 3) metres -> (M, M) distances between samples on a vertex set, in mm."""
    x = _np(samples)
    M, V = x.shape[:2]
    mask = np.ones(V, bool) if vertices is None else vertex_mask(vertices, V)
    xs = x[:, mask]
    out = np.zeros((M, M))
    for i in range(M):  # one row at a time: (M, Vs) memory, not (M, M, Vs, 3)
        out[i] = reduce_distance(np.linalg.norm(xs - xs[i], axis=-1), np.ones(xs.shape[1], bool), reduction)
    return out * MM


def average_sample_distance(samples, vertices=None, reduction: Reduction = "mean") -> float:
    """ASD on a vertex set: mean over samples of the distance (mm) to the nearest other sample."""
    x = _np(samples)
    if x.shape[0] < 2:
        raise ValueError("ASD needs at least 2 samples")
    d = sample_distance_matrix(x, vertices, reduction)
    np.fill_diagonal(d, np.inf)
    return float(d.min(1).mean())


@dataclass
class DiversityMetrics:
    """Section-5 metrics of one set of samples, in mm (nan where undefined, e.g. CSE without ground truth)."""

    cse: float  # closest sample error, mm (lower is better)
    asd_v: float  # average nearest-other-sample distance on visible vertices, mm (lower is better)
    asd_o: float  # the same on occluded vertices, mm (higher is better)
    ratio: float  # asd_o / asd_v
    closest: int  # index of the sample that gave the CSE (-1 without ground truth)
    num_samples: int

    def as_dict(self) -> dict[str, float | int]:
        """Keys cse_mm, asd_v_mm, asd_o_mm, asd_ratio, closest, num_samples."""
        d = asdict(self)
        return {
            "cse_mm": d["cse"],
            "asd_v_mm": d["asd_v"],
            "asd_o_mm": d["asd_o"],
            "asd_ratio": d["ratio"],
            "closest": d["closest"],
            "num_samples": d["num_samples"],
        }


def _ratio(o: float, v: float) -> float:
    if np.isnan(o) or np.isnan(v):
        return float("nan")
    if v == 0:
        return float("inf") if o > 0 else float("nan")
    return o / v


def diversity_metrics(
    samples,
    occluded,
    gt=None,
    region=None,
    align: Alignment = "none",
    align_vertices=None,
    reduction: Reduction = "mean",
) -> DiversityMetrics:
    """CSE, ASD-V, ASD-O and their ratio for one set of completions.

    samples (M, V, 3) metres, numpy or torch; occluded: vertex set hidden in the photo;
    gt (V, 3) metres or None (CSE nan); region: evaluation vertex set (e.g. the face
    region), None = all vertices. align: "none", "rigid" or "similarity" Procrustes of
    each sample onto gt on align_vertices (default region minus occluded); needs gt.
    """
    x = _np(samples)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"samples must be (M, V, 3), got {x.shape}")
    M, V = x.shape[:2]
    occ = vertex_mask(occluded, V)
    reg = np.ones(V, bool) if region is None else vertex_mask(region, V)
    y = None if gt is None else _np(gt)
    if align != "none":
        if y is None:
            raise ValueError("alignment needs a ground truth to align to")
        if align not in ("rigid", "similarity"):
            raise ValueError(f"unknown alignment {align!r} (use 'none', 'rigid' or 'similarity')")
        av = (reg & ~occ) if align_vertices is None else vertex_mask(align_vertices, V)
        x = align_to(x, y, av, scale=align == "similarity")
    if y is not None:
        cse, closest = closest_sample_error(x, y, reg, reduction)
    else:
        cse, closest = float("nan"), -1
    asd_v = average_sample_distance(x, reg & ~occ, reduction)
    asd_o = average_sample_distance(x, reg & occ, reduction)
    return DiversityMetrics(cse, asd_v, asd_o, _ratio(asd_o, asd_v), closest, M)


def _edge_faces(faces: np.ndarray) -> np.ndarray:
    """(E, 2) the two triangles of every interior edge (edges used by one triangle are left out)."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    tri = np.repeat(np.arange(len(faces)), 3)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, tri = e[order], tri[order]
    same = np.all(e[1:] == e[:-1], axis=1)
    return np.stack([tri[:-1][same], tri[1:][same]], 1), e[:-1][same]


def dihedral_angles(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angle (degrees, 0 = flat) between the normals of the two triangles at each interior edge;
    returns (angles (..., E), edges (E, 2) vertex pairs)."""
    pairs, edges = _edge_faces(faces)
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[..., faces[:, 1], :] - v[..., faces[:, 0], :], v[..., faces[:, 2], :] - v[..., faces[:, 0], :])
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-30)
    cos = np.clip((n[..., pairs[:, 0], :] * n[..., pairs[:, 1], :]).sum(-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos)), edges


def creased_edges(samples: np.ndarray, reference: np.ndarray, faces: np.ndarray, region: np.ndarray | None = None,
                  threshold_deg: float = 30.0) -> np.ndarray:
    """Per sample (M,), the interior edges (both ends in ``region``, vertex indices) whose dihedral
    angle exceeds the reference's (the fit's) at that edge by more than ``threshold_deg``."""
    s = np.asarray(samples, np.float64)
    s = s[None] if s.ndim == 2 else s
    a, edges = dihedral_angles(s, faces)
    a0, _ = dihedral_angles(reference, faces)
    keep = np.ones(len(edges), bool)
    if region is not None:
        inside = np.zeros(s.shape[1], bool)
        inside[region] = True
        keep = inside[edges[:, 0]] & inside[edges[:, 1]]
    return ((a - a0[None]) > threshold_deg)[:, keep].sum(1)

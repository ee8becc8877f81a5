"""Bake the photo into a texture in the head model's UV layout (FLAME's: one island for the
head and, per eyeball, one for its front and one for its back).

Per texel (its centre at u = (c + 0.5) / S, v = 1 - (r + 0.5) / S, v up, as Blender samples):
1. its triangle and barycentric coordinates in UV space (the engine's rasteriser run on the UV
   layout), hence its 3D point and normal on the fitted head (the "Basis" shape);
2. its projection through the fitted camera into the full-resolution photo (the camera is in
   crop pixels; the crop box maps it back to photo pixels);
3. a photo weight w in [0, 1]: the view angle (cosine between the normal and the direction to
   the camera: 0 up to ``cos_zero``, 1 from ``cos_full``) x visibility (a z-buffer test on a
   raster of the fit seen through the camera) x the distance to the occlusion mask (0 within
   ``mask_margin``, 1 after ``mask_falloff`` more: a drawn mask's edge is uncertain and must
   not leak) x the distance to the head's silhouette, its depth edges (open mouth, nostrils)
   and the photo's edge (``edge_margin``, ``edge_falloff``: shorter, as the view angle already
   fades the silhouette) x the photo region (face, forehead and
   eyeballs, softened over ``region_rings`` rings: over the scalp, ears and neck a photo shows
   hair and background);
4. colour = w * photo + (1 - w) * fill. The fill is seam-free because it is made on the mesh's
   vertices and interpolated: the fit's albedo, plus the mean residual (photo - albedo) of
   the seen vertices (the photo's tone), plus the remaining residual spread from the seen
   vertices by a screened Laplacian (it decays over about ``fill_decay_m``), plus the mean
   texture's fine detail (on the face, ears and eyeballs) times the fitted albedo gain;
5. texels that no UV triangle covers take their covered neighbours' colour for
   ``dilate_texels`` texels (no dark seams when mip-mapped), and the mean colour beyond.
Colours are the photo's sRGB values in [0, 1]; the PNG is 8-bit sRGB.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ..fit.albedo import vertex_mean_albedo
from ..render.rasterize import RasterSettings, rasterize
from ..render.shading import vertex_normals
from .blender_scene import axis_angle_matrix, crop_to_photo
from .pictures import write_png

TEXTURE_FILE = "texture.png"
PHOTO_REGIONS = ("face", "forehead", "left_eyeball", "right_eyeball")
# where the mean texture's fine detail is added to the fill (elsewhere, over the scalp, neck and
# the back of the head, it is streaky and mismatched across the seam there), and its smoothing
DETAIL_REGIONS = ("face", "forehead", "left_eyeball", "right_eyeball", "left_ear", "right_ear")
DETAIL_REGION_RINGS = 4
FAR_M = 10.0  # depth given to empty raster pixels when looking for depth edges, metres
MIN_TONE_WEIGHT = 1.0  # summed vertex photo weight below which no tone offset is taken
ROBUST_ROUNDS = 2  # reweighting rounds of the robust mean residual
# the edge Laplacian with weights (mean edge / edge)^2 is about LAPLACIAN_SCALE * h^2 * (-Laplace)
# on a triangle mesh of mean edge h, so a screening of LAPLACIAN_SCALE * (h / l)^2 decays over l
LAPLACIAN_SCALE = 1.5
# mean-texture detail: none within DETAIL_INSET of a UV island's border, in full DETAIL_FADE further
# (fractions of the texture's side: 3 and 12 texels at 1024)
DETAIL_INSET = 0.003
DETAIL_FADE = 0.012
REMAP_COLUMNS = 4096
MAX_RASTER_PER_PHOTO_PX = 2.0  # the visibility raster is at most this many pixels per photo pixel
LAYOUT_CACHE_SIZE = 4  # UV layouts (model, size) kept  # cv2.remap maps must stay below 32767 columns: points are laid out in rows


@dataclass(frozen=True)
class BakeSettings:
    """size: texels per side; cos_zero, cos_full: view cosines of weight 0 and 1; mask_margin,
    mask_falloff, edge_margin, edge_falloff: fractions of the crop side (photo px), no photo
    within the margin of the occlusion mask / of an edge, full weight the falloff further;
    min_margin_px: photo px, at least this margin from the mask (bilinear samples never touch
    a masked pixel); depth_tol_m: metres behind the z-buffer still seen;
    depth_edge_m: metres of depth jump within a 3x3 raster patch that is an occlusion edge;
    raster_px: side of the visibility raster; window_scale: it covers the crop box scaled by
    this about its centre; photo_regions: head-model regions taking photo colour;
    region_rings: rings of smoothing of that region; fill_decay_m: metres over which the seen
    residual fades into the tone-corrected albedo; fill_data_weight: pull of a seen vertex to
    its photo residual against its neighbours (the Laplacian's unit); fill_robust: colour
    distance (0..1 RGB) at which a seen vertex's residual counts half in the fill; dilate_texels: texels
    filled beyond the UV islands' borders."""

    size: int = 1024
    cos_zero: float = 0.2
    cos_full: float = 0.5
    mask_margin: float = 0.01
    mask_falloff: float = 0.04
    edge_margin: float = 0.003
    edge_falloff: float = 0.015
    min_margin_px: float = 2.0
    depth_tol_m: float = 2e-3
    depth_edge_m: float = 0.01
    raster_px: int = 1024
    window_scale: float = 2.0
    photo_regions: tuple = PHOTO_REGIONS
    region_rings: int = 2
    fill_decay_m: float = 0.03
    fill_data_weight: float = 4.0
    fill_robust: float = 0.15
    dilate_texels: int = 8


@dataclass
class TextureBake:
    """image (S, S, 3) uint8 sRGB, row 0 at v = 1; weight (S, S) float32 photo weight; covered
    (S, S) bool texels inside a UV triangle; fill (S, S, 3) float32 the fill alone (0 where not
    covered); photo_xy (S, S, 2) float32 photo pixel each texel projects to (nan: not covered);
    seconds: time the bake took."""

    image: np.ndarray
    weight: np.ndarray
    covered: np.ndarray
    fill: np.ndarray
    photo_xy: np.ndarray
    seconds: float


@dataclass
class Texels:
    """The P covered texels: index (P,) into the flat S*S image, tri (P,) face, bary (P, 3), and
    matrix (P, V) sparse, the barycentric interpolation of per-vertex values."""

    index: np.ndarray
    tri: np.ndarray
    bary: np.ndarray
    matrix: sp.csr_matrix

    def interpolate(self, values: np.ndarray) -> np.ndarray:
        """Per-vertex values (V, C) -> (P, C) at the texels."""
        return self.matrix @ values


@dataclass
class ViewRaster:
    """The fit seen through the camera on a window of the photo: raster pixel q = scale * (x -
    origin) for photo pixel x (pixel centres at integers in both); depth (h, w) metres (inf:
    empty); mask_px, edge_px (h, w) distances to the nearest occluded pixel and to the nearest
    silhouette, depth-edge or photo-edge pixel, in photo pixels."""

    origin: np.ndarray
    scale: float
    depth: np.ndarray
    mask_px: np.ndarray
    edge_px: np.ndarray


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def barycentric(p: np.ndarray, tri_xy: np.ndarray) -> np.ndarray:
    """Points p (N, 2), triangles tri_xy (N, 3, 2) -> barycentric coordinates (N, 3) (negative outside)."""
    a, e1, e2 = tri_xy[:, 0], tri_xy[:, 1] - tri_xy[:, 0], tri_xy[:, 2] - tri_xy[:, 0]
    d = p - a
    den = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    den = np.where(den == 0, 1e-30, den)
    b1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / den
    b2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / den
    return np.stack([1.0 - b1 - b2, b1, b2], 1)


def uv_texels(uvs: np.ndarray, uv_faces: np.ndarray, faces: np.ndarray, size: int) -> Texels:
    """uvs (T, 2) in [0, 1] (v up), uv_faces (F, 3), the mesh's faces (F, 3) -> the texel centres
    of an S x S image that lie inside a UV triangle (the engine's rasteriser on the UV layout)."""
    S = int(size)
    uv_faces = np.asarray(uv_faces)
    xy = np.stack([uvs[:, 0] * S - 0.5, (1.0 - uvs[:, 1]) * S - 0.5], 1)
    frag = rasterize(torch.as_tensor(xy, dtype=torch.float32)[None], torch.ones(1, len(uvs)),
                     torch.as_tensor(uv_faces, dtype=torch.int64), (S, S), RasterSettings(cull_backfaces=False))
    tri_img = frag.tri_id[0].numpy().reshape(-1)
    index = np.flatnonzero(tri_img >= 0)
    tri = tri_img[index]
    p = np.stack([index % S, index // S], 1).astype(np.float64)
    bary = np.clip(barycentric(p, xy[uv_faces[tri]]), 0.0, 1.0)  # within the rasteriser's slack
    bary /= bary.sum(1, keepdims=True)
    V = int(np.asarray(faces).max()) + 1
    rows = np.repeat(np.arange(len(index)), 3)
    matrix = sp.csr_matrix((bary.ravel(), (rows, np.asarray(faces)[tri].ravel())), shape=(len(index), V))
    return Texels(index, tri, bary, matrix)


_LAYOUTS: dict = {}


def texel_layout(model, size: int) -> Texels:
    """``uv_texels`` of a head model, computed once per UV layout and size (the worker bakes many)."""
    h = hashlib.sha1()
    for a in (model.uvs, model.uv_faces, model.faces):
        h.update(np.ascontiguousarray(a).tobytes())
    key = (h.hexdigest(), int(size))
    if key not in _LAYOUTS:
        if len(_LAYOUTS) >= LAYOUT_CACHE_SIZE:
            _LAYOUTS.pop(next(iter(_LAYOUTS)))
        _LAYOUTS[key] = uv_texels(model.uvs, model.uv_faces, model.faces, size)
    return _LAYOUTS[key]


def project(points: np.ndarray, camera: dict, crop_box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """points (N, 3) FLAME metres -> photo pixels (N, 2) (x right, y down, centres at integers),
    depth (N,) metres and the camera centre (3,) in FLAME metres."""
    R = axis_angle_matrix(camera["rotation"])
    t = np.asarray(camera["translation"], np.float64)
    pc = np.asarray(points, np.float64) @ R.T + t
    depth = -pc[:, 2]
    intr = crop_to_photo(camera, crop_box)
    d = np.maximum(depth, 1e-9)
    x = intr["principal"][0] + intr["focal"][0] * pc[:, 0] / d
    y = intr["principal"][1] - intr["focal"][1] * pc[:, 1] / d
    return np.stack([x, y], 1), depth, -R.T @ t


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """image (H, W[, C]) float32, xy (N, 2) pixels (centres at integers) -> (N[, C]) bilinear
    samples, clamped at the edges."""
    n = len(xy)
    rows = max(1, -(-n // REMAP_COLUMNS))
    m = np.zeros((rows * REMAP_COLUMNS, 2), np.float32)
    m[:n] = xy
    out = cv2.remap(image, m[:, 0].reshape(rows, -1), m[:, 1].reshape(rows, -1), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * REMAP_COLUMNS, *image.shape[2:])[:n]


def view_raster(vertices, faces, camera, crop_box, occlusion: np.ndarray, st: BakeSettings) -> ViewRaster:
    """Rasterise the fit (V, 3) through the camera over a window of the photo, with the occlusion
    mask (H, W) bool; mark unusable pixels and measure the distance to them."""
    H, W = occlusion.shape
    box = np.asarray(crop_box, np.float64)
    centre, half = (box[:2] + box[2:]) / 2, st.window_scale * (box[2] - box[0]) / 2
    lo = np.maximum(centre - half, 0.0)
    hi = np.minimum(centre + half, [W - 1.0, H - 1.0])
    s = min((st.raster_px - 1) / max(float((hi - lo).max()), 1.0), MAX_RASTER_PER_PHOTO_PX)
    w, h = (int(round(float(v) * s)) + 1 for v in (hi - lo))
    pix, depth, _ = project(vertices, camera, crop_box)
    q = torch.as_tensor(s * (pix - lo), dtype=torch.float32)[None]
    frag = rasterize(q, torch.as_tensor(depth, dtype=torch.float32)[None],
                     torch.as_tensor(np.asarray(faces), dtype=torch.int64), (h, w))
    zbuf = frag.depth[0].numpy()
    near = np.where(np.isfinite(zbuf), zbuf, FAR_M)
    kernel = np.ones((3, 3), np.uint8)
    edge = (cv2.dilate(near, kernel) - cv2.erode(near, kernel)) > st.depth_edge_m
    mask = occlusion.astype(np.float32)
    if s < 1.0:  # a downscaled warp must not lose thin parts of the mask
        mask = cv2.dilate(mask, np.ones((int(np.ceil(1 / s)) * 2 + 1,) * 2, np.uint8))
    warp = np.array([[s, 0, -s * lo[0]], [0, s, -s * lo[1]]])
    masked = cv2.warpAffine(mask, warp, (w, h), flags=cv2.INTER_LINEAR, borderValue=1.0) > 0
    unusable = edge | ~np.isfinite(zbuf)
    unusable[[0, -1], :] = True
    unusable[:, [0, -1]] = True
    dist = lambda bad: cv2.distanceTransform((~bad).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / s  # noqa: E731
    return ViewRaster(origin=lo, scale=s, depth=zbuf, mask_px=dist(masked), edge_px=dist(unusable))


def photo_weights(points, normals, view: ViewRaster, camera, crop_box, borders, st: BakeSettings
                  ) -> tuple[np.ndarray, np.ndarray]:
    """points and unit normals (N, 3) on the fit -> photo weight (N,) (angle x visibility x
    distances to the mask and to edges, no region) and photo pixels (N, 2); borders: photo px,
    (mask margin, mask falloff, edge margin, edge falloff)."""
    pix, depth, eye = project(points, camera, crop_box)
    ray = eye - points
    cos = (normals * ray).sum(1) / np.maximum(np.linalg.norm(ray, axis=1), 1e-12)
    w_angle = smoothstep((cos - st.cos_zero) / (st.cos_full - st.cos_zero))
    h, w = view.depth.shape
    q = np.rint(view.scale * (pix - view.origin)).astype(np.int64)
    inside = (q[:, 0] >= 0) & (q[:, 0] < w) & (q[:, 1] >= 0) & (q[:, 1] < h) & (depth > 0)
    qx, qy = np.clip(q[:, 0], 0, w - 1), np.clip(q[:, 1], 0, h - 1)
    seen = inside & (depth <= view.depth[qy, qx] + st.depth_tol_m)
    m0, m1, e0, e1 = borders
    w_border = smoothstep((view.mask_px[qy, qx] - m0) / m1) * smoothstep((view.edge_px[qy, qx] - e0) / e1)
    return np.where(seen, w_angle * w_border, 0.0), pix


def mesh_edges(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique edges (E, 2) of the triangles and their lengths (E,) in metres."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    e = np.unique(e, axis=0)
    return e, np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)


def region_weights(model, vertices: np.ndarray, names, rings: int) -> np.ndarray:
    """(V,) 1 on the named regions, 0 elsewhere, averaged over neighbours ``rings`` times."""
    V = len(vertices)
    w = np.zeros(V)
    for name in names:
        if name in model.regions:
            w[np.asarray(model.regions[name])] = 1.0
    e, _ = mesh_edges(vertices, model.faces)
    A = sp.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(V, V))
    A = (A + sp.identity(V)).tocsr()
    A = sp.diags(1.0 / np.asarray(A.sum(1)).ravel()) @ A
    for _ in range(rings):
        w = A @ w
    return w


def robust_tone(res: np.ndarray, weight: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean (3,) of residuals (V, 3) with weights (V,) lowered by 1 / (1 + (d / scale)^2)
    for a residual d away from it (two rounds), and those weights; zeros if too little is seen."""
    if float(weight.sum()) < MIN_TONE_WEIGHT:
        return np.zeros(3), weight
    w = weight
    for _ in range(ROBUST_ROUNDS):
        tone = (w[:, None] * res).sum(0) / w.sum()
        w = weight / (1.0 + (np.linalg.norm(res - tone, axis=1) / scale) ** 2)
    return (w[:, None] * res).sum(0) / max(float(w.sum()), 1e-12), w


def vertex_fill(vertices, faces, albedo, photo_v, weight_v, st: BakeSettings) -> np.ndarray:
    """(V, 3) fill colours: albedo + the seen vertices' mean residual (photo - albedo) + the rest
    of their residual spread by a screened Laplacian; photo_v (V, 3), weight_v (V,). Seen
    vertices whose residual is far from the mean (hair or an unmasked frame over the face's
    border) count less (Cauchy weights of scale ``fill_robust``)."""
    V = len(vertices)
    res = photo_v - albedo
    tone, weight_v = robust_tone(res, weight_v, st.fill_robust)
    e, length = mesh_edges(vertices, faces)
    h = float(length.mean())
    k = (h / np.maximum(length, 1e-9)) ** 2
    adj = sp.coo_matrix((np.r_[k, k], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(V, V)).tocsr()
    lap = sp.diags(np.asarray(adj.sum(1)).ravel()) - adj
    screen = LAPLACIAN_SCALE * (h / st.fill_decay_m) ** 2
    data = st.fill_data_weight * weight_v
    system = (lap + sp.diags(data + screen)).tocsc()
    spread = spla.splu(system).solve(np.ascontiguousarray(data[:, None] * (res - tone)))
    return albedo + tone + spread


def mean_texture_terms(model, texels: Texels, size: int, mean_texture, gain) -> tuple[np.ndarray, np.ndarray]:
    """What the fit's per-vertex albedo lacks of the mean texture: a per-vertex correction (V, 3)
    and the fine detail (P, 3) at the texels, both times the fitted gain (3,); zeros without a
    mean texture file. The file is dark outside its islands (which darkens the albedo of
    border vertices: the correction replaces those texels from inside) and does not match
    itself across FLAME's UV seams (back of the head, eyeballs): the detail fades out towards
    the islands' borders, where the seam-free per-vertex fill alone remains."""
    V, P = model.num_vertices, len(texels.index)
    img = cv2.imread(str(mean_texture), cv2.IMREAD_COLOR) if mean_texture and Path(mean_texture).is_file() else None
    if img is None:
        return np.zeros((V, 3)), np.zeros((P, 3))
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)
    covered = np.zeros(size * size, np.uint8)
    covered[texels.index] = 1
    inside = cv2.distanceTransform(covered.reshape(size, size), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    clean = dilate(img, inside > DETAIL_INSET * size, float(size))
    uv = model.uvs[model.uv_faces.ravel()]
    corners = sample_bilinear(clean, np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], 1))
    clean_v = np.zeros((V, 3))
    np.add.at(clean_v, model.faces.ravel(), corners)
    clean_v /= np.maximum(np.bincount(model.faces.ravel(), minlength=V), 1)[:, None]
    fade = smoothstep((inside.ravel()[texels.index] - DETAIL_INSET * size) / (DETAIL_FADE * size))
    detail = fade[:, None] * (clean.reshape(-1, 3)[texels.index] - texels.interpolate(clean_v))
    g = np.ones(3) if gain is None else np.asarray(gain, np.float64).reshape(3)
    return g * (clean_v - vertex_mean_albedo(model, mean_texture)), g * detail


def dilate(image: np.ndarray, covered: np.ndarray, texels: float) -> np.ndarray:
    """image (S, S, 3) float, covered (S, S) bool -> a float32 copy whose uncovered texels within
    ``texels`` of a covered one take the nearest covered texel's colour, the rest the mean
    covered colour."""
    out = np.asarray(image, np.float32).copy()
    if not covered.any():
        out[:] = 0.5
        return out
    dist, label = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                  labelType=cv2.DIST_LABEL_PIXEL)
    source = np.zeros(int(label.max()) + 1, np.int64)
    source[label[covered]] = np.flatnonzero(covered)  # each covered texel is its own label
    near = ~covered & (dist <= texels)
    flat = out.reshape(-1, out.shape[-1])
    flat[near.ravel()] = flat[source[label[near]]]
    flat[(~covered & ~near).ravel()] = flat[covered.ravel()].mean(0)
    return out


def photo_step(pix_v: np.ndarray, weight_v: np.ndarray, model, size: int) -> int:
    """Integer factor (>= 1) by which to shrink the photo before sampling: about the photo pixels
    per texel over the well-seen triangles (no aliasing from a large photo)."""
    good = (weight_v[model.faces] > 0.5).all(1)
    if not good.any():
        return 1

    def areas(xy, tri):
        a, b, c = (xy[tri[:, k]] for k in range(3))
        return np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]) / 2

    photo = areas(pix_v, model.faces[good])
    texel = areas(model.uvs * size, model.uv_faces[good])
    ratio = float(np.median(photo / np.maximum(texel, 1e-12)))
    return max(1, int(np.sqrt(ratio)))


def bake_texture(model, vertices, camera: dict, crop_box, photo: np.ndarray, occlusion: np.ndarray,
                 albedo: np.ndarray, mean_texture=None, gain=None, settings: BakeSettings | None = None) -> TextureBake:
    """The photo baked into the model's UV layout. vertices (V, 3) the fit, metres; camera the
    fit's (crop pixels) with crop_box (4,) photo px; photo (H, W, 3) uint8 RGB full resolution;
    occlusion (H, W) bool (True: occluded); albedo (V, 3) in [0, 1]; mean_texture: path of the
    mean texture (detail in the fill) or None; gain (3,) the fit's albedo gain."""
    t0 = time.perf_counter()
    st = settings or BakeSettings()
    S, faces = int(st.size), np.asarray(model.faces)
    vertices = np.asarray(vertices, np.float64)
    crop_side = float(crop_box[2] - crop_box[0])
    normals = vertex_normals(torch.as_tensor(vertices)[None], torch.as_tensor(faces, dtype=torch.int64))[0].numpy()
    region_v = region_weights(model, vertices, st.photo_regions, st.region_rings)
    view = view_raster(vertices, faces, camera, crop_box, np.asarray(occlusion, bool), st)
    edges = (st.edge_margin * crop_side, st.edge_falloff * crop_side)
    borders = (st.min_margin_px, st.mask_falloff * crop_side) + edges
    w0, pix_v = photo_weights(vertices, normals, view, camera, crop_box, borders, st)
    k = photo_step(pix_v, w0 * region_v, model, S)
    borders = (max(st.mask_margin * crop_side, st.min_margin_px * k), st.mask_falloff * crop_side) + edges
    small = photo if k == 1 else cv2.resize(photo, (photo.shape[1] // k, photo.shape[0] // k), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32) / 255.0
    to_small = lambda xy: (xy + 0.5) / k - 0.5  # noqa: E731

    tx = texel_layout(model, S)
    albedo_fix, detail = mean_texture_terms(model, tx, S, mean_texture, gain)
    detail *= tx.interpolate(region_weights(model, vertices, DETAIL_REGIONS, DETAIL_REGION_RINGS))[:, None]
    w_v, _ = photo_weights(vertices, normals, view, camera, crop_box, borders, st)
    w_v = w_v * region_v
    albedo_v = np.asarray(albedo, np.float64) + albedo_fix
    fill_v = vertex_fill(vertices, faces, albedo_v, sample_bilinear(small, to_small(pix_v)), w_v, st)

    p = tx.interpolate(vertices)
    n = tx.interpolate(normals.astype(np.float64))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    w_t, pix_t = photo_weights(p, n, view, camera, crop_box, borders, st)
    w_t = w_t * tx.interpolate(region_v)
    fill_t = tx.interpolate(fill_v) + detail
    colour = w_t[:, None] * sample_bilinear(small, to_small(pix_t)) + (1.0 - w_t[:, None]) * fill_t
    bake = _assemble(tx, S, colour, w_t, fill_t, pix_t, st)
    bake.seconds = time.perf_counter() - t0
    return bake


def _assemble(tx: Texels, S: int, colour, weight, fill, pix, st: BakeSettings) -> TextureBake:
    """Per-texel values (P, ...) -> the (S, S) images of a TextureBake (colour dilated, 8-bit)."""
    covered = np.zeros(S * S, bool)
    covered[tx.index] = True
    img = np.zeros((S * S, 3), np.float32)
    img[tx.index] = np.clip(colour, 0.0, 1.0)
    img = dilate(img.reshape(S, S, 3), covered.reshape(S, S), st.dilate_texels)
    wimg = np.zeros(S * S, np.float32)
    wimg[tx.index] = weight
    fimg = np.zeros((S * S, 3), np.float32)
    fimg[tx.index] = fill
    xy = np.full((S * S, 2), np.nan, np.float32)
    xy[tx.index] = pix
    image = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return TextureBake(image=image, weight=wimg.reshape(S, S), covered=covered.reshape(S, S),
                       fill=fimg.reshape(S, S, 3), photo_xy=xy.reshape(S, S, 2), seconds=0.0)


def bake_fit_texture(model, fit, inputs, mean_texture=None, settings: BakeSettings | None = None) -> TextureBake | None:
    """``bake_texture`` for a FitResult and the FaceInputs it was fitted to (None when the model has no UVs)."""
    if getattr(model, "uvs", None) is None or getattr(model, "uv_faces", None) is None:
        return None
    return bake_texture(model, fit.vertices, fit.camera, inputs.crop.box, inputs.image, inputs.occlusion_mask,
                        fit.albedo, mean_texture, (fit.params or {}).get("gain"), settings)


def write_texture(path: str | Path, bake: TextureBake) -> Path:
    """The baked image as an 8-bit RGB PNG, written atomically."""
    return write_png(path, bake.image)

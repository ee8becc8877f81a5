"""The photo baked into the FLAME UV layout (``d3dface.outputs.texture_bake``), on a real photo
with its hand-drawn mask: checked against an independent projection (OpenCV), against a photo
whose occluder is repainted, across UV seams and at mip-map level, then through the
reconstruction's files and the Blender add-on (an image-texture material, packed)."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import trimesh

from conftest import IMAGES
from d3dface.reconstruct import RUN_TIME_TEXTURE  # the product bakes without a mean texture

PHOTO = IMAGES / "occluded" / "glasses_woman.jpg"
MASK = IMAGES / "occluded" / "glasses_woman_mask.png"
S = 1024
LEVEL = 1 / 255  # one 8-bit step


@pytest.fixture(scope="module")
def fitted():
    """The open model fitted to the photo, as ``d3dface reconstruct`` fits it."""
    from d3dface.config import ReconstructConfig
    from d3dface.fit.evidence import evidence_from_inputs
    from d3dface.inputs import prepare_face_inputs
    from d3dface.reconstruct import get_engine

    engine = get_engine(None, "cpu")
    inputs = prepare_face_inputs(PHOTO, mask=MASK, backend="mediapipe")
    fitter = engine.fitter(ReconstructConfig().fit)
    fit = fitter.fit(evidence_from_inputs(inputs), seed=0)
    return engine.model, inputs, fit, fitter


@pytest.fixture(scope="module")
def bake(fitted):
    from d3dface.outputs.texture_bake import bake_fit_texture

    model, inputs, fit, _ = fitted
    return bake_fit_texture(model, fit, inputs, RUN_TIME_TEXTURE)


def photo_projection(vertices, camera, crop_box):
    """Photo pixels of (V, 3) points by OpenCV's projectPoints: our camera (y up, looking down -z)
    is OpenCV's with y and z flipped; the crop box maps crop pixels to photo pixels."""
    flip = np.diag([1.0, -1.0, -1.0])
    R, _ = cv2.Rodrigues(np.asarray(camera["rotation"], np.float64))
    rvec, _ = cv2.Rodrigues(flip @ R)
    tvec = flip @ np.asarray(camera["translation"], np.float64)
    x0, y0, x1, _ = crop_box
    per_photo_px = camera["image_size"][1] / (x1 - x0)
    f = np.asarray(camera["focal"], np.float64) / per_photo_px
    c = np.asarray(camera["principal"], np.float64) / per_photo_px + [x0, y0]
    K = np.array([[f[0], 0, c[0]], [0, f[1], c[1]], [0, 0, 1]])
    pix, _ = cv2.projectPoints(np.asarray(vertices, np.float64), rvec, tvec, K, None)
    return pix[:, 0], -R.T @ np.asarray(camera["translation"], np.float64)


def vertex_texels(model) -> np.ndarray:
    """(V, 2) row, column of the texel holding each vertex's (first) UV point."""
    vt = np.zeros(model.num_vertices, np.int64)
    vt[model.faces.ravel()[::-1]] = model.uv_faces.ravel()[::-1]
    uv = model.uvs[vt]
    return np.stack([np.floor((1 - uv[:, 1]) * S), np.floor(uv[:, 0] * S)], 1).astype(np.int64).clip(0, S - 1)


# ---- the photo where the photo shows the face ---------------------------------------------
def test_visible_face_vertices_carry_the_photo_colour_at_their_projection(fitted, bake):
    model, inputs, fit, _ = fitted
    v = fit.vertices.astype(np.float64)
    pix, eye = photo_projection(v, fit.camera, inputs.crop.box)
    normals = trimesh.Trimesh(v, model.faces, process=False).vertex_normals
    ray = eye - v
    cos = (normals * ray).sum(1) / np.linalg.norm(ray, axis=1)
    H, W = inputs.occlusion_mask.shape
    far_from_mask = cv2.distanceTransform((~inputs.occlusion_mask).astype(np.uint8), cv2.DIST_L2, 5)
    col, row = np.rint(pix).astype(np.int64).T
    inside = (col >= 2) & (col < W - 2) & (row >= 2) & (row < H - 2)
    face = np.zeros(model.num_vertices, bool)
    face[model.regions["face"]] = True
    candidates = face & ~fit.occluded & (cos > 0.7) & inside
    candidates &= far_from_mask[row.clip(0, H - 1), col.clip(0, W - 1)] > 10
    r, c = vertex_texels(model).T
    used = candidates & bake.covered[r, c] & (bake.weight[r, c] > 0.999)
    # the bake uses the photo on most of what an independent test calls plainly visible
    assert candidates.sum() > 200 and used.sum() > 0.5 * candidates.sum(), (candidates.sum(), used.sum())
    # the texel holding a vertex projects to where OpenCV projects the vertex (within the
    # texel's own footprint: about 0.3 photo px per texel here)
    offset = np.linalg.norm(bake.photo_xy[r, c] - pix, axis=1)[used]
    assert offset.max() < 0.5, offset.max()
    # so its colour is bilinear in the photo's 3x3 pixels around the vertex: inside their range,
    # give or take one 8-bit step and OpenCV's 1/32-pixel bilinear weights (2 steps)
    photo = inputs.image.astype(np.int64)
    idx = np.flatnonzero(used)
    patches = np.stack([photo[row[idx] + dy, col[idx] + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
    baked = bake.image[r[idx], c[idx]].astype(np.int64)
    below = patches.min(1) - baked
    above = baked - patches.max(1)
    assert max(below.max(), above.max()) <= 3, (below.max(), above.max())


# ---- nothing of the occluder --------------------------------------------------------------
def test_the_occluder_does_not_leak_into_the_texture(fitted, bake):
    from d3dface.outputs.texture_bake import bake_texture

    model, inputs, fit, _ = fitted
    repainted = inputs.image.copy()
    repainted[inputs.occlusion_mask] = (0, 255, 0)  # the glasses become pure green
    again = bake_texture(model, fit.vertices, fit.camera, inputs.crop.box, repainted, inputs.occlusion_mask,
                         fit.albedo, RUN_TIME_TEXTURE, fit.params["gain"])
    # not one texel changes: nothing under the mask reaches the texture, neither directly
    # nor through the fill
    diff = np.abs(again.image.astype(np.int64) - bake.image.astype(np.int64))
    assert diff.max() == 0, (diff.max(), (diff > 0).sum())
    # texels that project into the mask are the albedo fill alone (no photo weight)
    xy = bake.photo_xy[bake.covered]
    col, row = np.rint(xy).astype(np.int64).T
    H, W = inputs.occlusion_mask.shape
    ok = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    under = np.zeros(len(xy), bool)
    under[ok] = inputs.occlusion_mask[row[ok], col[ok]]
    assert under.sum() > 10_000
    assert bake.weight[bake.covered][under].max() == 0.0
    fill = np.clip(bake.fill[bake.covered][under], 0, 1)
    assert np.abs(bake.image[bake.covered][under] / 255 - fill).max() <= LEVEL
    # and the fill is no glasses: it is far from the lenses' and frames' colour in the photo
    occluder = inputs.image[inputs.occlusion_mask].astype(np.float64).mean(0) / 255
    assert np.abs(fill.mean(0) - occluder).max() > 0.15, (fill.mean(0), occluder)


# ---- a complete image -----------------------------------------------------------------------
def test_the_texture_is_complete_finite_and_mipmaps_without_dark_borders(bake):
    assert bake.image.shape == (S, S, 3) and bake.image.dtype == np.uint8
    assert np.isfinite(bake.fill).all() and np.isfinite(bake.weight).all()
    assert bake.weight.min() >= 0 and bake.weight.max() <= 1
    assert np.isfinite(bake.photo_xy[bake.covered]).all()
    assert 0.5 < bake.covered.mean() < 0.95
    # mip level 3 (8 x 8 blocks): where a block holds any island texel, its average is the
    # island's own colour, not a mix with a dark background
    img = bake.image.astype(np.float64) / 255
    cov = bake.covered.astype(np.float64)
    block = lambda a: a.reshape(S // 8, 8, S // 8, 8, -1).sum((1, 3))  # noqa: E731
    n = block(cov[..., None])[..., 0]
    some = (n > 0) & (n < 64)  # blocks on an island border
    island = block(img * cov[..., None])[some] / n[some][:, None]
    mip = block(img)[some] / 64
    err = np.abs(mip - island).max(1)
    assert some.sum() > 200
    assert err.mean() < 3 * LEVEL and np.percentile(err, 99) < 12 * LEVEL, (err.mean() * 255, np.percentile(err, 99) * 255)


def seam_edges(model) -> list:
    """Pairs ((face, uv a, uv b), (face, uv a, uv b)) of UV edges that are one mesh edge."""
    edges: dict = {}
    for f, (tri, uvt) in enumerate(zip(model.faces, model.uv_faces)):
        for k in range(3):
            a, b, ua, ub = tri[k], tri[(k + 1) % 3], uvt[k], uvt[(k + 1) % 3]
            edges.setdefault((min(a, b), max(a, b)), []).append((f, ua, ub) if a < b else (f, ub, ua))
    return [tuple(e) for e in edges.values() if len(e) == 2 and e[0][1:] != e[1][1:]]


def test_colour_is_continuous_across_uv_seams(fitted, bake):
    from d3dface.outputs.texture_bake import sample_bilinear

    model = fitted[0]
    img = bake.image.astype(np.float32) / 255
    xy = np.stack([model.uvs[:, 0] * S - 0.5, (1 - model.uvs[:, 1]) * S - 0.5], 1)

    def inset(f, ua, ub, t, d):
        """A point at t along the UV edge, d texels into its triangle."""
        p = (1 - t) * xy[ua] + t * xy[ub]
        opp = next(x for x in model.uv_faces[f] if x not in (ua, ub))
        return p + d * (xy[opp] - p) / np.linalg.norm(xy[opp] - p)

    pairs = seam_edges(model)
    assert len(pairs) > 50  # the back of the head and both eyeballs' front/back
    D = 0.75
    pts = {k: [] for k in ("a", "b", "a3", "b3")}
    for (fa, a0, a1), (fb, b0, b1) in pairs:
        for t in (0.25, 0.5, 0.75):
            pts["a"].append(inset(fa, a0, a1, t, D))
            pts["b"].append(inset(fb, b0, b1, t, D))
            pts["a3"].append(inset(fa, a0, a1, t, 3 * D))
            pts["b3"].append(inset(fb, b0, b1, t, 3 * D))
    c = {k: sample_bilinear(img, np.array(v)) for k, v in pts.items()}
    # across the seam the two samples are 2D texels apart on the surface; the colour change
    # over the same 2D texels within each side is the yardstick
    seam = np.abs(c["a"] - c["b"]).max(1)
    within = np.maximum(np.abs(c["a"] - c["a3"]).max(1), np.abs(c["b"] - c["b3"]).max(1))
    assert seam.mean() <= within.mean() + 2 * LEVEL, (seam.mean() * 255, within.mean() * 255)
    assert np.mean(seam > within + 6 * LEVEL) < 0.02


# ---- the reconstruction's files, and Blender ------------------------------------------------
@pytest.fixture(scope="module")
def written(fitted, tmp_path_factory):
    """The outputs stage of ``d3dface reconstruct`` on the fit (one "sample": the fit itself)."""
    from d3dface.outputs.reconstruction_files import write_reconstruction
    from d3dface.outputs.result_file import ReconstructionResult

    model, inputs, fit, fitter = fitted
    zeros = np.zeros((10, 64), np.float32)
    result = ReconstructionResult(
        fit_vertices=fit.vertices, visible_fit_vertices=fit.vertices, samples=fit.vertices[None],
        latents=zeros[None], mu=zeros, logvar=zeros, occluded=fit.occluded, faces=model.faces, uvs=model.uvs,
        uv_faces=model.uv_faces, camera=fit.camera, crop_box=np.asarray(inputs.crop.box, np.float64),
        image_size=tuple(inputs.image.shape[:2]), image_path=str(PHOTO.resolve()), head_model="open default")
    folder = tmp_path_factory.mktemp("reconstruction")
    write_reconstruction(folder, result, inputs, fit, fitter.renderer, model, RUN_TIME_TEXTURE)
    return folder


def test_the_reconstruction_writes_the_texture_its_materials_and_its_scene_key(written, bake):
    png = cv2.imread(str(written / "texture.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (S, S, 3) and np.array_equal(png[..., ::-1], bake.image)
    assert not list(written.glob(".*tmp*"))  # written atomically: no temporary left
    with np.load(written / "blender_scene.npz") as d:
        assert str(d["photo_texture"]) == "texture.png"
    assert "map_Kd texture.png" in (written / "head.mtl").read_text()
    assert "map_Kd ../texture.png" in (written / "samples" / "head.mtl").read_text()
    for obj in (written / "fit.obj", written / "samples" / "sample_01.obj"):
        lines = obj.read_text().splitlines()
        assert "mtllib head.mtl" in lines[:3] and "usemtl d3dface_head" in lines


def test_blender_gets_an_image_texture_material_packed_into_the_blend(written, tmp_path):
    bpy = pytest.importorskip("bpy")
    import addon_utils
    from addon_helpers import enable_from_source

    bpy.ops.wm.read_factory_settings(use_empty=True)
    enable_from_source(tmp_path / "cache")
    try:
        res = bpy.ops.d3dface.apply_result(result_path=str(written / "result.npz"),
                                           scene_path=str(written / "blender_scene.npz"))
        assert res == {"FINISHED"}
        obj = next(o for o in bpy.data.objects if o.type == "MESH")
        assert {"UVMap", "Photo"} <= {uv.name for uv in obj.data.uv_layers}
        assert "d3dface_visible" in obj.data.attributes
        check_material(obj.active_material)
        blend = tmp_path / "result.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
        moved = written / "texture.moved.png"
        os.replace(written / "texture.png", moved)  # the .blend must not need the file
        try:
            bpy.ops.wm.open_mainfile(filepath=str(blend))
            obj = next(o for o in bpy.data.objects if o.type == "MESH")
            img = check_material(obj.active_material)
            px = np.empty(S * S * 4, np.float32)
            img.pixels.foreach_get(px)
            assert px.reshape(S, S, 4)[..., :3].std() > 0.05  # the pixels came from the .blend
        finally:
            os.replace(moved, written / "texture.png")
    finally:
        addon_utils.disable("d3dface_addon", default_set=True)


def check_material(mat):
    """The material's base colour is an image texture on the FLAME UV map, its image 1024 x 1024
    and packed; returns the image."""
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    link = bsdf.inputs["Base Color"].links[0]
    tex = link.from_node
    assert tex.type == "TEX_IMAGE" and tex.image is not None
    assert tuple(tex.image.size) == (S, S) and tex.image.packed_file is not None
    uv = tex.inputs["Vector"].links[0].from_node
    assert uv.type == "UVMAP" and uv.uv_map == "UVMap"
    return tex.image

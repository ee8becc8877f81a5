"""Write a reconstruction into the scene: one FLAME mesh object with shape keys, a material,
the photo on a camera aligned with the fitted camera, and an armature where the head model
has LBS. Arrays go straight into ``foreach_set`` buffers; every number that needs computing
comes from the engine (``blender_scene.npz``, DESIGN 2.1).

Conventions (DESIGN 3.2): shape-key coordinates are the engine's vertices exactly (FLAME
axes, metres); the object carries a +90 degree rotation about x (FLAME y-up -> Blender z-up).
Keys: "Basis" (the neutral fit: the fit without its expression and jaw pose), "Visible fit",
"Sample 01".."Sample M" (neutral too: they differ from Basis in identity only), any "Interp"
keys, then the expression keys (the 52 ARKit names and the model's halves, ``arkit.py`` in the
engine) set to the photo's expression; with the rig's pose (the jaw) the object shows the fit.
Results of older engines (no neutral) keep "Basis" = the fit and get no expression keys.
Latents and settings are stored in the object's ``d3dface`` custom property.

Every function either completes or removes what it created and re-raises (the caller turns
the error into a report); the operators around them make the whole change one undo step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from . import stored_runs, uncertainty
from .result_reader import ResultData

PROP = "d3dface"
KEY_BASIS = "Basis"
KEY_VISIBLE = "Visible fit"
ATTR_VISIBLE = "d3dface_visible"
ATTR_DIVERSITY = "d3dface_diversity"
UV_FLAME = "UVMap"
UV_PHOTO = "Photo"
SKIN_RGBA = (0.80, 0.62, 0.52, 1.0)
ROTATION = (math.radians(90.0), 0.0, 0.0)  # FLAME y-up -> Blender z-up, an object transform

MODES = ("NEW", "REPLACE", "ADD")


def sample_key_name(k: int) -> str:
    """1-based sample number -> "Sample 01"."""
    return f"Sample {k:02d}"


def interp_key_name(i: int, j: int, alpha: float) -> str:
    return f"Interp {i:02d}-{j:02d} {alpha:.2f}"


def is_d3dface_object(obj) -> bool:
    return obj is not None and obj.type == "MESH" and PROP in obj.keys() and obj.data.shape_keys is not None


class _Created:
    """Datablocks made during one write; removed again if the write fails."""

    def __init__(self):
        self.ids: list = []

    def add(self, idb):
        self.ids.append(idb)
        return idb

    def rollback(self) -> None:
        for idb in reversed(self.ids):
            try:
                coll = {bpy.types.Object: bpy.data.objects, bpy.types.Mesh: bpy.data.meshes,
                        bpy.types.Material: bpy.data.materials, bpy.types.Camera: bpy.data.cameras,
                        bpy.types.Armature: bpy.data.armatures, bpy.types.Collection: bpy.data.collections,
                        bpy.types.Image: bpy.data.images}
                for cls, data in coll.items():
                    if isinstance(idb, cls):
                        data.remove(idb)
                        break
            except (ReferenceError, RuntimeError):
                pass


# ---- mesh -------------------------------------------------------------------------------
def build_mesh(name: str, r: ResultData) -> bpy.types.Mesh:
    V, F = r.num_vertices, int(r.faces.shape[0])
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", r.basis.reshape(-1))
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", r.faces.reshape(-1))
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.shade_smooth()
    if r.uvs is not None:
        uv = mesh.uv_layers.new(name=UV_FLAME)
        uv.data.foreach_set("uv", r.uvs[r.uv_faces].reshape(-1).astype(np.float32))
    if "photo_uv" in r.scene:
        uv = mesh.uv_layers.new(name=UV_PHOTO)
        uv.data.foreach_set("uv", r.scene["photo_uv"][r.faces].reshape(-1).astype(np.float32))
        if r.uvs is not None:
            mesh.uv_layers.active = mesh.uv_layers[UV_FLAME]
            mesh.uv_layers[UV_FLAME].active_render = True
    visible = r.scene["visible"] if "visible" in r.scene else (~r.occluded).astype(np.float32)
    mesh.attributes.new(ATTR_VISIBLE, "FLOAT", "POINT").data.foreach_set("value", visible.astype(np.float32))
    if r.diversity is not None and r.diversity.shape == (V,):
        mesh.attributes.new(ATTR_DIVERSITY, "FLOAT", "POINT").data.foreach_set("value", r.diversity.astype(np.float32))
    return mesh


def _set_key(obj, name: str, coords: np.ndarray):
    kb = obj.data.shape_keys.key_blocks.get(name) if obj.data.shape_keys else None
    if kb is None:
        kb = obj.shape_key_add(name=name, from_mix=False)
        kb.value = 0.0  # (Blender starts a new key at 1: the object would show every sample at once)
    kb.data.foreach_set("co", np.ascontiguousarray(coords, np.float32).reshape(-1))
    return kb


def read_key(obj, name: str) -> np.ndarray:
    """(V, 3) coordinates of a shape key (for tests and the API)."""
    kb = obj.data.shape_keys.key_blocks[name]
    out = np.empty(len(kb.data) * 3, np.float32)
    kb.data.foreach_get("co", out)
    return out.reshape(-1, 3)


# ---- stored data ------------------------------------------------------------------------
def _store(obj, r: ResultData, sample_names: list[str], append: bool) -> None:
    old = obj.get(PROP)
    prev = old.to_dict() if (append and old is not None) else {}
    lat = r.latents.reshape(r.num_samples, -1)
    sources = list(prev.get("sample_results", [])) + [r.path] * r.num_samples
    indices = list(prev.get("sample_indices", [])) + list(range(r.num_samples))
    latents = list(prev.get("latents", [])) + lat.reshape(-1).tolist()
    runs, sample_runs = stored_runs.appended(prev, r)  # what interpolation needs without the result file
    obj[PROP] = {
        "format": 2,
        "result_path": r.path,
        "image_path": r.image_path,
        "head_model": r.head_model,
        "settings_json": json.dumps(r.settings, sort_keys=True),
        "versions_json": json.dumps(r.versions, sort_keys=True),
        "camera_json": json.dumps(r.camera),
        "latent_shape": list(r.latents.shape[1:]),
        "latents": latents,
        "mu": r.mu.reshape(-1).tolist(),
        "logvar": r.logvar.reshape(-1).tolist(),
        "sample_keys": list(prev.get("sample_keys", [])) + list(sample_names),
        "sample_results": sources,
        "sample_indices": indices,
        "runs": runs,
        "sample_runs": sample_runs,
        "basis": str(prev.get("basis", "fit")) if append else ("neutral" if r.has_neutral else "fit"),
        **(_photo_expression(r) if not append else {k: prev[k] for k in PHOTO_KEYS if k in prev}),
    }


PHOTO_KEYS = ("expression_keys", "photo_expression", "photo_pose")


def _photo_expression(r: ResultData) -> dict:
    """The expression keys' names, the photo's values and the fitted pose per bone, as stored."""
    s = r.scene
    if not r.has_neutral or "expression_key_names" not in s:
        return {}
    names = list(s["expression_key_names"])
    out = {"expression_keys": names,
           "photo_expression": {n: float(v) for n, v in zip(names, s["expression_key_values"].tolist())}}
    if "pose_quaternions" in s:
        out["photo_pose"] = {str(b): [float(v) for v in q] for b, q in zip(s["joint_names"], s["pose_quaternions"])}
    return out


def stored(obj) -> dict:
    """The object's stored reconstruction data (plain Python values)."""
    return obj[PROP].to_dict()


def stored_latents(obj) -> np.ndarray:
    """(M, ...) latents of the object's samples, in "Sample NN" order."""
    d = stored(obj)
    return np.asarray(d["latents"], np.float32).reshape(-1, *d["latent_shape"])


# ---- material ---------------------------------------------------------------------------
def _socket(sockets, identifier: str):
    return next(s for s in sockets if s.identifier == identifier)


def build_material(name: str, photo, mean_texture, baked=None) -> bpy.types.Material:
    """Principled BSDF coloured by the engine's baked texture (``baked``, the photo in the UV
    layout, on the FLAME UV map) when there is one; else by the photo (projected through the
    fitted camera) where the photo shows the face (attribute d3dface_visible), the mean texture
    (or skin colour) elsewhere."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0) and not mat.use_nodes:
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.6
    if baked is not None:
        tex = nt.nodes.new("ShaderNodeTexImage")
        tex.image = baked
        tex.label = "Baked photo"
        tex.extension = "EXTEND"
        tex.location = (-500, 200)
        uv = nt.nodes.new("ShaderNodeUVMap")
        uv.uv_map = UV_FLAME
        uv.location = (-750, 200)
        nt.links.new(uv.outputs["UV"], tex.inputs["Vector"])
        nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat
    if mean_texture is not None:
        fallback = nt.nodes.new("ShaderNodeTexImage")
        fallback.image = mean_texture
        fallback.location = (-700, 200)
        uv = nt.nodes.new("ShaderNodeUVMap")
        uv.uv_map = UV_FLAME
        uv.location = (-950, 200)
        nt.links.new(uv.outputs["UV"], fallback.inputs["Vector"])
        fallback_out = fallback.outputs["Color"]
    else:
        fallback = None
        fallback_out = None
    if photo is None:
        if fallback_out is not None:
            nt.links.new(fallback_out, bsdf.inputs["Base Color"])
        else:
            bsdf.inputs["Base Color"].default_value = SKIN_RGBA
        return mat
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = photo
    tex.extension = "EXTEND"
    tex.location = (-700, -100)
    uvp = nt.nodes.new("ShaderNodeUVMap")
    uvp.uv_map = UV_PHOTO
    uvp.location = (-950, -100)
    nt.links.new(uvp.outputs["UV"], tex.inputs["Vector"])
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = ATTR_VISIBLE
    attr.location = (-700, 450)
    mix = nt.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.location = (-350, 100)
    nt.links.new(attr.outputs["Fac"], _socket(mix.inputs, "Factor_Float"))
    if fallback_out is not None:
        nt.links.new(fallback_out, _socket(mix.inputs, "A_Color"))
    else:
        _socket(mix.inputs, "A_Color").default_value = SKIN_RGBA
    nt.links.new(tex.outputs["Color"], _socket(mix.inputs, "B_Color"))
    nt.links.new(_socket(mix.outputs, "Result_Color"), bsdf.inputs["Base Color"])
    return mat


def _load_image(path: str, created: _Created, existing: str = ""):
    if existing and existing in bpy.data.images:
        return bpy.data.images[existing]
    if not path or not Path(path).is_file():
        return None
    before = set(bpy.data.images)
    img = bpy.data.images.load(path, check_existing=True)
    if img not in before:
        created.add(img)
    return img


def baked_texture_path(r: ResultData) -> str:
    """The baked texture of ``blender_scene.npz`` (a path relative to the result's folder), or ""."""
    rel = str(np.asarray(r.scene.get("photo_texture", ""))[()]) if r.scene else ""
    if not rel:
        return ""
    path = Path(r.path).parent / rel
    return str(path) if path.is_file() else ""


def load_baked_texture(r: ResultData, name: str, created: _Created):
    """The baked texture as a new image packed into the .blend (the file may be overwritten by
    the next job, and the .blend stays self-contained), or None."""
    path = baked_texture_path(r)
    if not path:
        return None
    img = created.add(bpy.data.images.load(path, check_existing=False))
    img.name = name
    img.pack()
    return img


# ---- camera, photo, rig -----------------------------------------------------------------
def build_camera(name: str, head, r: ResultData, photo, coll, created: _Created):
    s = r.scene
    cam = created.add(bpy.data.cameras.new(name))
    cam.sensor_fit = "AUTO"
    cam.sensor_width = float(s["camera_sensor_mm"])
    cam.lens = float(s["camera_lens_mm"])
    cam.shift_x, cam.shift_y = (float(v) for v in s["camera_shift"])
    cam.clip_start, cam.clip_end = 0.01, 100.0
    cam_obj = created.add(bpy.data.objects.new(name, cam))
    coll.objects.link(cam_obj)
    cam_obj.parent = head  # the camera follows the head: the overlay stays aligned
    cam_obj.matrix_parent_inverse = Matrix.Identity(4)
    cam_obj.matrix_basis = Matrix(s["camera_matrix"].tolist())
    plane = None
    if photo is not None:
        cam.show_background_images = True
        bg = cam.background_images.new()
        bg.image = photo
        bg.frame_method = "STRETCH"
        bg.alpha = 1.0
        plane = created.add(bpy.data.objects.new(f"{name} Photo", None))
        coll.objects.link(plane)
        plane.empty_display_type = "IMAGE"
        plane.data = photo
        plane.empty_display_size = float(s["image_plane_size"])
        plane.empty_image_offset = (-0.5, -0.5)
        plane.parent = cam_obj
        plane.location = [float(v) for v in s["image_plane_location"]]
        plane.hide_select = True
    return cam_obj, plane


def build_rig(context, name: str, head, r: ResultData, coll, created: _Created):
    s = r.scene
    names, parents = s["joint_names"], [int(p) for p in s["parents"]]
    arm = created.add(bpy.data.armatures.new(name))
    arm_obj = created.add(bpy.data.objects.new(name, arm))
    coll.objects.link(arm_obj)
    arm_obj.rotation_euler = ROTATION
    arm_obj.show_in_front = True
    view_layer = context.view_layer
    prev_active = view_layer.objects.active
    view_layer.objects.active = arm_obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for j, bname in enumerate(names):
            eb = arm.edit_bones.new(bname)
            eb.head = [float(v) for v in s["bone_heads"][j]]
            eb.tail = [float(v) for v in s["bone_tails"][j]]
            if "bone_frames" in s:  # the engine's rest frame (its roll), so its pose rotations apply as given
                frame = Matrix(s["bone_frames"][j].tolist()).to_4x4()
                frame.translation = eb.head
                eb.matrix = frame
                eb.length = float(s["bone_lengths"][j])
            if parents[j] >= 0:
                eb.parent = bones[parents[j]]
            bones.append(eb)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = prev_active
    head.parent = arm_obj
    head.matrix_parent_inverse = Matrix.Rotation(ROTATION[0], 4, "X").inverted()
    groups = [head.vertex_groups.new(name=bname) for bname in names]
    verts, offsets = s["weight_vertices"], s["weight_offsets"]
    for k, (j, w) in enumerate(zip(s["weight_joint"].tolist(), s["weight_value"].tolist())):
        groups[j].add(verts[offsets[k]:offsets[k + 1]].tolist(), w, "REPLACE")
    mod = head.modifiers.new("Armature", "ARMATURE")
    mod.object = arm_obj
    pose_rig(arm_obj, r)
    add_eye_drivers(arm_obj, head, r)
    return arm_obj


def pose_rig(arm_obj, r: ResultData) -> None:
    """The fitted pose (the jaw) on the pose bones, as the engine gives it (quaternions in each
    bone's frame); the rest pose where the result has none."""
    s = r.scene
    quats = s.get("pose_quaternions")
    for j, name in enumerate(s["joint_names"]):
        pb = arm_obj.pose.bones.get(name)
        if pb is None or pb.rotation_mode != "QUATERNION":  # (the eyes: Euler, driven by the eyeLook keys)
            continue
        pb.rotation_quaternion = [float(v) for v in quats[j]] if quats is not None else (1.0, 0.0, 0.0, 0.0)


def add_eye_drivers(arm_obj, head, r: ResultData) -> None:
    """Each eye bone's Euler channels driven by its eyeLook keys with the engine's coefficients
    (a plain weighted sum: Blender's simple expressions, no Python needed to run them)."""
    s = r.scene
    if "eye_driver_bones" not in s or head.data.shape_keys is None:
        return
    names = s["joint_names"]
    for j, ch, keys, coefs in zip(s["eye_driver_bones"].tolist(), s["eye_driver_channels"].tolist(),
                                  s["eye_driver_keys"], s["eye_driver_coefs"].tolist()):
        pb = arm_obj.pose.bones[names[j]]
        pb.rotation_mode = "XYZ"
        fc = pb.driver_add("rotation_euler", ch)
        drv = fc.driver
        drv.type = "SCRIPTED"
        for k, key in enumerate(keys):
            var = drv.variables.new()
            var.name = f"k{k}"
            var.type = "SINGLE_PROP"
            var.targets[0].id_type = "KEY"
            var.targets[0].id = head.data.shape_keys
            var.targets[0].data_path = f'key_blocks["{key}"].value'
        drv.expression = " + ".join(f"({c!r}) * k{k}" for k, c in enumerate(coefs))


# ---- entry points -----------------------------------------------------------------------
def write_new_object(context, r: ResultData, name: str = "", photo_name: str = "",
                     set_scene_camera: bool = True, with_rig: bool = True):
    """Create the head object (and its camera, photo and rig) in a new collection; return it."""
    created = _Created()
    try:
        stem = name or (Path(r.image_path).stem if r.image_path else "Face")
        base = f"D3DFace {stem}"
        coll = created.add(bpy.data.collections.new(base))
        context.scene.collection.children.link(coll)
        mesh = created.add(build_mesh(base, r))
        obj = created.add(bpy.data.objects.new(base, mesh))
        coll.objects.link(obj)
        obj.rotation_euler = ROTATION
        _write_result_keys(obj, r)
        photo = _load_image(r.image_path, created, photo_name)
        baked = load_baked_texture(r, f"{base} Texture", created)
        mean_tex = _load_image(r.scene.get("mean_texture", ""), created) if r.scene and baked is None else None
        obj.data.materials.append(created.add(build_material(base, photo, mean_tex, baked)))
        cam_obj = None
        if r.scene:
            if with_rig and "bone_heads" in r.scene:
                build_rig(context, f"{base} Rig", obj, r, coll, created)
            cam_obj, _ = build_camera(f"{base} Camera", obj, r, photo, coll, created)
        for o in list(context.view_layer.objects):
            if o.select_get():
                o.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        if set_scene_camera and cam_obj is not None:
            context.scene.camera = cam_obj
            w, h = (int(v) for v in r.scene["photo_resolution"])
            context.scene.render.resolution_x, context.scene.render.resolution_y = w, h
            context.scene.render.resolution_percentage = 100
        return obj
    except BaseException:
        created.rollback()
        raise


def _write_result_keys(obj, r: ResultData) -> None:
    """Basis (the neutral fit), "Visible fit", "Sample 01".."Sample M", the expression keys at the
    photo's values, the stored latents and settings, and the samples' spread (``uncertainty``)."""
    _set_key(obj, KEY_BASIS, r.basis)
    _set_key(obj, KEY_VISIBLE, r.key_visible_fit)
    names = [sample_key_name(k + 1) for k in range(r.num_samples)]
    for nm, coords in zip(names, r.key_samples):
        _set_key(obj, nm, coords)
    write_expression_keys(obj, r)
    _store(obj, r, names, append=False)
    uncertainty.write_uncertainty(obj, r.scene)


def write_expression_keys(obj, r: ResultData) -> None:
    """One key per expression of ``blender_scene.npz`` (Basis plus its offset), at the photo's value
    and with a slider range that covers it."""
    s = r.scene
    if not r.has_neutral or "expression_key_offsets" not in s:
        return
    basis = r.basis
    for nm, off, val, (lo, hi) in zip(s["expression_key_names"], s["expression_key_offsets"],
                                      s["expression_key_values"].tolist(), s["expression_key_ranges"].tolist()):
        kb = _set_key(obj, nm, basis + off)
        kb.slider_min, kb.slider_max = float(lo), float(hi)
        kb.value = float(val)


def expression_key_names(obj) -> list[str]:
    """The object's expression keys (ARKit names first), in key order."""
    return list(stored(obj).get("expression_keys", []))


def _sample_keys(obj) -> list:
    return [kb for kb in obj.data.shape_keys.key_blocks if kb.name.startswith(("Sample ", "Interp "))]


def _expression_keys(obj) -> list:
    names = set(expression_key_names(obj)) if PROP in obj.keys() else set()
    return [kb for kb in obj.data.shape_keys.key_blocks if kb.name in names]


def check_target(obj, r: ResultData) -> None:
    if not is_d3dface_object(obj):
        raise ValueError("the target is not a Diverse3DFace object")
    if len(obj.data.vertices) != r.num_vertices:
        raise ValueError(f"the target has {len(obj.data.vertices)} vertices; the result has {r.num_vertices}")


def replace_samples(obj, r: ResultData):
    """The object's fit, visible fit, samples and expression become the new result's
    (interpolations go). The rig keeps its bones: the new fit's joints differ by its identity."""
    check_target(obj, r)
    for kb in _sample_keys(obj) + _expression_keys(obj):
        obj.shape_key_remove(kb)
    obj.data.vertices.foreach_set("co", r.basis.reshape(-1))
    obj.data.update()
    _write_result_keys(obj, r)
    arm = obj.parent if obj.parent is not None and obj.parent.type == "ARMATURE" else None
    if arm is not None:
        pose_rig(arm, r)
    return obj


def add_samples(obj, r: ResultData):
    """The new result's samples are appended after the object's last "Sample NN" key."""
    check_target(obj, r)
    d = stored(obj)
    shape = list(d.get("latent_shape", r.latents.shape[1:]))
    if shape != list(r.latents.shape[1:]):
        # one object stores one kind of latent: a Mesh-VAE run's and a "gaussian" run's differ
        raise ValueError(f"the object's samples have latents {tuple(shape)}, the new run's {tuple(r.latents.shape[1:])} "
                         "(another completion model): use Replace samples or a new object")
    existing = d.get("sample_keys", [])
    first = len(existing) + 1
    names = [sample_key_name(first + k) for k in range(r.num_samples)]
    # the object's keys are neutral heads (or, made by an older add-on, heads on their fit)
    samples = r.key_samples if d.get("basis", "fit") == "neutral" else r.samples
    for nm, coords in zip(names, samples):
        _set_key(obj, nm, coords)
    _store(obj, r, names, append=True)
    return obj


def add_interpolation_keys(obj, vertices: np.ndarray, alphas: np.ndarray, i: int, j: int) -> list[str]:
    """Shape keys decoded from z(alpha) between samples i and j (1-based), interior alphas only."""
    names = []
    for v, a in zip(vertices, alphas):
        if 0.0 < float(a) < 1.0:
            nm = interp_key_name(i, j, float(a))
            _set_key(obj, nm, v)
            names.append(nm)
    return names

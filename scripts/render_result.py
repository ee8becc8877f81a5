"""Headless Cycles renders of a reconstruction imported by the add-on: from the fitted camera, then
side, three-quarter and back views (the pictures of issue 20's note).

    .venv/bin/python scripts/render_result.py OUT_DIR STEM [side,three_quarter,back] [--to DIR]

OUT_DIR is a ``d3dface reconstruct`` output folder (result.npz, blender_scene.npz, texture.png);
the PNGs go to DIR (default: /tmp/texture_renders) as STEM_fitted_camera.png, STEM_side.png, ...
"""
import argparse
import math
import sys
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils, mathutils) on the path
import addon_utils  # noqa: E402
from mathutils import Vector  # noqa: E402

VIEWS = {"side": 90.0, "three_quarter": 40.0, "back": 180.0}  # degrees about the vertical axis
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", type=Path)
parser.add_argument("stem")
parser.add_argument("views", nargs="?", default=",".join(VIEWS))
parser.add_argument("--to", type=Path, default=Path("/tmp/texture_renders"))
opt = parser.parse_args()
folder, stem, dest = opt.folder, opt.stem, opt.to
dest.mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: d3dface_addon
bpy.ops.wm.read_factory_settings(use_empty=True)
assert addon_utils.enable("d3dface_addon", default_set=True, handle_error=None) is not None
assert bpy.ops.d3dface.apply_result(result_path=str(folder / "result.npz"), scene_path=str(folder / "blender_scene.npz")) == {"FINISHED"}
scene = bpy.context.scene
head = next(o for o in scene.objects if o.type == "MESH")
mat = head.active_material
tex = next(n for n in mat.node_tree.nodes if n.type == "TEX_IMAGE")
print("material", mat.name, "image", tex.image.name, tuple(tex.image.size), "packed", tex.image.packed_file is not None)
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 24
scene.cycles.use_denoising = False
scene.view_settings.view_transform = "Standard"
world = bpy.data.worlds.new("W"); scene.world = world
world.use_nodes = True if bpy.app.version < (5, 0, 0) else world.use_nodes
bg = world.node_tree.nodes["Background"]; bg.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1); bg.inputs["Strength"].default_value = 1.0
sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN")); scene.collection.objects.link(sun)
sun.data.energy = 1.5
bpy.context.view_layer.update()
corners = [head.matrix_world @ Vector(c) for c in head.bound_box]
centre = sum(corners, Vector()) / 8
fitted = scene.camera
sun.rotation_euler = fitted.matrix_world.to_euler()  # light from the photo's camera
scene.render.resolution_percentage = 200
scene.render.image_settings.file_format = "PNG"
scene.render.filepath = str(dest / f"{stem}_fitted_camera.png")
bpy.ops.render.render(write_still=True)
# a turntable camera: FLAME +x (the head's left) is Blender +x, its face looks toward -y
target = bpy.data.objects.new("Target", None); scene.collection.objects.link(target); target.location = centre
cam = bpy.data.objects.new("Side", bpy.data.cameras.new("Side")); scene.collection.objects.link(cam)
cam.data.lens = 85
con = cam.constraints.new("TRACK_TO"); con.target = target; con.track_axis = "TRACK_NEGATIVE_Z"; con.up_axis = "UP_Y"
scene.camera = cam
scene.render.resolution_x = scene.render.resolution_y = 512; scene.render.resolution_percentage = 100
for view, yaw in [(v, VIEWS[v]) for v in opt.views.split(",")]:
    a = math.radians(yaw)
    cam.location = centre + 0.95 * Vector((math.sin(a), -math.cos(a), 0.0))
    sun.rotation_euler = (math.radians(60), 0.0, a)
    scene.render.filepath = str(dest / f"{stem}_{view}.png")
    bpy.ops.render.render(write_still=True)
print("done")

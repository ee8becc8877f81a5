"""Headless Cycles renders of a reconstruction's head under its expression keys (issue 21's
pictures): the photo's expression, the neutral, then each key set alone at weight 1 on the
neutral, front and three-quarter, side by side in one sheet.

    .venv/bin/python scripts/render_expressions.py OUT_DIR [--keys mouthSmileLeft+mouthSmileRight,jawOpen,...]
                                                    [--to DIR]

OUT_DIR is a ``d3dface reconstruct`` output folder; the sheet goes to DIR/expressions.png (default
DIR: /tmp/expression_renders), with one PNG per state beside it.
"""
import argparse
import math
import sys
from pathlib import Path

import bpy  # first: it puts Blender's own modules (addon_utils, mathutils) on the path
import addon_utils  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Vector  # noqa: E402

DEFAULT_KEYS = "mouthSmileLeft+mouthSmileRight,jawOpen,jawOpen+mouthClose,eyeBlinkLeft+eyeBlinkRight,eyeLookUpLeft+eyeLookUpRight"
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", type=Path)
parser.add_argument("--keys", default=DEFAULT_KEYS)
parser.add_argument("--to", type=Path, default=Path("/tmp/expression_renders"))
opt = parser.parse_args()
opt.to.mkdir(parents=True, exist_ok=True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: d3dface_addon
bpy.ops.wm.read_factory_settings(use_empty=True)
assert addon_utils.enable("d3dface_addon", default_set=True, handle_error=None) is not None
assert bpy.ops.d3dface.apply_result(result_path=str(opt.folder / "result.npz"),
                                    scene_path=str(opt.folder / "blender_scene.npz")) == {"FINISHED"}
from d3dface_addon import api  # noqa: E402

scene = bpy.context.scene
head = next(o for o in scene.objects if o.type == "MESH")
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 16
scene.cycles.use_denoising = False
scene.view_settings.view_transform = "Standard"
scene.render.resolution_x = scene.render.resolution_y = 320
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
world = bpy.data.worlds.new("W")
scene.world = world
bg = world.node_tree.nodes["Background"]
bg.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1)
sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
scene.collection.objects.link(sun)
sun.data.energy = 2.0
sun.rotation_euler = (math.radians(70), 0.0, math.radians(-20))
bpy.context.view_layer.update()
corners = [head.matrix_world @ Vector(c) for c in head.bound_box]
centre = sum(corners, Vector()) / 8 + Vector((0.0, 0.0, 0.01))
target = bpy.data.objects.new("Target", None)
scene.collection.objects.link(target)
target.location = centre
cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
scene.collection.objects.link(cam)
cam.data.lens = 85
con = cam.constraints.new("TRACK_TO")
con.target, con.track_axis, con.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
scene.camera = cam
VIEWS = {"front": 0.0, "three_quarter": 35.0}  # degrees about the vertical axis; the face looks toward -y


def render(name: str) -> list:
    tiles = []
    for view, deg in VIEWS.items():
        a = math.radians(deg)
        cam.location = centre + Vector((0.55 * math.sin(a), -0.55 * math.cos(a), 0.0))
        scene.render.filepath = str(opt.to / f"{name}_{view}.png")
        bpy.ops.render.render(write_still=True)
        img = cv2.imread(scene.render.filepath)
        cv2.putText(img, f"{name} ({view})", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(img)
    return tiles


rows = [render("photo")]
api.set_expression(head, "neutral")
rows.append(render("neutral"))
blocks = head.data.shape_keys.key_blocks
for combo in opt.keys.split(","):
    api.set_expression(head, "neutral")
    for k in combo.split("+"):
        blocks[k].value = 1.0
    rows.append(render(combo.replace("+", "_")))
sheet = np.concatenate([np.concatenate(r, 1) for r in rows], 0)
half = (len(rows) + 1) // 2  # two columns of states
left, right = sheet[: half * 320], sheet[half * 320:]
if right.shape[0] < left.shape[0]:
    right = np.concatenate([right, np.full((left.shape[0] - right.shape[0], right.shape[1], 3), 255, np.uint8)], 0)
cv2.imwrite(str(opt.to / "expressions.png"), np.concatenate([left, right], 1))
print("wrote", opt.to / "expressions.png")

"""The panel's settings (one PropertyGroup on the scene) and the result modes."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import engine_defaults as D
from .preferences import DEVICES, get_prefs

RESULT_MODES = [("NEW", "New object", "Create a new head object"),
                ("REPLACE", "Replace samples", "Replace the active head's fit and samples with the new result"),
                ("ADD", "Add samples", "Append the new samples to the active head's shape keys")]


def _start_engine_early(self, context) -> None:
    """A photo was chosen: start the engine now (preference "Start the engine early")."""
    if getattr(get_prefs(), "start_engine_early", True):
        from .jobs import RUNNER

        RUNNER.prestart()


class D3DFaceSettings(bpy.types.PropertyGroup):
    image_source: EnumProperty(
        name="Image", default="FILE",
        items=[("FILE", "File", "An image file"), ("IMAGE", "Blend image", "An image already in the .blend file")])
    filepath: StringProperty(name="Photo", subtype="FILE_PATH", description="The photo of a (partly hidden) face",
                             update=_start_engine_early)
    image: PointerProperty(name="Image", type=bpy.types.Image, update=_start_engine_early)
    mask_mode: EnumProperty(
        name="Occlusion mask", default="AUTO",
        items=[("NONE", "None", "Nothing is occluded"), ("AUTO", "Auto", "Estimate the occluded parts automatically"),
               ("FILE", "File", "A mask image, white = occluded"),
               ("PAINTED", "Painted", "A mask painted over the photo in the Image Editor (erase alpha over what is hidden)")])
    mask_filepath: StringProperty(name="Mask", subtype="FILE_PATH")
    mask_image: PointerProperty(name="Mask image", type=bpy.types.Image)
    samples: IntProperty(name="Samples", default=D.SAMPLES, min=1, max=D.MAX_SAMPLES, description="Number of completions M")
    diversity: FloatProperty(name="Diversity", default=D.DIVERSITY, min=0.0, max=10.0,
                             description="Strength of the diversity (DPP) term")
    seed: IntProperty(name="Seed", default=D.SEED, min=0)
    device: EnumProperty(name="Device", items=[("DEFAULT", "Preferences", "The device set in the preferences"), *DEVICES],
                         default="DEFAULT")
    result_mode: EnumProperty(name="Result", items=RESULT_MODES, default="NEW")
    set_scene_camera: BoolProperty(name="Use fitted camera", default=True,
                                   description="Make the fitted camera the scene camera and match the render size to the photo")
    interp_a: IntProperty(name="From", default=1, min=1, description="First sample (Sample NN)")
    interp_b: IntProperty(name="To", default=2, min=1, description="Second sample (Sample NN)")
    interp_steps: IntProperty(name="Steps", default=D.INTERPOLATION_STEPS, min=3, max=33,
                              description="Points from A to B, ends included; the inner ones become shape keys")

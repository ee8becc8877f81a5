"""Diverse3DFace for Blender: one photo of a partly hidden face -> one FLAME head object with
a shape key per plausible completion (Dey & Boddeti, CVPR 2022).

The engine (package ``d3dface``) runs in a separate worker process; this add-on holds the
user interface, the worker client and the scene writer, and does no mathematics.
"""

from __future__ import annotations

import bpy

from . import operators, panel, preferences, properties
from .jobs import RUNNER

classes = (
    preferences.D3DFacePreferences,
    properties.D3DFaceSettings,
    *operators.classes,
    *panel.classes,
)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.d3dface = bpy.props.PointerProperty(type=properties.D3DFaceSettings)


def unregister():
    RUNNER.shutdown()
    del bpy.types.Scene.d3dface
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)

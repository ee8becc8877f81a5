"""Add-on preferences: head model, engine Python, device, cache folder, "Check engine"."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

DEVICES = [("AUTO", "Auto", "CUDA when the engine's torch has a GPU, else CPU"),
           ("CPU", "CPU", "Always the CPU"), ("CUDA", "CUDA", "An NVIDIA GPU (needs a CUDA build of torch)")]


class D3DFacePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    head_model: EnumProperty(
        name="Head model", default="DEFAULT",
        items=[("DEFAULT", "Open default", "The embedded open head model (ICT-FaceKit on FLAME topology)"),
               ("FILE", "FLAME file", "An official FLAME model (.pkl) or a d3dface head model (.npz)")])
    head_model_path: StringProperty(name="Head model file", subtype="FILE_PATH",
                                    description="FLAME generic_model.pkl (2020/2023) or a d3dface .npz")
    python_mode: EnumProperty(
        name="Engine Python", default="BLENDER",
        items=[("BLENDER", "Blender's Python", "Blender's own Python with the wheels bundled in the extension (CPU)"),
               ("EXTERNAL", "External", "Another Python 3.10+ interpreter with d3dface installed (e.g. CUDA torch)")])
    python_path: StringProperty(name="Interpreter", subtype="FILE_PATH",
                                description="Path of the external Python executable (with d3dface and torch installed)")
    device: EnumProperty(name="Device", items=DEVICES, default="AUTO")
    cache_dir: StringProperty(name="Cache folder", subtype="DIR_PATH",
                              description="Where jobs write their results and the worker its log (empty: the extension's user folder)")
    check_report: StringProperty(name="Engine", default="", options={"SKIP_SAVE"})
    start_engine_early: BoolProperty(
        name="Start the engine early", default=True,
        description="Start the engine and load its models when a photo is chosen, so that the first "
                    "reconstruction does not wait for them")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "head_model")
        if self.head_model == "FILE":
            col.prop(self, "head_model_path")
        col.prop(self, "python_mode")
        if self.python_mode == "EXTERNAL":
            col.prop(self, "python_path")
        col.prop(self, "device")
        col.prop(self, "cache_dir")
        col.prop(self, "start_engine_early")
        row = layout.row()
        row.operator("d3dface.check_engine", icon="CHECKMARK")
        if self.check_report:
            box = layout.box()
            for line in self.check_report.split(" | "):
                box.label(text=line)


class _Defaults:
    """Preferences when the add-on is not registered through the preferences (scripts, tests)."""

    head_model = "DEFAULT"
    head_model_path = ""
    python_mode = "BLENDER"
    python_path = ""
    device = "AUTO"
    cache_dir = ""
    check_report = ""
    start_engine_early = True


def get_prefs():
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None and addon.preferences is not None else _Defaults()


def cache_dir() -> Path:
    p = get_prefs().cache_dir
    if p:
        return Path(bpy.path.abspath(p))
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="cache", create=True))
    except (ValueError, RuntimeError, TypeError):
        return Path(tempfile.gettempdir()) / "d3dface-cache"


def engine_python() -> tuple[str, bool]:
    """(interpreter, is Blender's own)."""
    prefs = get_prefs()
    if prefs.python_mode == "EXTERNAL" and prefs.python_path:
        return bpy.path.abspath(prefs.python_path), False
    return sys.executable, True


def head_model_arg():
    prefs = get_prefs()
    if prefs.head_model == "FILE" and prefs.head_model_path:
        return bpy.path.abspath(prefs.head_model_path)
    return None


def device_arg(choice: str = "DEFAULT") -> str:
    return (get_prefs().device if choice in ("", "DEFAULT") else choice).lower()

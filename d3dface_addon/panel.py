"""3D Viewport > Sidebar > Diverse3DFace."""

from __future__ import annotations

import bpy

from . import scene_writer
from .jobs import RUNNER


class _Sidebar:
    """Where every panel of the add-on lives: the 3D view's sidebar, tab "Diverse3DFace"."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Diverse3DFace"


class _HeadSubPanel(_Sidebar):
    """A sub-panel of the main one, shown while a Diverse3DFace head is the active object."""

    bl_parent_id = "D3DFACE_PT_main"

    @classmethod
    def poll(cls, context):
        return scene_writer.is_d3dface_object(context.active_object)


class D3DFACE_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "Diverse3DFace"
    bl_idname = "D3DFACE_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.d3dface
        col = layout.column()
        col.enabled = not RUNNER.busy
        col.prop(s, "image_source", expand=True)
        if s.image_source == "FILE":
            col.prop(s, "filepath", text="")
        else:
            col.template_ID(s, "image", open="image.open")
        col.prop(s, "mask_mode")
        if s.mask_mode == "FILE":
            col.prop(s, "mask_filepath", text="")
        elif s.mask_mode == "PAINTED":
            row = col.row(align=True)
            row.prop(s, "mask_image", text="")
            row.operator("d3dface.paint_mask", text="", icon="BRUSH_DATA")
        col.separator()
        col.prop(s, "samples")
        col.prop(s, "diversity")
        col.prop(s, "seed")
        col.prop(s, "device")
        col.prop(s, "result_mode")
        col.prop(s, "set_scene_camera")

        job = RUNNER.job
        if RUNNER.busy and job is not None:
            box = layout.box()
            box.progress(factor=job.fraction, type="BAR", text=f"{job.text} ({job.fraction * 100:.0f}%)")
            box.operator("d3dface.cancel", icon="CANCEL")
        else:
            layout.operator("d3dface.reconstruct_start", icon="MESH_MONKEY")
            if RUNNER.last_message:
                icon = {"ERROR": "ERROR", "WARNING": "INFO"}.get(RUNNER.last_level, "CHECKMARK")
                layout.label(text=RUNNER.last_message, icon=icon)


class D3DFACE_PT_interpolate(_HeadSubPanel, bpy.types.Panel):
    bl_label = "Interpolate"
    bl_idname = "D3DFACE_PT_interpolate"

    def draw(self, context):
        s = context.scene.d3dface
        col = self.layout.column(align=True)
        col.enabled = not RUNNER.busy
        row = col.row(align=True)
        row.prop(s, "interp_a")
        row.prop(s, "interp_b")
        col.prop(s, "interp_steps")
        col.operator("d3dface.interpolate_start", icon="IPO_EASE_IN_OUT")


class D3DFACE_PT_export(_HeadSubPanel, bpy.types.Panel):
    bl_label = "Export"
    bl_idname = "D3DFACE_PT_export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        row = self.layout.row(align=True)
        row.operator("d3dface.export", text="glTF (.glb)", icon="EXPORT").format = "GLB"
        row.operator("d3dface.export", text="FBX (.fbx)", icon="EXPORT").format = "FBX"


class D3DFACE_PT_expressions(_HeadSubPanel, bpy.types.Panel):
    bl_label = "Expressions"
    bl_idname = "D3DFACE_PT_expressions"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return super().poll(context) and bool(scene_writer.expression_key_names(context.active_object))

    def draw(self, context):
        col = self.layout.column(align=True)
        row = col.row(align=True)
        row.operator("d3dface.set_expression", text="Photo", icon="USER").which = "PHOTO"
        row.operator("d3dface.set_expression", text="Neutral", icon="MESH_MONKEY").which = "NEUTRAL"
        col.operator("d3dface.import_arkit_csv", text="Import ARKit CSV", icon="IMPORT")


classes = (D3DFACE_PT_main, D3DFACE_PT_interpolate, D3DFACE_PT_expressions, D3DFACE_PT_export)

"""Export a head object with all its shape keys, through Blender's own exporters: glTF binary
(``io_scene_gltf2``) or FBX (``io_scene_fbx``). Only the head mesh is written (its shape keys,
UVs and material); the camera, photo and rig stay in the scene.

Units and axes: the shape keys are FLAME metres on an object turned +90 degrees about x. glTF
is y-up metres by definition: the exporter turns Blender's z-up into y-up (``export_yup``) and
the importer turns it back. FBX keeps Blender units (metres) and records them as its unit scale
(``apply_unit_scale``, ``FBX_SCALE_NONE``, global scale 1), axes -Z forward, Y up, which
Blender's importer reverses. Modifiers are not applied (the shape keys are the stored ones).

The file is written to a temporary name in the target folder and renamed at the end, so a
failed export leaves no partial file; the selection, changed for the exporters, is restored.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import bpy

from . import scene_writer

GLTF_OPTIONS = {"export_format": "GLB", "use_selection": True, "export_yup": True, "export_apply": False,
                "export_morph": True, "export_animations": False, "export_skins": False, "export_cameras": False,
                "export_extras": False, "will_save_settings": False}
FBX_OPTIONS = {"use_selection": True, "object_types": {"MESH"}, "use_mesh_modifiers": False, "bake_anim": False,
               "add_leaf_bones": False, "global_scale": 1.0, "apply_unit_scale": True,
               "apply_scale_options": "FBX_SCALE_NONE", "axis_forward": "-Z", "axis_up": "Y",
               "mesh_smooth_type": "FACE", "use_custom_props": False, "path_mode": "AUTO"}
# format -> (extension, exporter operator name, exporter's add-on module, options)
FORMATS = {"GLB": (".glb", "gltf", "io_scene_gltf2", GLTF_OPTIONS), "FBX": (".fbx", "fbx", "io_scene_fbx", FBX_OPTIONS)}
KNOWN_EXTENSIONS = {".glb", ".gltf", ".fbx"}


class ExportError(ValueError):
    """An export the user asked for that cannot be done (one line)."""


def target_path(path, fmt: str) -> Path:
    """The file to write: ``path`` with the format's extension added when it has none."""
    ext = FORMATS[fmt][0]
    p = Path(bpy.path.abspath(str(path))).expanduser()
    if not p.name or p.is_dir():
        raise ExportError(f"{p} is a folder; give a file name")
    suffix = p.suffix.lower()
    if suffix == ext:
        return p
    if suffix in KNOWN_EXTENSIONS:
        raise ExportError(f"{p.name} ends in {p.suffix}, but a {fmt.lower()} file ends in {ext}")
    return p.with_name(p.name + ext)


def _exporter(name: str, module: str):
    """``bpy.ops.export_scene.<name>``, enabling Blender's bundled exporter add-on if needed."""
    op = getattr(bpy.ops.export_scene, name)
    try:
        op.get_rna_type()
    except KeyError:
        import addon_utils

        addon_utils.enable(module, default_set=False)
        try:
            op.get_rna_type()
        except KeyError:
            raise ExportError(f"Blender's exporter {module} is not available") from None
    return op


@contextmanager
def _only_selected(context, obj):
    """Select only ``obj`` (the exporters write the selection); restore selection and active after."""
    layer = context.view_layer
    if layer.objects.get(obj.name) is None or not obj.visible_get(view_layer=layer):
        raise ExportError(f"{obj.name} is not visible in the view layer; show it to export it")
    selected = {o.name for o in layer.objects if o.select_get()}
    active = layer.objects.active
    try:
        for o in layer.objects:
            o.select_set(o == obj)
        layer.objects.active = obj
        yield
    finally:
        for o in layer.objects:
            o.select_set(o.name in selected)
        layer.objects.active = active


def export_head(context, obj, path, fmt: str = "GLB") -> Path:
    """Write the head ``obj`` (all shape keys) as ``fmt`` ("GLB" or "FBX") to ``path``; returns the file."""
    fmt = str(fmt).upper()
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt.lower()!r} (choose glb or fbx)")
    if not scene_writer.is_d3dface_object(obj):
        raise ExportError("select a Diverse3DFace head to export")
    out = target_path(path, fmt)
    if not out.parent.is_dir():
        raise ExportError(f"the folder {out.parent} does not exist")
    ext, name, module, options = FORMATS[fmt]
    op = _exporter(name, module)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=ext, dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"cannot write to the folder {out.parent}: {exc.strerror or exc}") from None
    try:
        with _only_selected(context, obj):
            result = op(filepath=tmp, check_existing=False, **options)
        if "FINISHED" not in result or os.path.getsize(tmp) == 0:
            raise ExportError(f"the {fmt.lower()} exporter wrote nothing")
        os.replace(tmp, out)
    except RuntimeError as exc:  # an exporter's error report
        raise ExportError(f"the {fmt.lower()} exporter failed: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out

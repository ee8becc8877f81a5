"""Operators: thin over ``jobs`` (the worker) and ``scene_writer`` (the scene).

Scripting (blocking, one undo step each, return the scene change at once)::

    bpy.ops.d3dface.reconstruct(filepath="face.jpg", mask="auto", samples=8, seed=0,
                                diversity=1.0, device="DEFAULT", mode="NEW")
    bpy.ops.d3dface.interpolate(sample_a=1, sample_b=3, steps=5)   # on the active head
    bpy.ops.d3dface.export(filepath="head.glb", format="GLB")      # the active head, all shape keys
    bpy.ops.d3dface.set_expression(which="NEUTRAL")                 # or "PHOTO"
    bpy.ops.d3dface.import_arkit_csv(filepath="take.csv", start_frame=1)

The sidebar uses the non-blocking ``d3dface.reconstruct_start`` / ``interpolate_start``: the job
runs in the worker, a timer polls it, and the finished result is written by the internal
undoable ``d3dface.apply_result`` / ``apply_interpolation``, so the whole change is one undo
step and a failed, killed or cancelled job changes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import engine_defaults as D
from . import export, expressions, preferences, scene_writer, stored_runs
from .jobs import RUNNER, window_context
from .properties import RESULT_MODES
from .result_reader import ResultFileError, preload, read_interpolation, read_result
from .worker_client import EngineBusy

DEVICE_ITEMS = [("DEFAULT", "Preferences", ""), ("AUTO", "Auto", ""), ("CPU", "CPU", ""), ("CUDA", "CUDA", "")]


# ---- inputs for the engine ----------------------------------------------------------------
def _image_file(img, job_dir: Path, stem: str) -> str:
    """A file the engine can read for a .blend image: its own file when it is saved and
    unchanged, else its pixels as an .npy (the worker turns them into a PNG)."""
    path = bpy.path.abspath(img.filepath, library=img.library) if img.filepath else ""
    if img.source == "FILE" and path and os.path.isfile(path) and not img.packed_file and not img.is_dirty:
        return path
    w, h = img.size
    if w == 0 or h == 0:
        raise ValueError(f"image {img.name!r} has no pixels")
    px = np.empty(w * h * img.channels, np.float32)
    img.pixels.foreach_get(px)
    out = job_dir / f"{stem}.npy"
    np.save(out, px.reshape(h, w, img.channels))
    return str(out)


def reconstruct_args(filepath: str, mask: str, samples: int, seed: int, diversity: float, device: str,
                     job_dir: Path, mask_from_alpha: bool = False) -> dict:
    return {"image": filepath, "mask": mask, "mask_from_alpha": mask_from_alpha, "samples": int(samples),
            "seed": int(seed), "diversity": float(diversity), "device": preferences.device_arg(device),
            "model": preferences.head_model_arg(), "out_dir": str(job_dir)}


def args_from_settings(s, job_dir: Path) -> tuple[dict, str]:
    """(engine args, name of the .blend photo image or "") from the sidebar settings."""
    photo_name = ""
    if s.image_source == "IMAGE":
        if s.image is None:
            raise ValueError("choose an image")
        filepath, photo_name = _image_file(s.image, job_dir, "photo"), s.image.name
    else:
        if not s.filepath:
            raise ValueError("choose a photo")
        filepath = bpy.path.abspath(s.filepath)
    from_alpha = False
    if s.mask_mode == "FILE":
        if not s.mask_filepath:
            raise ValueError("choose a mask file, or another mask mode")
        mask = bpy.path.abspath(s.mask_filepath)
    elif s.mask_mode == "PAINTED":
        if s.mask_image is None:
            raise ValueError("paint a mask first (Paint mask)")
        mask, from_alpha = _image_file(s.mask_image, job_dir, "mask"), True
    else:
        mask = s.mask_mode.lower()
    args = reconstruct_args(filepath, mask, s.samples, s.seed, s.diversity, s.device, job_dir, from_alpha)
    return args, photo_name


def apply_reconstruction(context, result_path: str, scene_path: str, mode: str = "NEW", target: str = "",
                         name: str = "", photo_name: str = "", set_scene_camera: bool = True):
    """Read the engine's files (all checks first), then write the scene; returns the object."""
    r = read_result(result_path, scene_path)
    if mode == "NEW":
        return scene_writer.write_new_object(context, r, name=name, photo_name=photo_name,
                                             set_scene_camera=set_scene_camera)
    obj = bpy.data.objects.get(target) if target else context.active_object
    if not scene_writer.is_d3dface_object(obj):
        raise ValueError("Replace/Add samples needs a Diverse3DFace head as the target (or the active object)")
    scene_writer.check_target(obj, r)
    return scene_writer.replace_samples(obj, r) if mode == "REPLACE" else scene_writer.add_samples(obj, r)


def _target_name(context, mode: str, target: str) -> str:
    if mode == "NEW" or target:
        return target
    obj = context.active_object
    if not scene_writer.is_d3dface_object(obj):
        raise ValueError("Replace/Add samples needs an active Diverse3DFace head")
    return obj.name


def _fail(op, message: str) -> set:
    op.report({"ERROR"}, f"Diverse3DFace: {message}")
    RUNNER.last_message, RUNNER.last_level = message, "ERROR"
    return {"CANCELLED"}


# ---- reconstruct --------------------------------------------------------------------------
class D3DFACE_OT_reconstruct(bpy.types.Operator):
    """Reconstruct a set of 3D heads from one photo (blocks until done; for scripts)"""

    bl_idname = "d3dface.reconstruct"
    bl_label = "Reconstruct (blocking)"
    bl_options = {"UNDO"}

    filepath: StringProperty(name="Photo", subtype="FILE_PATH")
    mask: StringProperty(name="Mask", default=D.MASK, description="auto, none, or a mask image (white = occluded)")
    samples: IntProperty(name="Samples", default=D.SAMPLES, min=1, max=D.MAX_SAMPLES)
    seed: IntProperty(name="Seed", default=D.SEED, min=0)
    diversity: FloatProperty(name="Diversity", default=D.DIVERSITY, min=0.0)
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="DEFAULT")
    mode: EnumProperty(name="Result", items=RESULT_MODES, default="NEW")
    target: StringProperty(name="Target", description="Object for Replace/Add (default: the active object)")
    name: StringProperty(name="Name", description="Object name suffix (default: the photo's name)")
    set_scene_camera: BoolProperty(name="Use fitted camera", default=True)
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, description="Seconds (0: none)")

    def execute(self, context):
        try:
            target = _target_name(context, self.mode, self.target)
            job_dir = RUNNER.new_job_dir()
            args = reconstruct_args(bpy.path.abspath(self.filepath), self.mask, self.samples, self.seed,
                                    self.diversity, self.device, job_dir)
            job = RUNNER.run_sync("reconstruct", args, timeout=self.timeout or None)
        except (EngineBusy, ValueError, RuntimeError, OSError) as exc:
            return _fail(self, str(exc))
        if job.state == "cancelled":
            return _fail(self, "cancelled; the scene is unchanged")
        if job.state != "done":
            return _fail(self, job.message)
        try:
            t0 = time.perf_counter()
            obj = apply_reconstruction(context, job.result_path, job.scene_path, self.mode, target, self.name,
                                       "", self.set_scene_camera)
            RUNNER.stats.last_apply_ms = (time.perf_counter() - t0) * 1000.0
        except (ResultFileError, ValueError) as exc:
            return _fail(self, str(exc))
        RUNNER.last_object = obj.name
        self.report({"INFO"}, f"Diverse3DFace: {obj.name} with {job.info.get('samples', '?')} samples")
        return {"FINISHED"}


class D3DFACE_OT_reconstruct_start(bpy.types.Operator):
    """Reconstruct a set of 3D heads from the photo (runs in the background; Cancel stops it)"""

    bl_idname = "d3dface.reconstruct_start"
    bl_label = "Reconstruct"

    @classmethod
    def poll(cls, context):
        return not RUNNER.busy

    def execute(self, context):
        s = context.scene.d3dface
        try:
            target = _target_name(context, s.result_mode, "")
            job_dir = RUNNER.new_job_dir()
            args, photo_name = args_from_settings(s, job_dir)
            opts = {"mode": s.result_mode, "target": target, "photo_name": photo_name,
                    "set_scene_camera": s.set_scene_camera}

            def on_done(job):
                with window_context():
                    bpy.ops.d3dface.apply_result("EXEC_DEFAULT", True, result_path=job.result_path,
                                                 scene_path=job.scene_path, **opts)
                RUNNER.report("INFO", f"Diverse3DFace: {RUNNER.last_object} ready "
                                      f"({job.info.get('samples', '?')} samples)")

            RUNNER.start("reconstruct", args, on_done, label="reconstruct",
                         preload=lambda job: preload(job.result_path, job.scene_path))
        except (EngineBusy, ValueError, RuntimeError, OSError) as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}


class D3DFACE_OT_apply_result(bpy.types.Operator):
    """Write a finished reconstruction into the scene (one undo step)"""

    bl_idname = "d3dface.apply_result"
    bl_label = "Diverse3DFace Reconstruct"
    bl_options = {"UNDO", "INTERNAL"}

    result_path: StringProperty()
    scene_path: StringProperty()
    mode: EnumProperty(items=RESULT_MODES, default="NEW")
    target: StringProperty()
    name: StringProperty()
    photo_name: StringProperty()
    set_scene_camera: BoolProperty(default=True)

    def execute(self, context):
        try:
            obj = apply_reconstruction(context, self.result_path, self.scene_path, self.mode, self.target,
                                       self.name, self.photo_name, self.set_scene_camera)
        except (ResultFileError, ValueError) as exc:
            return _fail(self, str(exc))
        RUNNER.last_object = obj.name
        return {"FINISHED"}


class D3DFACE_OT_cancel(bpy.types.Operator):
    """Cancel the running Diverse3DFace job (the scene stays as it is)"""

    bl_idname = "d3dface.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return RUNNER.busy

    def execute(self, context):
        RUNNER.cancel()
        return {"FINISHED"}


# ---- interpolate --------------------------------------------------------------------------
def interpolate_args(obj, a: int, b: int, steps: int, device: str, job_dir: Path) -> dict:
    if not scene_writer.is_d3dface_object(obj):
        raise ValueError("select a Diverse3DFace head")
    d = scene_writer.stored(obj)
    keys, sources, indices = d["sample_keys"], d["sample_results"], d["sample_indices"]
    for k in (a, b):
        if not 1 <= k <= len(keys):
            raise ValueError(f"sample {k} does not exist (1..{len(keys)})")
    if a == b:
        raise ValueError("choose two different samples")
    if sources[a - 1] != sources[b - 1] or stored_runs.sample_run(d, a) != stored_runs.sample_run(d, b):
        raise ValueError("these samples come from different runs; interpolate within one run")
    # the latents the object stores (no result file needed); objects from older add-ons: the result file
    source = stored_runs.write_source(d, a, scene_writer.stored_latents(obj), job_dir)
    return {**({"source": source} if source else {"result": sources[a - 1]}),
            "i": int(indices[a - 1]) + 1, "j": int(indices[b - 1]) + 1, "steps": int(steps),
            "device": preferences.device_arg(device), "out_dir": str(job_dir), "model": preferences.head_model_arg()}


def apply_interpolation(obj, path: str, a: int, b: int) -> list[str]:
    verts, alphas = read_interpolation(path, len(obj.data.vertices), scene_writer.stored(obj).get("basis") == "neutral")
    return scene_writer.add_interpolation_keys(obj, verts, alphas, a, b)


class D3DFACE_OT_interpolate(bpy.types.Operator):
    """Add shape keys decoded from latents interpolated between two samples (blocks; for scripts)"""

    bl_idname = "d3dface.interpolate"
    bl_label = "Interpolate (blocking)"
    bl_options = {"UNDO"}

    object_name: StringProperty(name="Object", description="Head object (default: the active object)")
    sample_a: IntProperty(name="From", default=1, min=1)
    sample_b: IntProperty(name="To", default=2, min=1)
    steps: IntProperty(name="Steps", default=D.INTERPOLATION_STEPS, min=3, max=33)
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="DEFAULT")

    def execute(self, context):
        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        try:
            args = interpolate_args(obj, self.sample_a, self.sample_b, self.steps, self.device, RUNNER.new_job_dir("interp"))
            job = RUNNER.run_sync("interpolate", args)
            if job.state != "done":
                return _fail(self, job.message)
            names = apply_interpolation(obj, job.result_path, self.sample_a, self.sample_b)
        except (EngineBusy, ValueError, RuntimeError, OSError, ResultFileError) as exc:
            return _fail(self, str(exc))
        self.report({"INFO"}, f"Diverse3DFace: added {', '.join(names)}")
        return {"FINISHED"}


class D3DFACE_OT_interpolate_start(bpy.types.Operator):
    """Add shape keys decoded from latents interpolated between two samples (paper Appendix A.3)"""

    bl_idname = "d3dface.interpolate_start"
    bl_label = "Interpolate"

    @classmethod
    def poll(cls, context):
        return not RUNNER.busy and scene_writer.is_d3dface_object(context.active_object)

    def execute(self, context):
        s, obj = context.scene.d3dface, context.active_object
        try:
            args = interpolate_args(obj, s.interp_a, s.interp_b, s.interp_steps, s.device, RUNNER.new_job_dir("interp"))
            name, a, b = obj.name, s.interp_a, s.interp_b

            def on_done(job):
                with window_context():
                    bpy.ops.d3dface.apply_interpolation("EXEC_DEFAULT", True, object_name=name,
                                                        path=job.result_path, sample_a=a, sample_b=b)

            RUNNER.start("interpolate", args, on_done, label="interpolate")
        except (EngineBusy, ValueError, RuntimeError, OSError) as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}


class D3DFACE_OT_apply_interpolation(bpy.types.Operator):
    """Add interpolated shape keys (one undo step)"""

    bl_idname = "d3dface.apply_interpolation"
    bl_label = "Diverse3DFace Interpolate"
    bl_options = {"UNDO", "INTERNAL"}

    object_name: StringProperty()
    path: StringProperty()
    sample_a: IntProperty()
    sample_b: IntProperty()

    def execute(self, context):
        obj = bpy.data.objects.get(self.object_name)
        if obj is None:
            return _fail(self, f"object {self.object_name!r} is gone")
        try:
            apply_interpolation(obj, self.path, self.sample_a, self.sample_b)
        except ResultFileError as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}


# ---- export -------------------------------------------------------------------------------
EXPORT_FORMATS = [("GLB", "glTF binary (.glb)", "glTF 2.0 binary, y-up metres, shape keys as morph targets"),
                  ("FBX", "FBX (.fbx)", "FBX, metres (unit scale recorded), shape keys as blend shapes")]


class D3DFACE_OT_export(bpy.types.Operator):
    """Export the head with all its shape keys (glTF binary or FBX, Blender's own exporters)"""

    bl_idname = "d3dface.export"
    bl_label = "Export head"

    filepath: StringProperty(name="File", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.glb;*.fbx", options={"HIDDEN"})
    format: EnumProperty(name="Format", items=EXPORT_FORMATS, default="GLB")
    object_name: StringProperty(name="Object", description="Head object (default: the active object)")

    @classmethod
    def poll(cls, context):
        return scene_writer.is_d3dface_object(context.active_object)

    def check(self, context):
        """Keep the file name's extension in step with the format (file browser)."""
        ext = export.FORMATS[self.format][0]
        stem, old = os.path.splitext(self.filepath)
        fixed = (stem if old.lower() in export.KNOWN_EXTENSIONS else self.filepath) + ext
        changed = fixed != self.filepath
        self.filepath = fixed
        return changed

    def invoke(self, context, event):
        if not self.filepath:
            folder = os.path.dirname(bpy.data.filepath) if bpy.data.filepath else os.path.expanduser("~")
            name = bpy.path.clean_name(context.active_object.name)
            self.filepath = os.path.join(folder, name + export.FORMATS[self.format][0])
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        try:
            path = export.export_head(context, obj, self.filepath, self.format)
        except export.ExportError as exc:
            return _fail(self, str(exc))
        RUNNER.last_message, RUNNER.last_level = f"exported {path.name}", "INFO"
        self.report({"INFO"}, f"Diverse3DFace: exported {obj.name} to {path}")
        return {"FINISHED"}


# ---- expressions and animation ------------------------------------------------------------
def _head(op, context):
    return bpy.data.objects.get(op.object_name) if op.object_name else context.active_object


class D3DFACE_OT_set_expression(bpy.types.Operator):
    """Show the photo's expression (its fitted key values and jaw) or the neutral head"""

    bl_idname = "d3dface.set_expression"
    bl_label = "Set expression"
    bl_options = {"REGISTER", "UNDO"}

    which: EnumProperty(name="Expression", items=[("PHOTO", "Photo", "the fitted expression"),
                                                  ("NEUTRAL", "Neutral", "every expression key at 0, the jaw at rest")])
    object_name: StringProperty(name="Object", description="Head object (default: the active object)")

    @classmethod
    def poll(cls, context):
        return scene_writer.is_d3dface_object(context.active_object)

    def execute(self, context):
        obj = _head(self, context)
        if not scene_writer.is_d3dface_object(obj) or not scene_writer.expression_key_names(obj):
            return _fail(self, "the object has no expression keys")
        expressions.set_expression(obj, self.which)
        return {"FINISHED"}


class D3DFACE_OT_import_arkit_csv(bpy.types.Operator):
    """Keyframe the head's expression keys from a CSV of per-frame ARKit weights (phone face capture)"""

    bl_idname = "d3dface.import_arkit_csv"
    bl_label = "Import ARKit animation"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})
    start_frame: IntProperty(name="Start frame", default=1)
    object_name: StringProperty(name="Object", description="Head object (default: the active object)")

    @classmethod
    def poll(cls, context):
        return scene_writer.is_d3dface_object(context.active_object)

    def invoke(self, context, event):
        self.start_frame = context.scene.frame_current
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj = _head(self, context)
        try:
            info = expressions.import_weights_csv(obj, self.filepath, self.start_frame)
        except expressions.AnimationFileError as exc:
            return _fail(self, str(exc))
        msg = f"{info['frames']} frames on {len(info['keys'])} keys"
        RUNNER.last_message, RUNNER.last_level = f"imported {msg}", "INFO"
        self.report({"INFO"}, f"Diverse3DFace: imported {msg} from {os.path.basename(self.filepath)}"
                    + (f" ({len(info['ignored'])} other columns ignored)" if info["ignored"] else ""))
        return {"FINISHED"}


# ---- engine check, mask painting, reports -------------------------------------------------
def format_check(info: dict) -> str:
    parts = [f"d3dface {info.get('engine', '?')}", f"Python {info.get('python', '?')}",
             f"torch {info.get('torch', '?')}", f"numpy {info.get('numpy', '?')}",
             f"device {info.get('device', '?')}" + (f" ({info['cuda_device']})" if info.get("cuda_device") else ""),
             f"head model {info.get('head_model', '?')} ({info.get('head_model_vertices', '?')} vertices"
             + (", LBS)" if info.get("head_model_lbs") else ")"),
             "reconstruct available" if info.get("reconstruct") else "reconstruct NOT available in this engine"]
    return " | ".join(parts)


class D3DFACE_OT_check_engine(bpy.types.Operator):
    """Start the engine and report its versions and device"""

    bl_idname = "d3dface.check_engine"
    bl_label = "Check engine"

    def execute(self, context):
        args = {"device": preferences.device_arg("DEFAULT"), "model": preferences.head_model_arg()}

        def on_done(job):
            text = format_check(job.info)
            prefs = preferences.get_prefs()
            if hasattr(prefs, "bl_rna"):
                prefs.check_report = text
            RUNNER.report("INFO", f"Diverse3DFace engine: {text}")

        try:
            RUNNER.start("check", args, on_done, label="check")
        except (EngineBusy, RuntimeError, OSError) as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}


class D3DFACE_OT_paint_mask(bpy.types.Operator):
    """Make a mask image from the photo and open it in the Image Editor: erase (alpha) what is hidden"""

    bl_idname = "d3dface.paint_mask"
    bl_label = "Paint mask"
    bl_options = {"UNDO"}

    def execute(self, context):
        s = context.scene.d3dface
        try:
            if s.image_source == "IMAGE" and s.image is not None:
                photo = s.image
            elif s.filepath and os.path.isfile(bpy.path.abspath(s.filepath)):
                photo = bpy.data.images.load(bpy.path.abspath(s.filepath), check_existing=True)
            else:
                raise ValueError("choose the photo first")
            w, h = photo.size
            if w == 0 or h == 0:
                raise ValueError(f"cannot read the photo {photo.name!r}")
            mask = bpy.data.images.new(f"{photo.name} mask", w, h, alpha=True)
            px = np.empty(w * h * 4, np.float32)
            photo.pixels.foreach_get(px)
            px[3::4] = 1.0  # opaque: erasing alpha marks what is hidden
            mask.pixels.foreach_set(px)
            mask.file_format = "PNG"
            mask.update()
        except (ValueError, RuntimeError) as exc:
            return _fail(self, str(exc))
        s.mask_image, s.mask_mode = mask, "PAINTED"
        _open_in_image_editor(context, mask)
        self.report({"INFO"}, "Erase alpha (brush blend: Erase Alpha) over what hides the face, then Reconstruct")
        return {"FINISHED"}


def _open_in_image_editor(context, image) -> None:
    screen = context.screen
    if screen is None:
        return
    areas = [a for a in screen.areas if a.type == "IMAGE_EDITOR"]
    if not areas:
        return
    space = areas[0].spaces.active
    space.image = image
    try:
        space.ui_mode = "PAINT"
        brush = context.tool_settings.image_paint.brush
        if brush is not None:
            brush.blend = "ERASE_ALPHA"
    except (AttributeError, TypeError):
        pass


class D3DFACE_OT_report_message(bpy.types.Operator):
    """Show a message in the status bar and the Info log"""

    bl_idname = "d3dface.report_message"
    bl_label = "Diverse3DFace message"
    bl_options = {"INTERNAL"}

    level: StringProperty(default="INFO")
    message: StringProperty()

    def execute(self, context):
        self.report({self.level if self.level in ("INFO", "WARNING", "ERROR") else "INFO"}, self.message)
        return {"FINISHED"}


classes = (
    D3DFACE_OT_reconstruct, D3DFACE_OT_reconstruct_start, D3DFACE_OT_apply_result, D3DFACE_OT_cancel,
    D3DFACE_OT_interpolate, D3DFACE_OT_interpolate_start, D3DFACE_OT_apply_interpolation,
    D3DFACE_OT_check_engine, D3DFACE_OT_paint_mask, D3DFACE_OT_report_message, D3DFACE_OT_export,
    D3DFACE_OT_set_expression, D3DFACE_OT_import_arkit_csv,
)

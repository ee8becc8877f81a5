"""Python API for the bpy console and scripts::

    from bl_ext.user_default.d3dface import api       # installed extension
    obj = api.reconstruct("/path/face.jpg", samples=8, mask="auto", seed=0)
    api.interpolate(obj, 1, 3, steps=5)                # adds "Interp 01-03 0.25" ...
    api.shape_key_names(obj); api.latents(obj)         # (M, 1, K) or, Mesh-VAE runs, (M, 10, 64)
    api.export_head(obj, "/path/head.glb")             # or format="fbx": every shape key
    api.expression_keys(obj)                           # the 52 ARKit keys, then the model's halves
    api.set_expression(obj, "neutral")                 # or "photo": the fitted expression and jaw
    api.import_arkit_csv(obj, "/path/take.csv", start_frame=1)   # keyframes, one row per frame

Each call blocks until the engine is done and is one undo step when run from the console
or a script. Errors raise RuntimeError with a one-line message; the scene is then unchanged.
"""

from __future__ import annotations

import bpy

from . import engine_defaults as D
from . import export, expressions, scene_writer
from .jobs import RUNNER


def reconstruct(filepath: str, mask: str = D.MASK, samples: int = D.SAMPLES, seed: int = D.SEED, diversity: float = D.DIVERSITY,
                device: str = "DEFAULT", mode: str = "NEW", target=None, name: str = "",
                set_scene_camera: bool = True, timeout: float = 0.0):
    """Reconstruct ``filepath``; returns the head object (new, or ``target`` for REPLACE/ADD)."""
    target_name = target.name if isinstance(target, bpy.types.Object) else (target or "")
    RUNNER.last_object = ""
    bpy.ops.d3dface.reconstruct(filepath=str(filepath), mask=str(mask), samples=int(samples), seed=int(seed),
                                diversity=float(diversity), device=device.upper(), mode=mode.upper(), target=target_name,
                                name=name, set_scene_camera=set_scene_camera, timeout=float(timeout))
    if not RUNNER.last_object:
        raise RuntimeError(f"Diverse3DFace: {RUNNER.last_message or 'reconstruction failed'}")
    return bpy.data.objects[RUNNER.last_object]


def interpolate(obj, sample_a: int, sample_b: int, steps: int = D.INTERPOLATION_STEPS, device: str = "DEFAULT") -> list[str]:
    """Add the shape keys between two samples (1-based); returns their names."""
    before = set(shape_key_names(obj))
    bpy.ops.d3dface.interpolate(object_name=obj.name, sample_a=sample_a, sample_b=sample_b, steps=steps,
                                device=device.upper())
    return [n for n in shape_key_names(obj) if n not in before]


def export_head(obj, path: str, format: str = "glb") -> str:
    """Write ``obj`` with all its shape keys to ``path`` as glTF binary ("glb") or FBX ("fbx");
    returns the file written (the extension is added when missing). The scene is unchanged."""
    try:
        return str(export.export_head(bpy.context, obj, path, format))
    except export.ExportError as exc:
        raise RuntimeError(f"Diverse3DFace: {exc}") from None


def expression_keys(obj) -> list[str]:
    """The object's expression keys: the 52 ARKit names, then the head model's own halves."""
    return scene_writer.expression_key_names(obj)


def set_expression(obj, which: str = "photo") -> None:
    """"photo": the fitted expression (key values and jaw); "neutral": every expression key 0."""
    bpy.ops.d3dface.set_expression(object_name=obj.name, which=which.upper())


def import_arkit_csv(obj, path: str, start_frame: int = 1) -> dict:
    """Keyframe the expression keys from an ARKit weight CSV (one row per frame from
    ``start_frame``); returns {"frames", "keys", "ignored"}. Bad files raise RuntimeError and
    change nothing."""
    expressions.LAST_IMPORT.clear()
    bpy.ops.d3dface.import_arkit_csv(filepath=str(path), start_frame=int(start_frame), object_name=obj.name)
    return dict(expressions.LAST_IMPORT)


def shape_key_names(obj) -> list[str]:
    return [kb.name for kb in obj.data.shape_keys.key_blocks]


def shape_key(obj, name: str):
    """(V, 3) numpy array of a shape key's coordinates (FLAME axes, metres)."""
    return scene_writer.read_key(obj, name)


def latents(obj):
    """The latents of the object's samples: (M, 1, K) whitened prior coefficients of a "gaussian"
    run (the default), (M, 10, 64) of a Mesh-VAE run."""
    return scene_writer.stored_latents(obj)


def settings(obj) -> dict:
    return scene_writer.stored(obj)


def cancel() -> None:
    """Cancel the running sidebar job."""
    RUNNER.cancel()

"""Helpers for the headless Blender tests (bpy==5.0.1 as a module): enable the add-on from the
source tree, point its worker at the fast stand-in engine, snapshot the scene, drive timers."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SHARED = REPO.parent / "shared"
PHOTO = SHARED / "images" / "occluded" / "glasses_woman.jpg"
MODULE = "d3dface_addon"


def enable_from_source(cache_dir: Path):
    import addon_utils
    import bpy

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    mod = addon_utils.enable(MODULE, default_set=True, handle_error=None)
    assert mod is not None, "the add-on did not enable"
    bpy.context.preferences.addons[MODULE].preferences.cache_dir = str(cache_dir)
    return mod


def use_fake_engine(seconds: float = 0.3, **extra) -> None:
    from d3dface_addon import worker_client

    worker_client.EXTRA_ENV.clear()
    worker_client.EXTRA_ENV.update({
        "D3DFACE_WORKER_ENGINE": "addon_fake_engine", "D3DFACE_FAKE_SECONDS": str(seconds),
        "PYTHONPATH": os.pathsep.join([str(TESTS), *[p for p in sys.path if p and os.path.isdir(p)]]), **extra})
    # a changed environment restarts the worker on the next job
    from d3dface_addon.jobs import RUNNER

    if RUNNER.client is not None:
        RUNNER.client.stop()
        RUNNER.client = None


@contextmanager
def window():
    """The context Blender's UI would give an operator (window, screen, 3D view)."""
    import bpy

    win = bpy.context.window_manager.windows[0]
    area = next(a for a in win.screen.areas if a.type == "VIEW_3D")
    region = next(r for r in area.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=win, screen=win.screen, area=area, region=region):
        yield


def evaluated(obj):
    """(V, 3) float64: the object's vertices as Blender shows them (shape keys, armature), in
    object space."""
    import bpy
    import numpy as np

    bpy.context.view_layer.update()
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = ev.to_mesh()
    out = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", out)
    ev.to_mesh_clear()
    return out.reshape(-1, 3).astype(np.float64)


def eyes_at_rest(obj, rest: bool = True) -> None:
    """Mute the rig's eye drivers and put the eyes at rest (the fit does not turn them), or
    unmute them again (``rest=False``)."""
    arm = obj.parent
    for fc in (arm.animation_data.drivers if arm is not None and arm.animation_data else []):
        fc.mute = rest
    if rest:
        for pb in (arm.pose.bones if arm is not None else []):
            if pb.rotation_mode != "QUATERNION":
                pb.rotation_euler = (0.0, 0.0, 0.0)


def snapshot() -> dict:
    """Everything a Diverse3DFace job may touch, by name."""
    import bpy

    sc = bpy.context.scene
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "materials": sorted(m.name for m in bpy.data.materials),
        "cameras": sorted(c.name for c in bpy.data.cameras),
        "armatures": sorted(a.name for a in bpy.data.armatures),
        "collections": sorted(c.name for c in bpy.data.collections),
        "images": sorted(i.name for i in bpy.data.images),
        "shape_keys": sorted((k.user.name, tuple(b.name for b in k.key_blocks)) for k in bpy.data.shape_keys),
        "scene_camera": sc.camera.name if sc.camera else None,
        "resolution": (sc.render.resolution_x, sc.render.resolution_y),
    }


def drive_timer(runner, timeout: float = 60.0, on_tick=None) -> None:
    """Call the add-on's timer callback as Blender would (every 0.1 s) until it stops."""
    t0 = time.monotonic()
    while runner.tick() is not None:
        if on_tick is not None:
            on_tick()
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the job did not finish")
        time.sleep(0.1)

"""The Blender add-on, headless (bpy 5.0.1 as a module), with the real worker process running
the fast stand-in engine (tests/addon_fake_engine.py): scene contents against the result
file, undo, save and reload, interpolation, the asynchronous sidebar path with its
main-thread stall, and the failure paths (bad image, killed worker, cancel)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import evaluated, PHOTO, drive_timer, enable_from_source, snapshot, use_fake_engine, window  # noqa: E402

V = 5023


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mod = enable_from_source(tmp_path_factory.mktemp("cache"))
    use_fake_engine(0.3)
    from d3dface_addon.jobs import RUNNER

    with window():
        bpy.ops.ed.undo_push(message="initial")
    yield mod
    RUNNER.shutdown()
    import addon_utils

    addon_utils.disable("d3dface_addon", default_set=True)


def runner():
    from d3dface_addon.jobs import RUNNER

    return RUNNER


def reconstruct(**kw):
    """The documented scripting call, pushing its undo step as Blender's UI would."""
    with window():
        return bpy.ops.d3dface.reconstruct("EXEC_DEFAULT", True, **kw)


def result_arrays(obj):
    from d3dface_addon.scene_writer import stored

    path = stored(obj)["result_path"]
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}, path


def key(obj, name):
    kb = obj.data.shape_keys.key_blocks[name]
    out = np.empty(len(kb.data) * 3, np.float32)
    kb.data.foreach_get("co", out)
    return out.reshape(-1, 3)


# ---- the result in the scene -------------------------------------------------------------
def test_reconstruct_creates_one_head_whose_keys_equal_the_result(addon):
    assert reconstruct(filepath=str(PHOTO), samples=4, seed=1) == {"FINISHED"}
    obj = bpy.data.objects[runner().last_object]
    assert obj.type == "MESH" and len(obj.data.vertices) == V and len(obj.data.polygons) == 9976
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    from d3dface.head_model.arkit import ARKIT_NAMES

    assert names[:6] == ["Basis", "Visible fit", "Sample 01", "Sample 02", "Sample 03", "Sample 04"]
    assert names[6:6 + 52] == list(ARKIT_NAMES)  # then the model's halves of browInnerUp and cheekPuff
    a, _ = result_arrays(obj)
    # the keys are the heads without the fitted expression; the evaluated object is the fit
    assert np.abs(key(obj, "Basis") - a["neutral_fit_vertices"]).max() < 1e-5
    assert np.abs(key(obj, "Visible fit") - a["neutral_visible_fit_vertices"]).max() < 1e-5
    for k in range(4):
        assert np.abs(key(obj, f"Sample {k + 1:02d}") - a["neutral_samples"][k]).max() < 1e-5
    assert np.abs(evaluated(obj) - a["fit_vertices"]).max() < 1e-5
    # latents and settings travel with the object
    from d3dface_addon.scene_writer import stored_latents

    assert np.allclose(stored_latents(obj), a["latents"], atol=1e-6)
    # FLAME y-up becomes Blender z-up through the object transform, not the vertices
    bpy.context.view_layer.update()
    R = np.array(obj.matrix_world.to_3x3())
    assert np.allclose(R @ [0, 1, 0], [0, 0, 1], atol=1e-6) and np.allclose(R @ [0, 0, 1], [0, -1, 0], atol=1e-6)
    assert all(p.use_smooth for p in obj.data.polygons[:50])
    assert {"UVMap", "Photo"} <= {uv.name for uv in obj.data.uv_layers}
    assert obj.active_material is not None and obj.active_material.node_tree.nodes.get("Image Texture") is not None


def test_the_fitted_camera_sees_each_vertex_where_the_engine_projects_it(addon):
    import torch
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from d3dface.render.cameras import PerspectiveCamera

    obj = bpy.data.objects[runner().last_object]
    cam = next(c for c in obj.children if c.type == "CAMERA")
    scene = bpy.context.scene
    assert scene.camera == cam and cam.data.background_images[0].image is not None
    a, _ = result_arrays(obj)
    import json

    c = json.loads(str(a["camera_json"]))
    t = lambda k: torch.tensor([c[k]], dtype=torch.float64)  # noqa: E731
    pcam = PerspectiveCamera(t("focal"), t("principal"), t("rotation"), t("translation"), tuple(c["image_size"]))
    idx = np.arange(0, V, 97)
    pix, _ = pcam.project(torch.as_tensor(a["fit_vertices"][idx], dtype=torch.float64)[None])
    x0, y0, x1, _ = a["crop_box"]
    photo = pix[0].numpy() * (x1 - x0) / c["image_size"][1] + [x0, y0]
    H, W = a["image_size"]
    assert (scene.render.resolution_x, scene.render.resolution_y) == (W, H)
    shown = evaluated(obj)
    for k, i in enumerate(idx):
        p = world_to_camera_view(scene, cam, obj.matrix_world @ Vector(shown[int(i)].tolist()))
        assert abs(p.x - (photo[k, 0] + 0.5) / W) < 2e-4 and abs(p.y - (1 - (photo[k, 1] + 0.5) / H)) < 2e-4


def test_the_rig_has_neck_and_jaw_and_skins_the_head(addon):
    obj = bpy.data.objects[runner().last_object]
    arm = obj.parent
    assert arm is not None and arm.type == "ARMATURE"
    assert {"neck", "jaw"} <= set(arm.data.bones.keys())
    assert obj.modifiers["Armature"].object == arm
    assert {"neck", "jaw"} <= {g.name for g in obj.vertex_groups}
    # the parent inverse keeps the head's own +90 degree transform
    bpy.context.view_layer.update()
    assert np.allclose(np.array(obj.matrix_world.to_3x3()) @ [0, 1, 0], [0, 0, 1], atol=1e-6)


def test_undo_removes_the_whole_reconstruction_and_redo_restores_it(addon):
    with window():
        bpy.ops.ed.undo_push(message="before")
    before = snapshot()
    assert reconstruct(filepath=str(PHOTO), samples=2, name="undo") == {"FINISHED"}
    after = snapshot()
    assert after != before and "D3DFace undo" in after["objects"]
    with window():
        bpy.ops.ed.undo()
    assert snapshot() == before
    with window():
        bpy.ops.ed.redo()
    assert snapshot() == after


def test_save_and_reload_keep_keys_latents_and_interpolation_works_after(addon, tmp_path):
    assert reconstruct(filepath=str(PHOTO), samples=3, name="saved") == {"FINISHED"}
    obj = bpy.data.objects["D3DFace saved"]
    keys = {kb.name: key(obj, kb.name) for kb in obj.data.shape_keys.key_blocks}
    from d3dface_addon.scene_writer import stored_latents

    lat = stored_latents(obj)
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.data.objects.remove(obj)
    assert "D3DFace saved" not in bpy.data.objects
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["D3DFace saved"]
    assert [kb.name for kb in obj.data.shape_keys.key_blocks] == list(keys)
    for n, v in keys.items():
        assert np.array_equal(key(obj, n), v)
    assert np.array_equal(stored_latents(obj), lat)
    assert obj.data.materials[0] is not None and obj.parent is not None
    # interpolation after reload: the keys are the engine's decode between samples 1 and 3
    from d3dface_addon import api

    with window():
        added = api.interpolate(obj, 1, 3, steps=5)
    assert added == ["Interp 01-03 0.25", "Interp 01-03 0.50", "Interp 01-03 0.75"]
    assert np.allclose(key(obj, "Interp 01-03 0.50"), 0.5 * (keys["Sample 01"] + keys["Sample 03"]), atol=1e-5)


def test_replace_and_add_samples_on_an_existing_head(addon):
    from d3dface_addon import api

    with window():
        obj = api.reconstruct(str(PHOTO), samples=2, name="modes")
        api.reconstruct(str(PHOTO), samples=3, seed=5, mode="ADD", target=obj)
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    n_expr = len(api.expression_keys(obj))
    assert n_expr == 56 and names[:4] == ["Basis", "Visible fit", "Sample 01", "Sample 02"]
    assert names[4 + n_expr:] == ["Sample 03", "Sample 04", "Sample 05"]  # added after the expressions
    a, _ = result_arrays(obj)  # the latest result
    assert np.abs(key(obj, "Sample 05") - a["neutral_samples"][2]).max() < 1e-5
    # the stored latents: the first run's two, then the added run's three, in key order
    assert api.latents(obj).shape == (5, *a["latents"].shape[1:])
    np.testing.assert_array_equal(api.latents(obj)[2:], a["latents"])
    with window():
        api.reconstruct(str(PHOTO), samples=1, seed=7, mode="REPLACE", target=obj)
    names = [kb.name for kb in obj.data.shape_keys.key_blocks]
    assert names[:3] == ["Basis", "Visible fit", "Sample 01"] and len(names) == 3 + n_expr
    a, _ = result_arrays(obj)
    assert np.abs(key(obj, "Sample 01") - a["neutral_samples"][0]).max() < 1e-5
    assert np.abs(key(obj, "Basis") - a["neutral_fit_vertices"]).max() < 1e-5
    assert np.abs(evaluated(obj) - a["fit_vertices"]).max() < 1e-5


# ---- failure paths: the scene stays as it was ----------------------------------------------
def test_a_bad_image_is_reported_and_changes_nothing(addon, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\x00not an image")
    before = snapshot()
    with pytest.raises(RuntimeError, match="Diverse3DFace"):
        reconstruct(filepath=str(bad), samples=2)
    assert snapshot() == before
    assert "\n" not in runner().last_message and runner().last_message


def start_sidebar_job(samples=2, **settings):
    s = bpy.context.scene.d3dface
    s.image_source, s.filepath, s.samples, s.mask_mode = "FILE", str(PHOTO), samples, "AUTO"
    for k, v in settings.items():
        setattr(s, k, v)
    with window():
        assert bpy.ops.d3dface.reconstruct_start() == {"FINISHED"}
    return runner().job


def test_sidebar_job_runs_in_the_background_and_is_one_undo_step(addon):
    with window():
        bpy.ops.ed.undo_push(message="before sidebar")
    before = snapshot()
    job = start_sidebar_job(samples=16)
    assert snapshot() == before  # nothing written while it runs
    with window():
        assert not bpy.ops.d3dface.reconstruct_start.poll()  # a second job is refused while one runs
        drive_timer(runner())
    assert job.state == "done"
    obj = bpy.data.objects[runner().last_object]
    assert len(obj.data.shape_keys.key_blocks) == 2 + 16 + 56  # + the expression keys
    stats = runner().stats
    stalls = sorted(stats.stalls_ms)
    print(f"\nlongest main-thread stall: {stalls[-1]:.1f} ms over {stats.ticks} timer calls "
          f"(scene write {stats.last_apply_ms:.1f} ms); longest other call {stalls[-2]:.1f} ms")
    # polling never blocks: every timer call but the one that writes the scene (one undo step,
    # 16 samples + 56 expression keys: 100-200 ms on this 2-core machine; `d3dface bench` times the
    # scene writer's key writing) is short
    assert stalls[-2] < 100.0
    assert stalls[-1] >= stats.last_apply_ms
    with window():
        bpy.ops.ed.undo()
    assert snapshot() == before


def test_a_killed_worker_is_reported_and_the_next_job_works(addon):
    use_fake_engine(20.0)
    before = snapshot()
    job = start_sidebar_job()
    while job.running and job.stage in ("starting", "start"):
        runner().tick()
        time.sleep(0.05)
    os.kill(runner().client.pid, 9)
    with window():
        drive_timer(runner(), timeout=10)
    assert job.state == "failed" and job.kind == "worker" and "stopped unexpectedly" in job.message
    assert runner().last_level == "ERROR" and snapshot() == before
    use_fake_engine(0.1)
    job = start_sidebar_job()
    with window():
        drive_timer(runner())
    assert job.state == "done"


def test_cancel_ends_the_job_within_a_second_and_changes_nothing(addon):
    use_fake_engine(30.0)
    before = snapshot()
    job = start_sidebar_job()
    while job.stage != "fit":
        runner().tick()
        time.sleep(0.05)
    with window():
        assert bpy.ops.d3dface.cancel() == {"FINISHED"}
        t0 = time.monotonic()
        drive_timer(runner(), timeout=5)
    assert time.monotonic() - t0 < 1.0
    assert job.state == "cancelled" and snapshot() == before
    use_fake_engine(0.3)


def test_a_painted_mask_reaches_the_engine_as_white_where_erased(addon):
    s = bpy.context.scene.d3dface
    s.image_source, s.filepath = "FILE", str(PHOTO)
    with window():
        assert bpy.ops.d3dface.paint_mask() == {"FINISHED"}
    mask = s.mask_image
    w, h = mask.size
    px = np.empty(w * h * 4, np.float32)
    mask.pixels.foreach_get(px)
    px = px.reshape(h, w, 4)
    px[: h // 4, :, 3] = 0.0  # "erase" the bottom quarter (Blender rows start at the bottom)
    mask.pixels.foreach_set(px.reshape(-1))
    job = start_sidebar_job(mask_mode="PAINTED")
    with window():
        drive_timer(runner())
    assert job.state == "done", job.message
    from PIL import Image

    m = np.asarray(Image.open(Path(job.result_path).parent.parent / "painted_mask.png"))
    assert m.shape == (h, w) and (m[-(h // 4):] == 255).all() and (m[: h - h // 4 - 1] == 0).all()

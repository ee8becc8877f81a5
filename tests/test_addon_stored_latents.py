"""Interpolate from what a head object stores, with its result files gone (the cache folder
deleted): headless Blender (bpy 5.0.1) and the real worker process running the real engine
(Mesh-VAE decode of the interpolated latents, Laplacian join to the fit). The reference is the
same engine interpolating from the result file, through the same worker, before the deletion.

The results are written by the stand-in engine's ``template_result`` (random latents, the open
head model's hash, the join switched on) so that no reconstruction has to run."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_fake_engine import template_result, write_scene  # noqa: E402
from addon_helpers import enable_from_source, window  # noqa: E402

TOL_M = 1e-6


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    cache = tmp_path_factory.mktemp("cache")
    enable_from_source(cache)
    from d3dface_addon import worker_client
    from d3dface_addon.jobs import RUNNER

    worker_client.EXTRA_ENV.clear()  # the real engine
    if RUNNER.client is not None:
        RUNNER.client.stop()
        RUNNER.client = None
    yield cache
    RUNNER.shutdown()
    import addon_utils

    addon_utils.disable("d3dface_addon", default_set=True)


def write_result(folder, samples: int, seed: int) -> str:
    """A result file (and its blender_scene.npz) that the real engine accepts."""
    from d3dface.complete.settings import StitchSettings
    from d3dface.fit.local_model import model_fingerprint
    from d3dface.head_model import load_head_model

    res = template_result(samples, seed)
    res.head_model_hash = model_fingerprint(load_head_model(None))
    res.settings.update(stitch=True, stitch_method="laplacian", stitch_rings=StitchSettings.rings)
    path = folder / "result" / "result.npz"
    res.save(path)
    write_scene(res, path.with_name("blender_scene.npz"))
    return str(path)


def apply(path: str, **kw):
    from d3dface_addon.jobs import RUNNER

    with window():
        assert bpy.ops.d3dface.apply_result("EXEC_DEFAULT", True, result_path=path,
                                            scene_path=path.replace("result.npz", "blender_scene.npz"), **kw) == {"FINISHED"}
    return bpy.data.objects[RUNNER.last_object]


def from_result_file(path: str, i: int, j: int, steps: int) -> np.ndarray:
    """(steps, V, 3): the worker's interpolation from the result file (the reference), without
    the run's expression (the object's keys are neutral heads)."""
    from d3dface_addon.jobs import RUNNER

    job = RUNNER.run_sync("interpolate", {"result": path, "i": i, "j": j, "steps": steps, "device": "auto",
                                          "out_dir": str(RUNNER.new_job_dir("ref")), "model": None}, timeout=300)
    assert job.state == "done", job.message
    with np.load(job.result_path) as d:
        return d["neutral_vertices"]


def test_interpolate_needs_no_result_file(addon, tmp_path):
    from d3dface_addon import api

    first = write_result(addon / "run1", samples=3, seed=0)
    second = write_result(addon / "run2", samples=2, seed=5)
    obj = apply(first, name="stored")
    apply(second, mode="ADD", target=obj.name)  # samples 4 and 5 are the second run's 1 and 2
    ref_13 = from_result_file(first, 1, 3, 5)[1:-1]
    ref_45 = from_result_file(second, 1, 2, 4)[1:-1]
    linear = 0.5 * (api.shape_key(obj, "Sample 01") + api.shape_key(obj, "Sample 03"))
    assert np.abs(ref_13[1] - linear).max() > 1e-3  # the Mesh-VAE decoded them (not the stand-in's linear "decoder")
    shutil.rmtree(addon)  # the result files, job folders and the worker's log
    assert not addon.exists()
    with window():
        assert api.interpolate(obj, 1, 3, steps=5) == ["Interp 01-03 0.25", "Interp 01-03 0.50", "Interp 01-03 0.75"]
        names_45 = api.interpolate(obj, 4, 5, steps=4)
        with pytest.raises(RuntimeError, match="different runs"):
            api.interpolate(obj, 1, 4)
    diffs = [np.abs(api.shape_key(obj, n) - ref_13[k]).max() for k, n in enumerate(["Interp 01-03 0.25", "Interp 01-03 0.50",
                                                                                      "Interp 01-03 0.75"])]
    diffs += [np.abs(api.shape_key(obj, n) - ref_45[k]).max() for k, n in enumerate(names_45)]
    print(f"\nstored-latent vs result-file interpolation: max difference {max(diffs):.3g} m")
    assert max(diffs) <= TOL_M
    # and after save and reload (the latents travel in the .blend)
    path = tmp_path / "stored.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects["D3DFace stored"]
    for n in ("Interp 01-03 0.25", "Interp 01-03 0.50", "Interp 01-03 0.75"):
        obj.shape_key_remove(obj.data.shape_keys.key_blocks[n])
    with window():
        api.interpolate(obj, 1, 3, steps=5)
    assert np.abs(api.shape_key(obj, "Interp 01-03 0.50") - ref_13[1]).max() <= TOL_M


def test_a_head_stored_by_an_older_add_on_interpolates_from_its_result_file(addon, tmp_path):
    from d3dface_addon import api
    from d3dface_addon.scene_writer import PROP

    path = write_result(tmp_path / "old", samples=2, seed=3)
    obj = apply(path, name="older")
    data = obj[PROP].to_dict()
    for k in ("runs", "sample_runs"):  # what the add-on stored before it kept the runs
        del data[k]
    obj[PROP] = {**data, "format": 1}
    ref = from_result_file(path, 1, 2, 3)[1]
    with window():
        assert api.interpolate(obj, 1, 2, steps=3) == ["Interp 01-02 0.50"]
    assert np.abs(api.shape_key(obj, "Interp 01-02 0.50") - ref).max() <= TOL_M

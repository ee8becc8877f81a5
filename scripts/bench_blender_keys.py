"""Shape-key writing through bpy, timed for ``d3dface bench`` (run in its own Python process):

    python scripts/bench_blender_keys.py ADDON_PARENT SAMPLES REPEATS

Builds a result of SAMPLES random completions of the default head model, creates the head
object with ``scene_writer.write_new_object`` (mesh, Basis, Visible fit and the sample keys; no
rig, no photo), then times ``replace_samples`` (all sample keys rewritten), and prints one JSON
line. It imports bpy, so it lives beside the engine, not in it: the engine only starts it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parent, M, repeats = argv[0], int(argv[1]), int(argv[2])
    sys.path.insert(0, parent)
    import numpy as np

    from d3dface.head_model import load_head_model
    from d3dface.bench.stages import peak_rss_mb

    t = time.perf_counter()
    import bpy  # noqa: F401  (only in this process)
    from d3dface_addon.result_reader import ResultData
    from d3dface_addon.scene_writer import replace_samples, write_new_object

    import_s = time.perf_counter() - t
    model = load_head_model(None)
    V = model.num_vertices
    rng = np.random.default_rng(0)
    base = model.v_template.astype(np.float32)

    def result(seed):
        samples = (base[None] + 1e-3 * np.random.default_rng(seed).standard_normal((M, V, 3))).astype(np.float32)
        return ResultData(path="", fit=base, visible_fit=base, samples=samples,
                          latents=rng.standard_normal((M, 10, 64)).astype(np.float32),
                          mu=np.zeros((10, 64), np.float32), logvar=np.zeros((10, 64), np.float32),
                          occluded=np.zeros(V, bool), diversity=None, faces=model.faces.astype(np.int32),
                          uvs=None, uv_faces=None, image_path="", image_size=(512, 512), camera={}, settings={},
                          versions={}, head_model="bench", scene={})

    t = time.perf_counter()
    obj = write_new_object(bpy.context, result(1), name="bench", set_scene_camera=False, with_rig=False)
    new_ms = 1e3 * (time.perf_counter() - t)
    times = []
    for k in range(repeats + 1):
        r = result(k + 2)
        t = time.perf_counter()
        replace_samples(obj, r)
        if k:  # the first is a warm-up
            times.append(1e3 * (time.perf_counter() - t))
    keys = len(obj.data.shape_keys.key_blocks)
    print("D3DFACE_BENCH " + json.dumps({
        "median": statistics.median(times), "unit": "ms", "repeats": len(times), "times": times, "samples": M,
        "new_object_ms": new_ms, "shape_keys": keys, "bpy_import_s": import_s, "bpy_version": bpy.app.version_string,
        "peak_rss_mb": peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    main()


"""Run inside a fresh process with BLENDER_USER_RESOURCES set: install the extension zip into
that user folder with Blender's own installer, enable it, reconstruct a photo with the
documented operator, and print a JSON summary (the test compares it with the result file).

    python tests/addon_installed_check.py ZIP IMAGE MASK SAMPLES OUT_JSON
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from addon_helpers import evaluated, eyes_at_rest


def reconstruct_and_summarise(mod: str, image: str, mask: str, samples: str) -> dict:
    """Run the reconstruct operator of the enabled add-on ``mod`` in the 3D view, undo it, and
    summarise: object, keys, the largest key error against the result file, timing, versions."""
    import importlib

    import bpy

    api = importlib.import_module(mod + ".api")
    win = bpy.context.window_manager.windows[0]
    area = next(a for a in win.screen.areas if a.type == "VIEW_3D")
    summary = {}
    with bpy.context.temp_override(window=win, screen=win.screen, area=area):
        bpy.ops.ed.undo_push(message="before")
        before = sorted(o.name for o in bpy.data.objects)
        t0 = time.time()
        bpy.ops.d3dface.reconstruct("EXEC_DEFAULT", True, filepath=image, mask=mask, samples=int(samples), device="CPU")
        summary["seconds"] = time.time() - t0
        obj = bpy.data.objects[importlib.import_module(mod + ".jobs").RUNNER.last_object]
        keys = [kb.name for kb in obj.data.shape_keys.key_blocks]
        result_path = api.settings(obj)["result_path"]
        with np.load(result_path) as d:
            versions = json.loads(str(d["versions_json"])) if "versions_json" in d.files else {}
            # the keys are the heads without the fitted expression (neutral_*, when the result has them)
            pre = "neutral_" if "neutral_fit_vertices" in d.files else ""
            expect = {"Basis": d[f"{pre}fit_vertices"], "Visible fit": d[f"{pre}visible_fit_vertices"],
                      **{f"Sample {k + 1:02d}": d[f"{pre}samples" if pre else "samples"][k] for k in range(d["samples"].shape[0])}}
            fit = d["fit_vertices"]
        # what the object shows (keys at the photo's expression, the jaw on the rig; eye drivers
        # muted and the eyes at rest: the fit does not turn the eyes) against the fit
        eyes_at_rest(obj)
        shown = evaluated(obj)
        summary.update({
            "engine_dir": versions.get("engine_dir", ""), "versions": versions,
            "object": obj.name, "vertices": len(obj.data.vertices), "keys": keys, "result": result_path,
            "max_key_error": max(float(np.abs(api.shape_key(obj, n) - v).max()) for n, v in expect.items()),
            "expected_keys": list(expect), "expression_keys": len(api.expression_keys(obj)),
            "shown_error": float(np.abs(shown - fit).max()),
        })
        bpy.ops.ed.undo()
        summary["undo_restores"] = sorted(o.name for o in bpy.data.objects) == before
    return summary


def main() -> None:
    zip_path, image, mask, samples, out_json = sys.argv[1:6]
    import bpy

    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert r == {"FINISHED"}, r
    mod = "bl_ext.user_default.d3dface"
    assert mod in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]
    import importlib

    addon = importlib.import_module(mod)
    bpy.context.preferences.addons[mod].preferences.cache_dir = str(__import__("pathlib").Path(out_json).parent / "cache")
    summary = {"module": addon.__name__, **reconstruct_and_summarise(mod, image, mask, samples)}
    importlib.import_module(mod + ".jobs").RUNNER.shutdown()
    with open(out_json, "w") as fh:
        json.dump(summary, fh)


if __name__ == "__main__":
    main()

"""Run inside a fresh process with BLENDER_USER_RESOURCES set: install the full extension zip with
Blender's own installer, point the engine Python at a bare interpreter that sees only what a stock
Blender has (numpy) and the wheels Blender just installed from the zip, reconstruct a photo with
the documented operator and print a JSON summary (keys as in addon_installed_check.py).

    python tests/addon_bundle_check.py ZIP IMAGE MASK SAMPLES OUT_JSON NUMPY_DIR BASE_PYTHON

The worker is started as the add-on starts it; the interpreter is a shell script running
``BASE_PYTHON -s -S`` (no site-packages of its own) with PYTHONPATH = the extension's installed
site-packages and NUMPY_DIR, so a wheel missing from the zip fails the job.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from addon_installed_check import reconstruct_and_summarise


def main() -> None:
    zip_path, image, mask, samples, out_json, numpy_dir, base_python = sys.argv[1:8]
    import bpy

    r = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert r == {"FINISHED"}, r
    mod = "bl_ext.user_default.d3dface"
    assert mod in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]
    user = Path(os.environ["BLENDER_USER_RESOURCES"])
    site = next(user.glob("extensions/.local/lib/python3*/site-packages"))
    here = Path(out_json).parent
    wrapper = here / "stock-blender-python"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH='{site}{os.pathsep}{numpy_dir}' exec '{base_python}' -s -S \"$@\"\n")
    wrapper.chmod(0o755)
    import importlib

    addon = importlib.import_module(mod)
    jobs = importlib.import_module(mod + ".jobs")
    prefs = bpy.context.preferences.addons[mod].preferences
    prefs.cache_dir = str(here / "cache")
    prefs.python_mode = "EXTERNAL"
    prefs.python_path = str(wrapper)
    summary = {"module": addon.__name__, "site_packages": str(site),
               **reconstruct_and_summarise(mod, image, mask, samples)}
    jobs.RUNNER.shutdown()
    with open(out_json, "w") as fh:
        json.dump(summary, fh)


if __name__ == "__main__":
    main()

"""Write a reconstruction folder (``d3dface reconstruct --out DIR``) into a .blend, through the
Diverse3DFace add-on's own importer, headless (bpy 5.0 module):

    .venv/bin/python scripts/write_blend.py DIR/result.npz OUT.blend

The .blend holds the head object (Basis = fit, "Visible fit", "Sample 01".., latents and
settings in custom properties), the photo as camera background and the fitted camera.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(result: str, out: str) -> int:
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path
    import addon_utils

    sys.path.insert(0, str(REPO))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if addon_utils.enable("d3dface_addon", default_set=True, handle_error=None) is None:
        print("write_blend: error: the add-on did not enable", file=sys.stderr)
        return 2
    scene = Path(result).with_name("blender_scene.npz")
    res = bpy.ops.d3dface.apply_result(result_path=str(result), scene_path=str(scene) if scene.exists() else "")
    if res != {"FINISHED"}:
        print(f"write_blend: error: could not import {result}", file=sys.stderr)
        return 2
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".blend", dir=out.parent)
    os.close(fd)
    try:
        bpy.ops.wm.save_as_mainfile(filepath=tmp, copy=True)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    obj = next(o for o in bpy.data.objects if o.data is not None and getattr(o.data, "shape_keys", None))
    keys = [k.name for k in obj.data.shape_keys.key_blocks]
    print(f"wrote {out}: object {obj.name!r}, {len(obj.data.vertices)} vertices, shape keys {', '.join(keys)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: write_blend.py RESULT.npz OUT.blend", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))

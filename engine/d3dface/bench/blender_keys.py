"""Where the Blender shape-key bench lives and whether it can run (``d3dface bench``).

The timing itself imports bpy, so it is ``scripts/bench_blender_keys.py`` of the folder
given as ``d3dface bench --addon-dir DIR`` (or ``$D3DFACE_ADDON_DIR``), started as its own
process; the engine never imports bpy and never assumes it sits in a development checkout.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import InputFileError


def available() -> bool:
    return importlib.util.find_spec("bpy") is not None


def script(parent: Path) -> Path:
    return parent / "scripts" / "bench_blender_keys.py"


def check_addon_dir(addon_dir: str | os.PathLike) -> Path:
    """The folder holding ``d3dface_addon/`` and ``scripts/bench_blender_keys.py``; a one-line error otherwise."""
    parent = Path(addon_dir).expanduser().resolve()
    for need in (parent / "d3dface_addon" / "scene_writer.py", script(parent)):
        if not need.is_file():
            raise InputFileError(f"--addon-dir {addon_dir}: {need.relative_to(parent)} not found there")
    return parent

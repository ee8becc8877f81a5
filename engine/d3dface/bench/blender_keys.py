"""Where the Blender shape-key bench lives and whether it can run (``d3dface bench``).

The timing itself imports bpy, so it is the checkout's ``scripts/bench_blender_keys.py``,
started as its own process; the engine never imports bpy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def available() -> bool:
    return importlib.util.find_spec("bpy") is not None


def addon_parent() -> Path | None:
    """The folder holding ``d3dface_addon`` (the development checkout), or None."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "d3dface_addon" / "scene_writer.py").is_file() and script(root).is_file() else None


def script(parent: Path) -> Path:
    return parent / "scripts" / "bench_blender_keys.py"

"""Where things are: the shared assets folder, the engine's shipped data and the cache.

Asset location, first match wins: an explicit argument (a CLI ``--assets`` flag),
the ``D3DFACE_ASSETS`` environment variable, then ``shared/assets`` in the current
folder or next to any parent folder of the current folder or of this package
(the development layout has ``../shared`` beside the checkout).

Cache (what the engine computes once and keeps: local models of other head models, mesh
sampling hierarchies, the worker's job folders), first match wins: ``D3DFACE_CACHE``,
``$XDG_CACHE_HOME/d3dface``, ``~/.cache/d3dface``. The Blender add-on passes its own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputFileError

ENV_ASSETS = "D3DFACE_ASSETS"
ENV_CACHE = "D3DFACE_CACHE"
DATA_DIR = Path(__file__).resolve().parent / "data"
MEAN_TEXTURE = Path("flame") / "mean_texture.jpg"  # FLAME's mean albedo in its UV layout, under the assets folder


def cache_dir() -> Path:
    """The engine's cache folder (not created here)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "d3dface"


def _candidates() -> list[Path]:
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    found: list[Path] = []
    for start in starts:
        for folder in [start, *start.parents]:
            for cand in (folder / "shared" / "assets", folder.parent / "shared" / "assets"):
                if cand not in found:
                    found.append(cand)
    return found


def find_assets_dir(explicit: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """The shared assets folder (holding ``flame/`` and ``ict-facekit/``)."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise InputFileError(f"assets folder not found: {p}")
        return p
    env = os.environ.get(ENV_ASSETS)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise InputFileError(f"{ENV_ASSETS} points to a missing folder: {p}")
        return p
    for cand in _candidates():
        if (cand / "flame").is_dir():
            return cand
    if required:
        raise InputFileError(
            f"no assets folder found: pass --assets DIR or set {ENV_ASSETS} (expected ../shared/assets)"
        )
    return None


def flame_assets_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The FLAME topology assets folder (``<assets>/flame``)."""
    return find_assets_dir(explicit) / "flame"


def mean_texture_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """FLAME's mean texture in the assets folder, or None when no assets are found."""
    assets = find_assets_dir(explicit, required=False)
    return None if assets is None else assets / MEAN_TEXTURE

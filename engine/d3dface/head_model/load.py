"""One entry point for head models: the embedded default, a project .npz, a FLAME pickle,
or a FLAME topology assets folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputFileError, ModelFileError
from ..paths import DATA_DIR, find_assets_dir
from .flame_assets import load_flame_topology
from .flame_pickle import load_flame_pickle
from .landmark_embedding import attach_shipped_embedding
from .model import HeadModel

DEFAULT_MODEL_FILE = DATA_DIR / "open_head_model.npz"
ENV_MODEL = "D3DFACE_HEAD_MODEL"


def default_model_path() -> Path:
    env = os.environ.get(ENV_MODEL)
    return Path(env) if env else DEFAULT_MODEL_FILE


def load_head_model(source: str | os.PathLike | None = None, assets: str | os.PathLike | None = None,
                    require_flame: bool = True) -> HeadModel:
    """Load a head model.

    source: None (the embedded open default), a ``.npz`` written by HeadModel.save, a FLAME
    ``.pkl`` (combined with the FLAME topology assets for UVs, regions and landmarks), or a
    folder of FLAME topology assets (template only, no bases).
    """
    if source is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelFileError(
                f"the default head model is not built yet ({path}); run 'd3dface build-open-model' or the README setup"
            )
        model = HeadModel.load(path)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputFileError(f"head model not found: {path}")
        if path.is_dir():
            model = load_flame_topology(path)
        elif path.suffix.lower() == ".npz":
            model = HeadModel.load(path)
        elif path.suffix.lower() in (".pkl", ".pickle"):
            topo_dir = find_assets_dir(assets, required=False)
            topology = load_flame_topology(topo_dir / "flame") if topo_dir is not None else None
            model = load_flame_pickle(path, topology=topology)
        else:
            raise InputFileError(f"unknown head model file type {path.suffix!r} (expected .npz, .pkl or a folder): {path}")
    if require_flame:
        model.require_flame_topology(f"head model {path}")
    attach_shipped_embedding(model)
    return model

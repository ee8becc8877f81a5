"""Load FLAME's topology assets (``shared/assets/flame``) into a HeadModel without bases.

The folder holds the template mesh with UVs, the 14 region masks and the 68-point and
MediaPipe landmark embeddings. It has no shape, expression or pose bases and no
joints or skinning weights (those come from a FLAME pickle or the open default model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, ModelFileError
from .model import FLAME_REGION_NAMES, HeadModel
from .obj_reader import read_obj_with_uvs

TEMPLATE_FILE = "head_template.obj"
MASKS_FILE = "FLAME_masks.npz"
LMK68_FILE = "landmark_embedding.npz"
LMK_MP_FILE = "mediapipe_landmark_embedding.npz"
REQUIRED_FILES = (TEMPLATE_FILE, MASKS_FILE, LMK68_FILE, LMK_MP_FILE)

FLAME_TOPOLOGY_META = {
    "name": "FLAME topology (no bases)",
    "source": "FLAME topology assets: template, UVs, regions, landmark embeddings",
    "licence": "FLAME topology: Max Planck Institute for Intelligent Systems, non-commercial scientific research",
    "attribution": "FLAME: Li, Bolkart, Black, Li, Romero, 'Learning a model of facial shape and expression "
    "from 4D scans', SIGGRAPH Asia 2017. https://flame.is.tue.mpg.de",
}


def check_flame_assets_dir(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"FLAME assets folder not found: {folder}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InputFileError(f"FLAME assets folder {folder} is missing {', '.join(missing)}")
    return folder


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise InputFileError(f"cannot read {path}: {exc}") from None


def template_centre(v: np.ndarray) -> np.ndarray:
    """Centre of the template's bounding box: the asset is placed as in a Blender scene (y ~ 1.3-1.6 m)."""
    return 0.5 * (v.min(0) + v.max(0))


def load_flame_topology(folder: str | Path) -> HeadModel:
    """A HeadModel with the FLAME template (recentred at its bounding-box centre), UVs, regions, landmarks."""
    folder = check_flame_assets_dir(folder)
    v, f, uvs, uv_faces = read_obj_with_uvs(folder / TEMPLATE_FILE)
    v = (v - template_centre(v)).astype(np.float32)

    masks = _load_npz(folder / MASKS_FILE)
    missing = [n for n in FLAME_REGION_NAMES if n not in masks]
    if missing:
        raise ModelFileError(f"{folder / MASKS_FILE} lacks regions {', '.join(missing)}")
    regions = {n: masks[n].astype(np.int32).ravel() for n in FLAME_REGION_NAMES}

    e = _load_npz(folder / LMK68_FILE)
    try:
        lmk68 = {
            "static_faces": e["static_lmk_faces_idx"].astype(np.int32).ravel(),
            "static_bary": e["static_lmk_bary_coords"].astype(np.float32).reshape(-1, 3),
            "dynamic_faces": e["dynamic_lmk_faces_idx"].astype(np.int32),
            "dynamic_bary": e["dynamic_lmk_bary_coords"].astype(np.float32),
            "full_faces": e["full_lmk_faces_idx"].astype(np.int32).ravel(),
            "full_bary": e["full_lmk_bary_coords"].astype(np.float32).reshape(-1, 3),
        }
        m = _load_npz(folder / LMK_MP_FILE)
        lmk_mp = {
            "faces": m["lmk_face_idx"].astype(np.int32).ravel(),
            "bary": m["lmk_b_coords"].astype(np.float32).reshape(-1, 3),
            "ids": m["landmark_indices"].astype(np.int32).ravel(),
        }
    except KeyError as exc:
        raise ModelFileError(f"landmark embedding in {folder} lacks {exc}") from None

    return HeadModel(
        v_template=v,
        faces=f,
        uvs=uvs,
        uv_faces=uv_faces,
        regions=regions,
        lmk68=lmk68,
        lmk_mediapipe=lmk_mp,
        meta=dict(FLAME_TOPOLOGY_META),
    )

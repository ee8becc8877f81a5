"""ICT-FaceKit Light (MIT, USC ICT): the open source of the default head model.

The asset is one .npz (see shared/assets/SOURCES.md): neutral (N, 3) cm, quads with -1 for
triangles, 100 identity and 53 ARKit-named expression deltas (float16, cm), the 68 landmark
vertices (Multi-PIE = iBUG order) and each vertex's part (0 face, 1 head+neck, 2/3 eyeballs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputFileError, ModelFileError

ICT_FILE = "ict_facekit_light.npz"
ICT_KEYS = ("neutral", "faces", "identity_deltas", "expression_deltas", "expression_names", "landmarks68", "part")
PART_FACE, PART_HEAD, PART_EYE_A, PART_EYE_B = 0, 1, 2, 3
ICT_ATTRIBUTION = (
    "ICT-FaceKit (USC Institute for Creative Technologies, Vision and Graphics Lab), MIT licence, "
    "https://github.com/ICT-VGL/ICT-FaceKit (commit da5f95a6). Li, Bladin, Zhao, Chinara, Yang, Gao, Ghosh, "
    "Fyffe, Mostafaei, Kishore, Cabral, Feng, Brothers, Suarez, Cesar, Pizzo, 'Learning Formation of "
    "Physically-Based Face Attributes', CVPR 2020."
)


@dataclass
class IctModel:
    neutral: np.ndarray  # (N, 3) float64, cm
    triangles: np.ndarray  # (T, 3) int64
    identity: np.ndarray  # (100, N, 3) float32, cm
    expression: np.ndarray  # (53, N, 3) float32, cm
    expression_names: list[str]
    landmarks68: np.ndarray  # (68,) vertex indices
    part: np.ndarray  # (N,) int8
    licence_text: str


def quads_to_triangles(quads: np.ndarray) -> np.ndarray:
    """(Q, 4) quads with -1 in the 4th slot for triangles -> (T, 3) triangles (fan split)."""
    tri_a = quads[:, [0, 1, 2]]
    is_quad = quads[:, 3] >= 0
    tri_b = quads[is_quad][:, [0, 2, 3]]
    return np.concatenate([tri_a, tri_b]).astype(np.int64)


def load_ict(folder: str | Path) -> IctModel:
    folder = Path(folder)
    path = folder / ICT_FILE
    if not folder.is_dir():
        raise InputFileError(f"ICT-FaceKit folder not found: {folder}")
    if not path.is_file():
        raise InputFileError(f"ICT-FaceKit folder {folder} is missing {ICT_FILE}")
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in ICT_KEYS if k not in d.files]
            if missing:
                raise ModelFileError(f"{path} lacks {', '.join(missing)}")
            data = {k: d[k] for k in ICT_KEYS}
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(f"cannot read {path}: {exc}") from None
    licence = folder / "LICENSE"
    return IctModel(
        neutral=data["neutral"].astype(np.float64),
        triangles=quads_to_triangles(data["faces"]),
        identity=data["identity_deltas"].astype(np.float32),
        expression=data["expression_deltas"].astype(np.float32),
        expression_names=[str(s) for s in data["expression_names"]],
        landmarks68=data["landmarks68"].astype(np.int64),
        part=data["part"].astype(np.int8),
        licence_text=licence.read_text() if licence.is_file() else "MIT",
    )

"""Our embedding of MediaPipe's 478 face-mesh points on the FLAME topology (shipped data).

``data/mediapipe_embedding.npz`` holds, per MediaPipe id 0..477: the triangle (``faces``) and
barycentric coordinates (``bary``) of its point on the mesh, flags ``contour`` (face-oval
points, which slide along the silhouette with the view) and ``iris`` (468-477, on the eyeballs),
the derivation's per-point spread (metres) and hit count, and the hash of the triangles it was
derived on. It was derived here by ``d3dface build-embedding`` (training/mediapipe_embedding.py)
from MediaPipe's own detections on renders of the open head model; no third-party embedding is
used. ``load_head_model`` attaches it to every head model with the same triangles.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import ModelFileError
from ..inputs.mediapipe_backend import FACE_OVAL
from ..paths import DATA_DIR
from .topology_hash import faces_hash

NUM_MEDIAPIPE_POINTS = 478  # 468 face-mesh points + 10 iris points (refine_landmarks)
IRIS_IDS = np.arange(468, 478)
CONTOUR_IDS = FACE_OVAL
SHIPPED_EMBEDDING = DATA_DIR / "mediapipe_embedding.npz"


@dataclass
class MediaPipeEmbedding:
    """faces (N,) int triangle ids; bary (N, 3); ids (N,) MediaPipe ids; contour, iris (N,) bool;
    spread_m (N,) metres; hit_count (N,) renders that saw the point; faces_hash of the mesh."""

    faces: np.ndarray
    bary: np.ndarray
    ids: np.ndarray
    contour: np.ndarray
    iris: np.ndarray
    spread_m: np.ndarray
    hit_count: np.ndarray
    faces_hash: str
    info: dict = field(default_factory=dict)

    def as_model_entry(self) -> dict[str, np.ndarray]:
        """The ``HeadModel.lmk_mediapipe`` dict: faces, bary, ids, contour, iris."""
        return {"faces": self.faces.astype(np.int64), "bary": self.bary.astype(np.float32),
                "ids": self.ids.astype(np.int64), "contour": self.contour.astype(bool), "iris": self.iris.astype(bool)}

    def save(self, path: str | Path) -> Path:
        arrays = {k: getattr(self, k) for k in ("faces", "bary", "ids", "contour", "iris", "spread_m", "hit_count")}
        meta = np.array(json.dumps({"faces_hash": self.faces_hash, **self.info}))
        return write_atomic(path, lambda tmp: np.savez_compressed(tmp, meta=meta, **arrays))

    @classmethod
    def load(cls, path: str | Path = SHIPPED_EMBEDDING) -> "MediaPipeEmbedding":
        try:
            with np.load(path, allow_pickle=False) as d:
                meta = json.loads(str(d["meta"]))
                arrays = {k: d[k] for k in ("faces", "bary", "ids", "contour", "iris", "spread_m", "hit_count")}
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"cannot read the MediaPipe embedding {path}: {exc}") from None
        return cls(**arrays, faces_hash=meta.pop("faces_hash"), info=meta)


@functools.lru_cache(maxsize=4)
def _load_once(path: str, mtime_ns: int) -> MediaPipeEmbedding:
    """The embedding file read once per path and modification time (every model load attaches it)."""
    return MediaPipeEmbedding.load(path)


def attach_shipped_embedding(model, path: str | Path = SHIPPED_EMBEDDING) -> bool:
    """Replace ``model.lmk_mediapipe`` with the shipped 478-point embedding when the model has the
    triangles it was derived on; returns whether it did (False: file absent or other triangles)."""
    path = Path(path)
    if not path.is_file():
        return False
    emb = _load_once(str(path.resolve()), path.stat().st_mtime_ns)
    if emb.faces_hash != faces_hash(model.faces):
        return False
    model.lmk_mediapipe = emb.as_model_entry()
    return True

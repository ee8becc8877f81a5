"""The HeadModel: a bpy-free, torch-free description of a FLAME-topology head model.

Arrays (numpy, float32 unless said; V vertices, F triangles, J joints):
- ``v_template``  (V, 3) mean head, metres, FLAME axes (y up, looking down +z)
- ``faces``       (F, 3) int32 triangle vertex indices
- ``uvs``         (T, 2) texture coordinates; ``uv_faces`` (F, 3) int32 indices into ``uvs``
- ``shapedirs``   (V, 3, S) identity basis, metres per unit coefficient
- ``exprdirs``    (V, 3, E) expression basis; ``expr_names`` (E,) names where known
- LBS (optional, all or none): ``joint_regressor`` (J, V), ``skinning_weights`` (V, J),
  ``posedirs`` (V, 3, 9*(J-1)) pose correctives, ``parents`` (J,) int32 (-1 for the root),
  ``joint_names`` (J,). FLAME order: root (global), neck, jaw, left eye, right eye.
- ``regions``     name -> int32 vertex indices (the 14 FLAME regions)
- ``lmk68``       FLAME's 68-point embedding: ``static_faces`` (51,), ``static_bary`` (51, 3),
  ``dynamic_faces`` (79, 17), ``dynamic_bary`` (79, 17, 3), ``full_faces`` (68,), ``full_bary`` (68, 3)
- ``lmk_mediapipe`` embedded MediaPipe points: ``faces`` (N,), ``bary`` (N, 3), ``ids`` (N,) MediaPipe ids, optional
  ``contour`` and ``iris`` (N,) bool (FLAME-topology models get the shipped 478-point embedding on load)
- ``meta``        str -> str (name, source, licence, attribution)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from ..errors import ModelFileError

FORMAT_NAME = "d3dface-head-model"
FORMAT_VERSION = 1
FLAME_NUM_VERTICES = 5023
FLAME_NUM_FACES = 9976
FLAME_JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
FLAME_PARENTS = (-1, 0, 1, 1, 1)
FLAME_REGION_NAMES = (
    "eye_region", "neck", "left_eyeball", "right_eyeball", "right_ear", "right_eye_region", "forehead",
    "lips", "nose", "scalp", "boundary", "face", "left_ear", "left_eye_region",
)
LMK68_KEYS = ("static_faces", "static_bary", "dynamic_faces", "dynamic_bary", "full_faces", "full_bary")
LMK_MP_KEYS = ("faces", "bary", "ids")


@dataclass
class HeadModel:
    v_template: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    shapedirs: np.ndarray | None = None
    exprdirs: np.ndarray | None = None
    expr_names: list[str] = field(default_factory=list)
    joint_regressor: np.ndarray | None = None
    skinning_weights: np.ndarray | None = None
    posedirs: np.ndarray | None = None
    parents: np.ndarray | None = None
    joint_names: list[str] = field(default_factory=list)
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    lmk68: dict[str, np.ndarray] = field(default_factory=dict)
    lmk_mediapipe: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        V = self.v_template.shape[0]
        if self.shapedirs is None:
            self.shapedirs = np.zeros((V, 3, 0), np.float32)
        if self.exprdirs is None:
            self.exprdirs = np.zeros((V, 3, 0), np.float32)
        self.validate()

    # ---- sizes ------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expr(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def has_lbs(self) -> bool:
        return self.joint_regressor is not None

    @property
    def num_joints(self) -> int:
        return int(self.joint_regressor.shape[0]) if self.has_lbs else 0

    @property
    def is_flame_topology(self) -> bool:
        return self.num_vertices == FLAME_NUM_VERTICES and self.num_faces == FLAME_NUM_FACES

    # ---- checks -----------------------------------------------------------------
    def validate(self) -> None:
        """Raise ModelFileError naming the first inconsistent array."""
        V = self.v_template.shape[0] if self.v_template.ndim == 2 else -1

        def bad(msg: str) -> None:
            raise ModelFileError(f"invalid head model: {msg}")

        if self.v_template.ndim != 2 or self.v_template.shape[1] != 3:
            bad(f"v_template has shape {self.v_template.shape}, expected (V, 3)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            bad(f"faces has shape {self.faces.shape}, expected (F, 3)")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= V):
            bad("faces index vertices out of range")
        for name in ("shapedirs", "exprdirs"):
            a = getattr(self, name)
            if a.ndim != 3 or a.shape[:2] != (V, 3):
                bad(f"{name} has shape {a.shape}, expected ({V}, 3, K)")
        if self.expr_names and len(self.expr_names) != self.num_expr:
            bad(f"{len(self.expr_names)} expression names for {self.num_expr} expressions")
        lbs = [self.joint_regressor, self.skinning_weights, self.posedirs, self.parents]
        if any(a is not None for a in lbs):
            if any(a is None for a in lbs):
                bad("LBS data is partial: joint regressor, skinning weights, pose correctives and parents go together")
            J = self.joint_regressor.shape[0]
            if self.joint_regressor.shape != (J, V):
                bad(f"joint_regressor has shape {self.joint_regressor.shape}, expected (J, {V})")
            if self.skinning_weights.shape != (V, J):
                bad(f"skinning_weights has shape {self.skinning_weights.shape}, expected ({V}, {J})")
            if self.posedirs.shape != (V, 3, 9 * (J - 1)):
                bad(f"posedirs has shape {self.posedirs.shape}, expected ({V}, 3, {9 * (J - 1)})")
            if self.parents.shape != (J,) or self.parents[0] != -1 or np.any(self.parents[1:] >= np.arange(1, J)):
                bad("parents must list each joint's parent before it, with -1 for the root")
        if self.uvs is not None:
            if self.uv_faces is None or self.uv_faces.shape != self.faces.shape:
                bad("uv_faces must match faces")
        for name, idx in self.regions.items():
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= V)):
                bad(f"region {name!r} indexes vertices out of range")
        F = self.faces.shape[0]
        for key in ("static_faces", "dynamic_faces", "full_faces"):
            a = self.lmk68.get(key)
            if a is not None and a.size and (a.min() < 0 or a.max() >= F):
                bad(f"68-landmark embedding {key} indexes faces out of range")
        a = self.lmk_mediapipe.get("faces")
        if a is not None and a.size and (a.min() < 0 or a.max() >= F):
            bad("MediaPipe landmark embedding indexes faces out of range")

    def require_flame_topology(self, what: str = "head model") -> None:
        if not self.is_flame_topology:
            raise ModelFileError(
                f"{what} has {self.num_vertices} vertices and {self.num_faces} faces; "
                f"the FLAME topology has {FLAME_NUM_VERTICES} and {FLAME_NUM_FACES}"
            )

    # ---- summary ----------------------------------------------------------------
    def summary(self) -> dict:
        return {
            "name": self.meta.get("name", ""),
            "vertices": self.num_vertices,
            "faces": self.num_faces,
            "uvs": 0 if self.uvs is None else int(self.uvs.shape[0]),
            "shape_components": self.num_shape,
            "expression_components": self.num_expr,
            "joints": self.num_joints,
            "joint_names": list(self.joint_names),
            "pose_correctives": 0 if self.posedirs is None else int(self.posedirs.shape[2]),
            "regions": sorted(self.regions),
            "landmarks68": int(len(self.lmk68.get("full_faces", []))),
            "landmarks_mediapipe": int(len(self.lmk_mediapipe.get("faces", []))),
            "flame_topology": self.is_flame_topology,
            "licence": self.meta.get("licence", ""),
        }

    # ---- project .npz -----------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "format": np.array(FORMAT_NAME),
            "format_version": np.array(FORMAT_VERSION),
            "meta_json": np.array(json.dumps(self.meta, sort_keys=True)),
            "v_template": self.v_template.astype(np.float32),
            "faces": self.faces.astype(np.int32),
            "shapedirs": self.shapedirs.astype(np.float32),
            "exprdirs": self.exprdirs.astype(np.float32),
            "expr_names": np.array(list(self.expr_names), dtype=str),
            "joint_names": np.array(list(self.joint_names), dtype=str),
        }
        if self.uvs is not None:
            out["uvs"] = self.uvs.astype(np.float32)
            out["uv_faces"] = self.uv_faces.astype(np.int32)
        if self.has_lbs:
            out["joint_regressor"] = self.joint_regressor.astype(np.float32)
            out["skinning_weights"] = self.skinning_weights.astype(np.float32)
            out["posedirs"] = self.posedirs.astype(np.float32)
            out["parents"] = self.parents.astype(np.int32)
        for name, idx in self.regions.items():
            out[f"region/{name}"] = idx.astype(np.int32)
        for key, a in self.lmk68.items():
            out[f"lmk68/{key}"] = a
        for key, a in self.lmk_mediapipe.items():
            out[f"lmk_mediapipe/{key}"] = a
        return out

    def save(self, path: str | Path, compressed: bool = True) -> Path:
        """Write the project's versioned .npz atomically."""
        arrays = self.to_arrays()
        saver = np.savez_compressed if compressed else np.savez
        return write_atomic(path, lambda p: saver(p, **arrays))

    @classmethod
    def from_arrays(cls, d, source: str = "arrays") -> "HeadModel":
        if "format" not in d or str(d["format"]) != FORMAT_NAME:
            raise ModelFileError(f"{source} is not a d3dface head model (.npz without the format tag)")
        version = int(d["format_version"])
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source} is head-model format {version}; this engine reads up to {FORMAT_VERSION}: update d3dface"
            )
        get = lambda k: np.asarray(d[k]) if k in d else None  # noqa: E731
        keys = list(d.keys())
        return cls(
            v_template=get("v_template"),
            faces=get("faces"),
            uvs=get("uvs"),
            uv_faces=get("uv_faces"),
            shapedirs=get("shapedirs"),
            exprdirs=get("exprdirs"),
            expr_names=[str(s) for s in get("expr_names")],
            joint_regressor=get("joint_regressor"),
            skinning_weights=get("skinning_weights"),
            posedirs=get("posedirs"),
            parents=get("parents"),
            joint_names=[str(s) for s in get("joint_names")],
            regions={k.split("/", 1)[1]: get(k) for k in keys if k.startswith("region/")},
            lmk68={k.split("/", 1)[1]: get(k) for k in keys if k.startswith("lmk68/")},
            lmk_mediapipe={k.split("/", 1)[1]: get(k) for k in keys if k.startswith("lmk_mediapipe/")},
            meta=json.loads(str(d["meta_json"])),
        )

    @classmethod
    def load(cls, path: str | Path) -> "HeadModel":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls.from_arrays({k: d[k] for k in d.files}, source=str(path))
        except ModelFileError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"cannot read head model {path}: {exc}") from None

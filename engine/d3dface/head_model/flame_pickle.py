"""Read official FLAME pickles (FLAME 2020 ``generic_model.pkl``, FLAME 2023, FLAME 2023 Open)
without chumpy, through a restricted unpickler.

Unpickling can run arbitrary code. Only load files the user chose; and even then this
unpickler admits nothing but the classes a FLAME file is made of: numpy arrays, dtypes
and scalars, scipy sparse matrices, and chumpy's array classes (replaced by an inert
stand-in that only keeps its stored array). Any other class is refused with an error.

A FLAME pickle is a dict: ``v_template`` (5023, 3), ``f`` (9976, 3), ``shapedirs``
(5023, 3, 300 shape + 100 expression), ``posedirs`` (5023, 3, 36), ``J_regressor``
(sparse, 5 x 5023), ``weights`` (5023, 5), ``kintree_table`` (2, 5), ``J`` (5, 3).
It has no UVs, regions or landmarks: those come from the FLAME topology assets.
"""

from __future__ import annotations

import copyreg
import pickle
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ModelFileError
from .model import FLAME_JOINT_NAMES, HeadModel

FLAME_NUM_SHAPE = 300

_NUMPY_MODULES = ("numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
_NUMPY_NAMES = {"ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer"}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix"}
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse.csr", "scipy.sparse.coo",
                   "scipy.sparse._csc", "scipy.sparse._csr", "scipy.sparse._coo")


_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}


class ChumpyStandIn:
    """Inert stand-in for any chumpy class: keeps the pickled state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self._state: dict = {}

    def __setstate__(self, state):
        self._state = state if isinstance(state, dict) else {"state": state}

    def to_numpy(self) -> np.ndarray:
        state = self._state
        for key in ("x", "a", "r"):
            if isinstance(state.get(key), np.ndarray):
                return state[key]
        arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
        if len(arrays) == 1:
            return arrays[0]
        raise ModelFileError("a chumpy object in the FLAME file holds no single array")


class RestrictedFlameUnpickler(pickle.Unpickler):
    """Admit only the classes a FLAME pickle needs (see the module docstring)."""

    def find_class(self, module: str, name: str):
        if module in _NUMPY_MODULES and name in _NUMPY_NAMES:
            import importlib

            for mod in (module, module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
                try:
                    return getattr(importlib.import_module(mod), name)
                except (ImportError, AttributeError):
                    continue
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyStandIn
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _safe_reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":  # how Python 3 protocol-2 pickles store bytes
            import codecs

            return codecs.encode
        raise ModelFileError(f"refused to load {module}.{name} from the pickle: not a class a FLAME file uses")


def _safe_reconstructor(cls, base, state):
    if cls is not ChumpyStandIn:
        raise ModelFileError(f"refused to rebuild {cls!r} from the pickle")
    return copyreg._reconstructor(cls, base, state)


def _as_array(value, key: str) -> np.ndarray:
    if isinstance(value, ChumpyStandIn):
        value = value.to_numpy()
    if hasattr(value, "toarray"):
        value = value.toarray()
    if not isinstance(value, np.ndarray):
        raise ModelFileError(f"FLAME pickle field {key!r} is {type(value).__name__}, not an array")
    return value


def read_flame_pickle_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"FLAME file not found: {path}")
    try:
        with open(path, "rb") as fh:
            data = RestrictedFlameUnpickler(fh, encoding="latin1").load()
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise ModelFileError(f"{path} is not a FLAME pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} is not a FLAME pickle (holds a {type(data).__name__}, not a dict)")
    needed = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
    missing = [k for k in needed if k not in data]
    if missing:
        raise ModelFileError(f"{path} is not a FLAME pickle (missing {', '.join(missing)})")
    return data


def load_flame_pickle(path: str | Path, topology: HeadModel | None = None, num_shape: int = FLAME_NUM_SHAPE) -> HeadModel:
    """A HeadModel from a FLAME pickle; UVs, regions and landmarks are taken from ``topology``
    (the FLAME topology assets), which must have the same vertex and face counts."""
    data = read_flame_pickle_dict(path)
    arr = {k: _as_array(data[k], k) for k in ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")}
    v = arr["v_template"].astype(np.float32)
    faces = arr["f"].astype(np.int64)
    dirs = arr["shapedirs"].astype(np.float32)
    if v.ndim != 2 or v.shape[1] != 3 or dirs.ndim != 3 or dirs.shape[:2] != v.shape:
        raise ModelFileError(f"{path}: v_template {v.shape} and shapedirs {dirs.shape} do not fit together")
    n_shape = min(num_shape, dirs.shape[2])
    parents = arr["kintree_table"][0].astype(np.int64)
    parents = np.where(parents >= len(parents), -1, parents).astype(np.int32)  # root is stored as uint32 max
    J = parents.shape[0]
    posedirs = arr["posedirs"].astype(np.float32)
    if posedirs.ndim == 2:  # (P, V*3) layout
        posedirs = posedirs.reshape(-1, v.shape[0], 3).transpose(1, 2, 0)
    model_kwargs = {}
    if topology is not None:
        if topology.num_vertices != v.shape[0] or topology.num_faces != faces.shape[0]:
            raise ModelFileError(
                f"{path} has {v.shape[0]} vertices and {faces.shape[0]} faces; the FLAME topology assets have "
                f"{topology.num_vertices} and {topology.num_faces}"
            )
        if not np.array_equal(np.sort(topology.faces, axis=1), np.sort(faces, axis=1)):
            raise ModelFileError(f"{path}: its triangles differ from the FLAME topology assets")
        model_kwargs = dict(uvs=topology.uvs, uv_faces=topology.uv_faces, regions=topology.regions,
                            lmk68=topology.lmk68, lmk_mediapipe=topology.lmk_mediapipe)
    n_expr = dirs.shape[2] - n_shape
    return HeadModel(
        v_template=v,
        faces=faces.astype(np.int32),
        shapedirs=np.ascontiguousarray(dirs[:, :, :n_shape]),
        exprdirs=np.ascontiguousarray(dirs[:, :, n_shape:]),
        expr_names=[f"expr{i:03d}" for i in range(n_expr)],
        joint_regressor=arr["J_regressor"].astype(np.float32),
        skinning_weights=arr["weights"].astype(np.float32),
        posedirs=posedirs,
        parents=parents,
        joint_names=list(FLAME_JOINT_NAMES) if J == len(FLAME_JOINT_NAMES) else [f"joint{i}" for i in range(J)],
        meta={
            "name": f"FLAME ({Path(path).name})",
            "source": str(Path(path).name),
            "licence": "FLAME: Max Planck Institute for Intelligent Systems, non-commercial scientific research",
            "attribution": "FLAME: Li, Bolkart, Black, Li, Romero, SIGGRAPH Asia 2017. https://flame.is.tue.mpg.de",
        },
        **model_kwargs,
    )

"""Write a FLAME-format pickle in a test: the real FLAME topology with synthetic but
structurally faithful bases, joints, skinning weights and pose correctives, stored with the
object types an official file uses (chumpy arrays, a scipy sparse joint regressor,
uint32 kintree with the root marked 2**32-1, protocol 2, latin-1 compatible)."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from d3dface.head_model.obj_reader import read_obj_with_uvs


def _install_fake_chumpy():
    """A class importable as chumpy.ch.Ch while pickling, shaped like chumpy's Ch (state {'x': array})."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set(), "_itr": None}

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    return Ch


def _remove_fake_chumpy():
    sys.modules.pop("chumpy", None)
    sys.modules.pop("chumpy.ch", None)


def synthetic_flame_arrays(flame_dir: Path, seed: int = 0, num_vertices_keep: int | None = None) -> dict:
    """Numpy arrays of a synthetic FLAME model on the real topology."""
    rng = np.random.default_rng(seed)
    v, f, _, _ = read_obj_with_uvs(flame_dir / "head_template.obj")
    v = (v - 0.5 * (v.min(0) + v.max(0))).astype(np.float64)
    V = v.shape[0]
    masks = np.load(flame_dir / "FLAME_masks.npz")
    # smooth, low-frequency displacement fields: products of sinusoids of position
    def fields(n, scale):
        freq = rng.normal(0, 8.0, size=(n, 3, 3))
        phase = rng.uniform(0, np.pi, size=(n, 3))
        amp = rng.normal(0, scale, size=(n, 3))
        out = np.empty((V, 3, n))
        for k in range(n):
            out[:, :, k] = amp[k] * np.sin(v @ freq[k] + phase[k])
        return out
    shapedirs = np.concatenate([fields(300, 2e-3), fields(100, 1e-3)], axis=2)
    posedirs = fields(36, 2e-4)

    # joints: root at the neck base, neck at the neck region centre, jaw behind the mouth, eyes in the eyeballs
    neck = masks["neck"]
    J_reg = np.zeros((5, V))
    low = neck[np.argsort(v[neck, 1])[:40]]
    J_reg[0, low] = 1.0 / len(low)
    J_reg[1, neck] = 1.0 / len(neck)
    lips = masks["lips"]
    J_reg[2, lips] = 1.0 / len(lips)
    J_reg[3, masks["left_eyeball"]] = 1.0 / len(masks["left_eyeball"])
    J_reg[4, masks["right_eyeball"]] = 1.0 / len(masks["right_eyeball"])

    weights = np.zeros((V, 5))
    weights[:, 1] = 1.0
    weights[neck, 0] = 0.5
    weights[neck, 1] = 0.5
    jaw_center = J_reg[2] @ v
    jaw = np.where((v[:, 1] < jaw_center[1] - 0.01) & (v[:, 2] > jaw_center[2] - 0.06))[0]
    jaw = np.setdiff1d(jaw, neck)
    weights[jaw] = 0.0
    weights[jaw, 2] = 1.0
    # a blended band between head and jaw
    band = np.where((np.abs(v[:, 1] - (jaw_center[1] - 0.005)) < 0.005) & (v[:, 2] > jaw_center[2] - 0.06))[0]
    band = np.setdiff1d(band, np.concatenate([neck, jaw]))
    weights[band] = 0.0
    weights[band, 1] = 0.5
    weights[band, 2] = 0.5
    for j, name in ((3, "left_eyeball"), (4, "right_eyeball")):
        weights[masks[name]] = 0.0
        weights[masks[name], j] = 1.0
    kintree = np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)
    out = dict(
        v_template=v, f=f.astype(np.uint32), shapedirs=shapedirs, posedirs=posedirs,
        J_regressor=J_reg, weights=weights, kintree_table=kintree, J=J_reg @ v,
        jaw_vertices=jaw, band_vertices=band,
    )
    if num_vertices_keep is not None:  # a model of another topology, for error tests
        keep = num_vertices_keep
        out["v_template"] = v[:keep]
        out["shapedirs"] = shapedirs[:keep]
        out["posedirs"] = posedirs[:keep]
        out["J_regressor"] = J_reg[:, :keep]
        out["weights"] = weights[:keep]
        out["f"] = f[(f < keep).all(1)].astype(np.uint32)
    return out


def write_flame_pickle(path: Path, arrays: dict) -> Path:
    """Pickle like FLAME 2020's generic_model.pkl: chumpy for v_template, shapedirs, weights, J;
    plain ndarray for posedirs, f, kintree_table; csc_matrix for J_regressor."""
    Ch = _install_fake_chumpy()
    try:
        data = {
            "v_template": Ch(arrays["v_template"]),
            "shapedirs": Ch(arrays["shapedirs"]),
            "weights": Ch(arrays["weights"]),
            "J": Ch(arrays["J"]),
            "posedirs": np.asarray(arrays["posedirs"]),
            "f": arrays["f"],
            "kintree_table": arrays["kintree_table"],
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    finally:
        _remove_fake_chumpy()
    return path

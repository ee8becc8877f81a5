"""A soft partition of the head into the FLAME regions, for the local models.

FLAME's 14 region masks overlap (``face`` holds the nose, lips, eyes...). Each non-eyeball
vertex is given to one region (smaller, more specific regions first), vertices in no region
take their nearest region over the mesh graph, and the indicators are smoothed over the mesh
so that local displacements blend without seams. Eyeballs belong to no local model.
"""

from __future__ import annotations

import numpy as np

from ..head_model.mesh_quality import adjacency, smooth_field
from ..head_model.model import HeadModel

LOCAL_REGIONS = ("lips", "nose", "right_eye_region", "left_eye_region", "forehead", "eye_region",
                 "right_ear", "left_ear", "face", "scalp", "neck", "boundary")
EYEBALLS = ("left_eyeball", "right_eyeball")


def eyeball_vertices(model: HeadModel) -> np.ndarray:
    return np.concatenate([model.regions[name] for name in EYEBALLS])


def hard_partition(model: HeadModel, names=LOCAL_REGIONS) -> np.ndarray:
    """(V,) region index per vertex (-1 for eyeballs)."""
    V = model.num_vertices
    label = -np.ones(V, np.int64)
    for i, name in enumerate(names):
        idx = model.regions[name]
        label[idx[label[idx] < 0]] = i
    eyes = eyeball_vertices(model)
    label[eyes] = -2  # never assigned
    A = adjacency(model.faces, V).tocsr()
    for _ in range(V):  # grow labelled regions into unlabelled vertices
        todo = np.where(label == -1)[0]
        if len(todo) == 0:
            break
        for v in todo:
            nb = A.indices[A.indptr[v]:A.indptr[v + 1]]
            labs = label[nb][label[nb] >= 0]
            if len(labs):
                label[v] = np.bincount(labs).argmax()
    label[label < 0] = -1
    return label


def soft_partition(model: HeadModel, names=LOCAL_REGIONS, smoothing: int = 3) -> np.ndarray:
    """(R, V) weights, each vertex's weights summing to 1 (0 for eyeballs)."""
    label = hard_partition(model, names)
    W = np.zeros((model.num_vertices, len(names)))
    ok = label >= 0
    W[np.where(ok)[0], label[ok]] = 1.0
    W = smooth_field(W, model.faces, ok, iterations=smoothing)
    W[~ok] = 0
    s = W.sum(1, keepdims=True)
    W = np.where(s > 0, W / np.maximum(s, 1e-12), 0)
    return W.T.astype(np.float32)

"""Stitch completions to the partial fit: every sample takes S_m exactly where the photo shows
the face and its own shape where it is hidden, with a smooth transition a few vertex rings
wide inside the hidden part (displacements are blended, so no seam or step appears).

The raw Algorithm 2 samples agree with S_m on the visible vertices only up to the Mesh-VAE's
reconstruction error (about 1-2 mm); stitching removes that disagreement. It is what the
product writes by default; the raw samples remain in the result file and in the evaluation.
"""

from __future__ import annotations

import numpy as np

from ..head_model.mesh_quality import adjacency


def transition_weights(faces: np.ndarray, occluded: np.ndarray, rings: int = 3) -> np.ndarray:
    """(V,) weights: 0 on visible vertices, rising smoothly to 1 over ``rings`` rings into the hidden part."""
    V = occluded.shape[0]
    A = adjacency(faces, V)
    depth = np.full(V, np.inf)
    reached = ~occluded.copy()
    depth[reached] = 0
    for r in range(1, rings + 1):
        grow = (A @ reached.astype(float) > 0) & ~reached
        depth[grow] = r
        reached |= grow
    t = np.clip(depth / (rings + 1), 0, 1)
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep; inf depth -> 1


def stitch(samples: np.ndarray, partial: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """samples (..., V, 3), partial (V, 3), weights (V,) -> S_m + w * (sample - S_m)."""
    return (partial + weights[:, None] * (samples - partial)).astype(np.float32)

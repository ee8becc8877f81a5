"""What the partial fit sees of one photo: a square crop with landmarks and masks, in crop pixels.

Pixel convention (the renderer's): the centre of pixel (row r, column c) is at (c, r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inputs.prepare import CropInfo, FaceInputs


@dataclass
class CropEvidence:
    image: np.ndarray  # (S, S, 3) float32 RGB in [0, 1]
    landmarks68: np.ndarray  # (68, 2) crop px
    valid68: np.ndarray  # (68,) bool
    face_mask: np.ndarray  # (S, S) bool, M_f
    occlusion_mask: np.ndarray  # (S, S) bool, M_o
    points_mp: np.ndarray | None = None  # (478, 2) crop px of MediaPipe's face-mesh points, by MediaPipe id
    valid_mp: np.ndarray | None = None  # (478,) bool: seen (outside M_o grown by the margin) and in the crop
    crop: CropInfo | None = None  # crop of the original photo (None: the image is the crop)

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


def _valid_points(points: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    S = occlusion.shape[0]
    xy = np.round(points).astype(int)
    inside = (xy >= 0).all(1) & (xy < S).all(1)
    valid = inside.copy()
    valid[inside] = ~occlusion[xy[inside, 1], xy[inside, 0]]
    return valid


def evidence_from_inputs(inputs: FaceInputs) -> CropEvidence:
    """Crop the photo, landmarks and masks of ``prepare_face_inputs`` to the fit's square crop.

    Landmark backends report continuous coordinates with pixel centres at +0.5; the crop's
    warp uses centres at integers, hence the half-pixel shift before cropping."""
    crop = inputs.crop
    img = crop.apply(inputs.image).astype(np.float32) / 255.0
    m_f = crop.apply(inputs.face_mask)
    m_o = crop.apply(inputs.occlusion_mask)
    lm = inputs.landmarks
    p68 = crop.to_crop(lm.points68 - 0.5)
    dense = lm.dense if lm.backend == "mediapipe" else None
    mp = None if dense is None else crop.to_crop(dense - 0.5)
    valid_mp = None
    if mp is not None:
        valid_mp = _valid_points(mp, m_o) & (np.ones(len(mp), bool) if lm.valid_dense is None else lm.valid_dense)
    return CropEvidence(
        image=img,
        landmarks68=p68.astype(np.float32),
        valid68=lm.valid68.copy(),
        face_mask=m_f,
        occlusion_mask=m_o,
        points_mp=None if mp is None else mp.astype(np.float32),
        valid_mp=valid_mp,
        crop=crop,
    )

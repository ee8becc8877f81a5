"""``prepare_face_inputs``: everything Algorithm 1 needs from one photo."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputFileError
from .image_io import load_image
from .landmarks_base import Landmarks, detect_landmarks
from .masks import estimate_occlusion, face_mask, load_user_mask
from .settings import InputSettings, LandmarkSettings, MaskSettings


@dataclass
class CropInfo:
    """A square crop around the face, as the fit uses it (paper: 224 px)."""

    box: np.ndarray          # (4,) x0, y0, x1, y1 in original px (may extend past the image)
    size: int                # crop side in px (InputSettings.crop_size)

    @property
    def scale(self) -> float:
        """Crop px per original px."""
        return self.size / float(self.box[2] - self.box[0])

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float64) - self.box[:2]) * self.scale

    def from_crop(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, np.float64) / self.scale + self.box[:2]

    def apply(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        """``image`` (H, W[, C]) cropped and resized to (size, size[, C]); outside pixels are 0."""
        import cv2

        s = self.scale
        m = np.array([[s, 0, -self.box[0] * s], [0, s, -self.box[1] * s]], np.float64)
        src = image.astype(np.uint8) if image.dtype == bool else image
        out = cv2.warpAffine(src, m, (self.size, self.size),
                             flags=cv2.INTER_NEAREST if nearest or image.dtype == bool else cv2.INTER_AREA,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out > 0 if image.dtype == bool else out


def face_crop(face_box, enlarge: float, size: int) -> CropInfo:
    """Square crop centred on the face box, its side ``enlarge`` x the box's larger side."""
    b = np.asarray(face_box, np.float64)
    c = (b[:2] + b[2:]) / 2
    half = enlarge * max(b[2] - b[0], b[3] - b[1]) / 2
    return CropInfo(box=np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half]), size=size)


@dataclass
class FaceInputs:
    """One photo ready for the partial fit: all arrays in original-image pixels."""

    image: np.ndarray            # (H, W, 3) uint8 RGB
    landmarks: Landmarks         # 68 (and 105 MediaPipe) points, confidence, validity
    face_mask: np.ndarray        # M_f (H, W) bool
    occlusion_mask: np.ndarray   # M_o (H, W) bool
    crop: CropInfo
    mask_source: str             # "auto", "none", or the mask path
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def valid68(self) -> np.ndarray:
        return self.landmarks.valid68

    @property
    def occluded_fraction_of_face(self) -> float:
        """Share of M_f that M_o hides (4 decimals)."""
        return round(float((self.occlusion_mask & self.face_mask).sum() / max(self.face_mask.sum(), 1)), 4)

    def summary(self) -> dict:
        lm = self.landmarks
        h, w = self.image.shape[:2]
        return {
            "source": self.source,
            "image_size": [w, h],
            "backend": lm.backend,
            "face_count": lm.face_count,
            "face_box": [round(float(v), 2) for v in lm.face_box],
            "inter_ocular_px": round(lm.inter_ocular, 2),
            "has_confidence": lm.has_confidence,
            "valid_landmarks": int(lm.valid68.sum()),
            "mask_source": self.mask_source,
            "face_mask_fraction": round(float(self.face_mask.mean()), 4),
            "occluded_fraction_of_face": self.occluded_fraction_of_face,
            "crop_box": [round(float(v), 2) for v in self.crop.box],
            "crop_size": self.crop.size,
        }


def prepare_face_inputs(
    image,
    mask: str | os.PathLike | np.ndarray | None = MaskSettings.occlusion,
    backend: str = LandmarkSettings.backend,
    settings: InputSettings | None = None,
    fan_weights=None,
) -> FaceInputs:
    """Load ``image`` (path, bytes or array), find the largest face, build M_f and M_o, flag landmarks.

    ``mask``: "auto" (automatic estimate), "none"/None (nothing occluded), a mask image
    path or an (H', W') array (white/True = occluded, resized to the image).
    A landmark is valid when its confidence > tau and it is not within
    ``occlusion_margin`` x IOD of M_o.
    """
    settings = settings or InputSettings()
    source = image if isinstance(image, (str, os.PathLike)) else "array"
    rgb = load_image(image, settings.image)
    lm = detect_landmarks(rgb, backend, settings.landmarks, fan_weights=fan_weights)
    m_face = face_mask(lm, rgb.shape[:2])
    if isinstance(mask, np.ndarray):
        m_occ = load_user_mask(mask, rgb.shape[:2], settings.masks.user_mask_threshold)
        mask_source = "array"
    elif mask is None or str(mask) == "none":
        m_occ = np.zeros(rgb.shape[:2], bool)
        mask_source = "none"
    elif str(mask) == "auto":
        m_occ = estimate_occlusion(rgb, lm, m_face, settings.masks.auto)
        mask_source = "auto"
    elif isinstance(mask, (str, os.PathLike)):
        m_occ = load_user_mask(mask, rgb.shape[:2], settings.masks.user_mask_threshold)
        mask_source = str(mask)
    else:
        raise InputFileError(f"mask must be 'auto', 'none', a path or an array, not {type(mask).__name__}")
    lm = lm.with_occlusion(m_occ, settings.landmarks.tau, settings.landmarks.occlusion_margin)
    return FaceInputs(
        image=rgb,
        landmarks=lm,
        face_mask=m_face,
        occlusion_mask=m_occ,
        crop=face_crop(lm.face_box, settings.crop_enlarge, settings.crop_size),
        mask_source=mask_source,
        source=str(source),
        notes=list(lm.notes),
    )

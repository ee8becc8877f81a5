"""Defaults of the face-inputs stage, one place each (DESIGN 2: settings are dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("auto", "mediapipe", "fan")


@dataclass(frozen=True)
class ImageSettings:
    """Limits on what ``load_image`` accepts."""

    min_side: int = 16              # px; smaller images cannot hold a usable face
    max_pixels: int = 150_000_000   # refuse absurd images before they exhaust memory
    alpha_background: int = 128     # grey that transparent pixels are composited onto


@dataclass(frozen=True)
class LandmarkSettings:
    """Landmark detection and the validity rule of Algorithm 1."""

    backend: str = "auto"           # "auto" (FAN if its weights are present, else MediaPipe), "mediapipe", "fan"
    tau: float = 0.2                # paper: a landmark is valid when its confidence > tau
    occlusion_margin: float = 0.03  # a landmark within this fraction of the inter-ocular distance of M_o is invalid
    detect_max_side: int = 1024     # detection runs on a copy no larger than this (coordinates reported in original px)
    detect_min_side: int = 256      # ... and no smaller than this (tiny images are upscaled)
    refine_face_px: int = 384       # the chosen face is re-detected on an original-resolution crop of this size
    max_faces: int = 8              # faces counted per image (the largest is used)
    min_detection_confidence: float = 0.5
    refine_mediapipe: bool = True   # MediaPipe attention model (iris and lip refinement)


@dataclass(frozen=True)
class AutoMaskSettings:
    """The automatic occlusion estimate (``masks.estimate_occlusion``)."""

    method: str = "net"              # "net" (the shipped occlusion network) or "skin" (the skin-colour model below)
    net_threshold: float = 0.5       # the network's probability above which a pixel is occluded
    net_min_component: float = 0.004 # occluded blobs smaller than this fraction of the face are dropped
    net_face_grow: float = 0.4       # the network's mask is kept inside M_f grown by this fraction of the IOD
    net_test_shift: float = 3.0      # crop px: the probability averages the crop and 4 crops shifted this far (0: one crop)
    skin_threshold: float = 4.0      # Mahalanobis distance (chroma + damped lightness) beyond which a pixel is not skin
    lightness_weight: float = 0.2    # lightness counts this much relative to chroma (shading varies more than hue)
    seed_agreement: float = 12.0     # seed patches whose median (weighted Lab) colours are this close agree
    min_variance: float = 4.0        # floor added to the skin covariance (weighted Lab units squared)
    min_component: float = 0.012     # a non-skin blob must cover this fraction of the face outside facial features
    feature_margin: float = 0.06     # eyes/brows/lips/nostrils zones are dilated by this fraction of the IOD
    hull_erode: float = 0.04         # the face hull is eroded by this fraction of the face size (hair, background)
    smooth: float = 0.03             # closing radius, fraction of the face size


@dataclass(frozen=True)
class MaskSettings:
    occlusion: str = "auto"         # "auto", "none", or a mask image path (white = occluded)
    user_mask_threshold: int = 128  # 8-bit level above which a user mask pixel is occluded
    auto: AutoMaskSettings = field(default_factory=AutoMaskSettings)


@dataclass(frozen=True)
class InputSettings:
    crop_size: int = 224            # px, side of the square face crop the fit works in (paper: 224)
    crop_enlarge: float = 1.25      # the crop's side is this times the face box's larger side
    image: ImageSettings = field(default_factory=ImageSettings)
    landmarks: LandmarkSettings = field(default_factory=LandmarkSettings)
    masks: MaskSettings = field(default_factory=MaskSettings)

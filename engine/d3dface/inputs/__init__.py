"""inputs stage of the pipeline: image loading, landmarks with validity, face and occlusion
masks. Imports nothing from higher layers (synthetic occluders live in ``evaluation``)."""

from .image_io import load_image
from .landmarks_base import BackendUnavailable, Landmarks, NoFaceError, detect_landmarks
from .masks import estimate_occlusion, face_mask, load_user_mask
from .prepare import CropInfo, FaceInputs, prepare_face_inputs
from .settings import InputSettings, LandmarkSettings, MaskSettings

__all__ = [
    "BackendUnavailable", "CropInfo", "FaceInputs", "InputSettings", "LandmarkSettings", "Landmarks",
    "MaskSettings", "NoFaceError", "detect_landmarks", "estimate_occlusion", "face_mask", "load_image",
    "load_user_mask", "prepare_face_inputs",
]

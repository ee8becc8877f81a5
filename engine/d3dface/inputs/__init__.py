"""inputs stage of the pipeline: image loading, landmarks with validity, face and occlusion
masks, synthetic occluders. Imports nothing from higher layers."""

from .image_io import load_image
from .landmarks_base import BackendUnavailable, Landmarks, NoFaceError, detect_landmarks
from .masks import estimate_occlusion, face_mask, load_user_mask
from .occluders import apply_occluder, hidden_vertices, load_textures, occluder_layer
from .prepare import CropInfo, FaceInputs, prepare_face_inputs
from .settings import InputSettings, LandmarkSettings, MaskSettings

__all__ = [
    "BackendUnavailable", "CropInfo", "FaceInputs", "InputSettings", "LandmarkSettings", "Landmarks",
    "MaskSettings", "NoFaceError", "apply_occluder", "detect_landmarks", "estimate_occlusion", "face_mask",
    "hidden_vertices", "load_image", "load_textures", "load_user_mask", "occluder_layer", "prepare_face_inputs",
]

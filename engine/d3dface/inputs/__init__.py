"""inputs stage of the pipeline: image loading, landmarks with validity, face and occlusion
masks. Imports nothing from higher layers (synthetic occluders live in ``evaluation``).

The names below load their module on first use, so that ``inputs.settings`` (pure standard
library) can be read without OpenCV or MediaPipe."""

from __future__ import annotations

import importlib

_HOME = {
    "load_image": "image_io",
    "BackendUnavailable": "landmarks_base", "Landmarks": "landmarks_base", "NoFaceError": "landmarks_base",
    "detect_landmarks": "landmarks_base",
    "estimate_occlusion": "masks", "face_mask": "masks", "load_user_mask": "masks",
    "CropInfo": "prepare", "FaceInputs": "prepare", "prepare_face_inputs": "prepare",
    "InputSettings": "settings", "LandmarkSettings": "settings", "MaskSettings": "settings",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""MediaPipe face mesh landmarks (``mediapipe==0.10.21``; its wheel ships the models, so it runs offline).

The 478-point mesh (468 face points + 10 iris points) is kept whole as ``dense`` (the fit
uses it through the head model's embedding, ``head_model/landmark_embedding.py``) and mapped
to the 68-point iBUG scheme with ``MP_TO_IBUG68`` below. MediaPipe gives no per-point confidence.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from .landmarks_base import BackendUnavailable, FaceDetection
from .settings import LandmarkSettings

# MediaPipe face-mesh id for each iBUG 68 point (0-based iBUG order).
# Origin (derived for this project, 2025): points 17-67 are the MediaPipe ids whose
# FLAME MediaPipe-embedding position lies nearest to FLAME's own 68-point embedding
# on the FLAME template (all within 4 mm except brow end 17/26 at 14 mm), with
# left/right and upper/lower lip choices made symmetric (55/59 use 405/181, the
# lower-lip mirror of 53/49 = 269/39) and the inner lips split into upper 82/13/312
# and lower 317/14/87 (FLAME's closed-mouth template cannot separate them).
# Jaw points 0-16 (outside the 105-point embedding) are the majority vote, over six
# frontal photos in shared/images/faces, of the mesh vertex nearest to FLAME's jaw
# landmarks after a 3D similarity alignment of MediaPipe's mesh to FLAME on the 105
# shared points; they are the face-oval vertices 127 ... 152 ... 356 and mirror
# symmetric. tests/test_inputs_landmarks.py re-checks the FLAME distances and the
# iBUG layout on real photos.
MP_TO_IBUG68 = np.array([
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw 0-16
    70, 63, 105, 66, 107,                    # right brow 17-21 (image left)
    336, 296, 334, 293, 300,                 # left brow 22-26
    168, 6, 195, 4,                          # nose bridge 27-30
    98, 97, 2, 326, 327,                     # nose base 31-35
    33, 160, 158, 133, 153, 144,             # right eye 36-41
    362, 385, 387, 263, 373, 380,            # left eye 42-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips 48-59
    78, 82, 13, 312, 308, 317, 14, 87,       # inner lips 60-67
], dtype=np.int64)

# Face oval of the mesh, in order (MediaPipe FACEMESH_FACE_OVAL as a closed loop).
FACE_OVAL = np.array([
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
], dtype=np.int64)

_MESHES: dict = {}


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ log lines (TFLite/glog) MediaPipe writes straight to fd 2."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)


class MediaPipeBackend:
    name = "mediapipe"

    def __init__(self, settings: LandmarkSettings | None = None):
        self.settings = settings or LandmarkSettings()
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            with _quiet_native_stderr():
                from mediapipe.python.solutions import face_mesh
        except Exception as exc:  # noqa: BLE001 - ImportError or a broken native library
            raise BackendUnavailable(f"MediaPipe is not usable here ({type(exc).__name__}: {exc})") from None
        key = (self.settings.refine_mediapipe, self.settings.max_faces, self.settings.min_detection_confidence)
        if key not in _MESHES:
            with _quiet_native_stderr():
                _MESHES[key] = face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=self.settings.max_faces,
                    refine_landmarks=self.settings.refine_mediapipe,
                    min_detection_confidence=self.settings.min_detection_confidence,
                )
        self._mesh = _MESHES[key]

    def detect(self, rgb: np.ndarray) -> list[FaceDetection]:
        """Faces in ``rgb`` (H, W, 3) uint8, coordinates in its pixels."""
        h, w = rgb.shape[:2]
        with _quiet_native_stderr():
            res = self._mesh.process(np.ascontiguousarray(rgb))
        faces = []
        for f in res.multi_face_landmarks or []:
            dense = np.array([(p.x * w, p.y * h) for p in f.landmark], np.float64)
            faces.append(FaceDetection(points68=dense[MP_TO_IBUG68], confidence68=None, dense=dense))
        return faces

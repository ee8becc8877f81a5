"""Landmarks of the largest face in an image, behind one interface for several backends.

``detect_landmarks(image, backend="auto" | "mediapipe" | "fan")`` returns a ``Landmarks``:
68 points in iBUG order (original-image pixels), a per-point confidence where the backend
has one, the 105 MediaPipe points of FLAME's MediaPipe embedding where the backend is
MediaPipe, the validity flag of Algorithm 1 (confidence > tau; occlusion is applied
later with ``Landmarks.with_occlusion``), the face box and the number of faces seen.

Detection runs on a copy scaled to at most ``detect_max_side`` (and at least
``detect_min_side``); the chosen face is then re-detected on a crop of the original
image at about ``refine_face_px`` so that huge and tiny images give precise points.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from ..errors import D3DFaceError
from .settings import BACKENDS, LandmarkSettings


class NoFaceError(D3DFaceError):
    """No face was found in the image."""

    kind = "no_face"


class BackendUnavailable(D3DFaceError):
    """A landmark backend cannot run here (package or weights missing)."""

    kind = "backend"


# iBUG 68-point groups (0-based), used for drawing, masks and metrics.
IBUG_GROUPS = {
    "jaw": list(range(0, 17)),
    "brow_right": list(range(17, 22)),   # subject's right = image left in a frontal photo
    "brow_left": list(range(22, 27)),
    "nose_bridge": list(range(27, 31)),
    "nose_base": list(range(31, 36)),
    "eye_right": list(range(36, 42)),
    "eye_left": list(range(42, 48)),
    "lips_outer": list(range(48, 60)),
    "lips_inner": list(range(60, 68)),
}
OUTER_EYE_CORNERS = (36, 45)


def inter_ocular_distance(points68: np.ndarray) -> float:
    """Distance between the outer eye corners (iBUG 36 and 45) of (68, 2) points, px."""
    a, b = OUTER_EYE_CORNERS
    return float(np.linalg.norm(np.asarray(points68)[a] - np.asarray(points68)[b]))


@dataclass
class FaceDetection:
    """One face as a backend reports it, in the pixels of the image it was given."""

    points68: np.ndarray                 # (68, 2) float
    confidence68: np.ndarray | None      # (68,) in [0, 1], or None when the backend has none
    dense: np.ndarray | None = None      # (N, 2) backend's own dense points (MediaPipe: 468/478)
    box: np.ndarray | None = None        # (4,) x0, y0, x1, y1

    def bbox(self) -> np.ndarray:
        if self.box is not None:
            return np.asarray(self.box, np.float64)
        pts = self.dense if self.dense is not None else self.points68
        return np.concatenate([pts.min(0), pts.max(0)]).astype(np.float64)

    def scaled(self, s: float, offset=(0.0, 0.0)) -> "FaceDetection":
        """Coordinates mapped by ``p / s + offset`` (from a resized/cropped copy to the original)."""
        off = np.asarray(offset, np.float64)

        def m(p):
            return None if p is None else (np.asarray(p, np.float64) / s + off)

        box = None if self.box is None else np.concatenate([m(np.reshape(self.box, (2, 2)))]).ravel()
        return FaceDetection(m(self.points68), self.confidence68, m(self.dense), box)


@dataclass
class Landmarks:
    """Landmarks of one face, in original-image pixels (x right, y down)."""

    points68: np.ndarray                  # (68, 2) float32, iBUG order
    confidence68: np.ndarray              # (68,) float32; 1.0 where the backend has no confidence
    valid68: np.ndarray                   # (68,) bool: confidence > tau and not inside M_o
    face_box: np.ndarray                  # (4,) float32 x0, y0, x1, y1
    face_count: int
    backend: str
    has_confidence: bool = False
    dense: np.ndarray | None = None          # (478, 2) MediaPipe face-mesh points (by MediaPipe id), or None
    valid_dense: np.ndarray | None = None    # (478,) bool: not inside M_o (grown by the margin) and on the image
    image_size: tuple[int, int] = (0, 0)     # (H, W)
    notes: list[str] = field(default_factory=list)

    @property
    def inter_ocular(self) -> float:
        """Distance between the outer eye corners (iBUG 36 and 45), px."""
        return inter_ocular_distance(self.points68)

    def occluded68(self, occlusion: np.ndarray | None, margin: float = 0.0) -> np.ndarray:
        """(68,) bool: the point lies in ``occlusion`` (H, W) bool, grown by ``margin`` x IOD px, or off the image."""
        return self.occluded(self.points68, occlusion, margin)

    def occluded(self, points: np.ndarray, occlusion: np.ndarray | None, margin: float = 0.0) -> np.ndarray:
        """(N,) bool for points (N, 2) px: in ``occlusion`` grown by ``margin`` x IOD px, or off the image."""
        h, w = self.image_size
        xy = np.floor(points).astype(int)  # pixel (i, j) covers x in [j, j+1), y in [i, i+1)
        off = (xy[:, 0] < 0) | (xy[:, 1] < 0) | (xy[:, 0] >= w) | (xy[:, 1] >= h)
        if occlusion is None or not np.any(occlusion):
            return off
        m = np.asarray(occlusion, bool)
        r = int(round(margin * self.inter_ocular))
        if r > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            m = cv2.dilate(m.astype(np.uint8), k) > 0
        x = np.clip(xy[:, 0], 0, w - 1)
        y = np.clip(xy[:, 1], 0, h - 1)
        return off | m[y, x]

    def with_occlusion(self, occlusion: np.ndarray | None, tau: float = 0.2, margin: float = 0.0) -> "Landmarks":
        """A copy whose ``valid68`` is ``confidence > tau`` and not inside ``occlusion``, and whose
        ``valid_dense`` marks the dense points outside ``occlusion`` (both grown by ``margin`` x IOD)."""
        valid = (self.confidence68 > tau) & ~self.occluded68(occlusion, margin)
        dense_ok = None if self.dense is None else ~self.occluded(self.dense, occlusion, margin)
        return replace(self, valid68=valid, valid_dense=dense_ok)


# --------------------------------------------------------------------------- backends

_NOTICED: set[str] = set()


def notice(text: str) -> None:
    """A one-line notice on stderr, once per process per text."""
    if text not in _NOTICED:
        _NOTICED.add(text)
        print(f"d3dface: note: {text}", file=sys.stderr)


def get_backend(name: str, settings: LandmarkSettings | None = None, fan_weights=None):
    """A backend object with ``.name`` and ``.detect(rgb) -> list[FaceDetection]``.

    ``auto`` picks FAN when its weights are on this machine, else MediaPipe (with a
    one-line notice). Raises ``BackendUnavailable`` for a named backend that cannot run.
    """
    settings = settings or LandmarkSettings()
    if name not in BACKENDS:
        raise D3DFaceError(f"unknown landmark backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name in ("fan", "auto"):
        from .fan_backend import FanBackend

        try:
            return FanBackend(settings, weights=fan_weights)
        except BackendUnavailable as exc:
            if name == "fan":
                raise
            notice(f"{exc}; using MediaPipe landmarks")
    from .mediapipe_backend import MediaPipeBackend

    return MediaPipeBackend(settings)


def _resize(image: np.ndarray, s: float) -> np.ndarray:
    if abs(s - 1.0) < 1e-9:
        return image
    h, w = image.shape[:2]
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _box_area(b: np.ndarray) -> float:
    return float(max(b[2] - b[0], 0) * max(b[3] - b[1], 0))


def _detect_scaled(backend, image: np.ndarray, settings: LandmarkSettings) -> list[FaceDetection]:
    h, w = image.shape[:2]
    side = max(h, w)
    s = 1.0
    if side > settings.detect_max_side:
        s = settings.detect_max_side / side
    elif side < settings.detect_min_side:
        s = settings.detect_min_side / side
    faces = backend.detect(_resize(image, s))
    return [f.scaled(s) for f in faces]


def _refine(backend, image: np.ndarray, face: FaceDetection, settings: LandmarkSettings) -> FaceDetection:
    """Re-detect ``face`` on an original-resolution crop around it, scaled to ``refine_face_px``."""
    h, w = image.shape[:2]
    b = face.bbox()
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    size = max(b[2] - b[0], b[3] - b[1])
    half = size * 1.0  # face box plus half a face on each side: detectors want context
    x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
    x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
    crop = image[y0:y1, x0:x1]
    s = settings.refine_face_px / max(size, 1.0)
    s = min(s, settings.detect_max_side / max(crop.shape[:2]))
    if crop.size == 0 or abs(s - 1) < 0.15 and x0 == 0 and y0 == 0 and x1 == w and y1 == h:
        return face
    found = backend.detect(_resize(crop, s))
    if not found:
        return face
    found = [f.scaled(s, (x0, y0)) for f in found]
    # the crop may hold a neighbour too: keep the one overlapping the original box most
    def overlap(f):
        fb = f.bbox()
        ix = max(0.0, min(fb[2], b[2]) - max(fb[0], b[0])) * max(0.0, min(fb[3], b[3]) - max(fb[1], b[1]))
        return ix / max(_box_area(fb) + _box_area(b) - ix, 1e-9)

    best = max(found, key=overlap)
    return best if overlap(best) > 0.3 else face


def detect_landmarks(
    image: np.ndarray,
    backend: str | object = "auto",
    settings: LandmarkSettings | None = None,
    fan_weights=None,
) -> Landmarks:
    """Landmarks of the largest face in ``image`` (RGB uint8 (H, W, 3)); raises ``NoFaceError``."""
    settings = settings or LandmarkSettings()
    be = get_backend(backend, settings, fan_weights) if isinstance(backend, str) else backend
    faces = _detect_scaled(be, image, settings)
    if not faces:
        raise NoFaceError("no face found in the image")
    face = max(faces, key=lambda f: _box_area(f.bbox()))
    face = _refine(be, image, face, settings)
    has_conf = face.confidence68 is not None
    conf = (np.asarray(face.confidence68, np.float32) if has_conf else np.ones(68, np.float32))
    lm = Landmarks(
        points68=np.asarray(face.points68, np.float32),
        confidence68=conf,
        valid68=conf > settings.tau,
        face_box=face.bbox().astype(np.float32),
        face_count=len(faces),
        backend=be.name,
        has_confidence=has_conf,
        dense=None if face.dense is None else np.asarray(face.dense, np.float32),
        image_size=(int(image.shape[0]), int(image.shape[1])),
    )
    return lm.with_occlusion(None, settings.tau)

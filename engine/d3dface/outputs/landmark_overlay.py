"""Pictures of face inputs: landmarks coloured valid/invalid over tinted M_f and M_o."""

from __future__ import annotations

import cv2
import numpy as np

from ..inputs.landmarks_base import IBUG_GROUPS

VALID = (40, 220, 60)      # RGB
INVALID = (255, 40, 40)
FACE_TINT = (60, 140, 255)
OCC_TINT = (255, 60, 200)


def _outline(img, m, colour, t):
    cs, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(img, cs, -1, colour, t, cv2.LINE_AA)


def draw_overlay(image: np.ndarray, landmarks, face_mask=None, occlusion_mask=None, max_side: int = 768) -> np.ndarray:
    """RGB uint8 picture: M_f tinted blue (outlined), M_o tinted magenta, the 68 landmarks
    joined by their iBUG contours, green when valid and red when invalid, and the face box."""
    s = min(1.0, max_side / max(image.shape[:2]))
    s = max(s, min(4.0, 384 / max(image.shape[:2])))    # small images are enlarged to be legible
    size = (int(round(image.shape[1] * s)), int(round(image.shape[0] * s)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR).astype(np.float32)
    t = max(1, int(round(max(size) / 400)))
    def rs(m):
        return cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if face_mask is not None:
        fm = rs(face_mask)
        out[fm] = 0.8 * out[fm] + 0.2 * np.array(FACE_TINT)
    if occlusion_mask is not None:
        om = rs(occlusion_mask)
        out[om] = 0.45 * out[om] + 0.55 * np.array(OCC_TINT)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if face_mask is not None:
        _outline(out, fm, FACE_TINT, t)
    if occlusion_mask is not None:
        _outline(out, om, OCC_TINT, t)
    p = landmarks.points68 * s
    for name, idx in IBUG_GROUPS.items():
        closed = name.startswith(("eye", "lips"))
        cv2.polylines(out, [np.round(p[idx] * 16).astype(np.int32)], closed, (230, 230, 230), 1, cv2.LINE_AA, 4)
    r = max(2, int(round(max(size) / 250)))
    for q, ok in zip(p, landmarks.valid68):
        cv2.circle(out, (int(round(q[0] * 16)), int(round(q[1] * 16))), r * 16, VALID if ok else INVALID, -1, cv2.LINE_AA, 4)
    b = np.round(landmarks.face_box * s).astype(int)
    cv2.rectangle(out, (b[0], b[1]), (b[2], b[3]), (255, 220, 0), 1)
    label = f"{landmarks.backend}  valid {int(landmarks.valid68.sum())}/68  faces {landmarks.face_count}"
    cv2.putText(out, label, (6, 18 * t), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, (0, 0, 0), 3 * t, cv2.LINE_AA)
    cv2.putText(out, label, (6, 18 * t), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * t, (255, 255, 255), t, cv2.LINE_AA)
    return out

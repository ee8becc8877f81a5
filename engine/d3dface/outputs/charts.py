"""A small bar chart drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

import cv2
import numpy as np

PALETTE = [(70, 110, 200), (230, 150, 60), (90, 170, 90), (200, 60, 60), (150, 100, 190)]


def bar_chart(groups: list[str], series: dict[str, list[float]], title: str, width: int = 640, height: int = 360) -> np.ndarray:
    """Grouped bars: one group per entry of ``groups``, one bar per series. RGB uint8."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 50, 10, 40, 60
    vals = np.array([v for v in series.values()], dtype=float)
    vmax = float(np.nanmax(vals[np.isfinite(vals)])) if np.isfinite(vals).any() else 1.0
    vmax = vmax * 1.15 if vmax > 0 else 1.0
    H, W = height - top - bottom, width - left - right
    cv2.putText(img, title, (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, (left, top + H), (left + W, top + H), (0, 0, 0), 1)
    for t in np.linspace(0, vmax, 5):
        y = int(top + H - t / vmax * H)
        cv2.line(img, (left - 4, y), (left, y), (0, 0, 0), 1)
        cv2.putText(img, f"{t:.1f}", (2, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    n = len(series)
    gw = W / max(len(groups), 1)
    bw = gw * 0.8 / max(n, 1)
    for gi, g in enumerate(groups):
        x0 = left + gi * gw + gw * 0.1
        for si, (name, v) in enumerate(series.items()):
            val = v[gi]
            if not np.isfinite(val):
                continue
            x = int(x0 + si * bw)
            y = int(top + H - min(val, vmax) / vmax * H)
            cv2.rectangle(img, (x, y), (int(x + bw - 2), top + H), PALETTE[si % len(PALETTE)], -1)
        cv2.putText(img, g, (int(x0), top + H + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    for si, name in enumerate(series):
        x = left + si * (W // max(n, 1))
        cv2.rectangle(img, (x, height - 22), (x + 12, height - 10), PALETTE[si % len(PALETTE)], -1)
        cv2.putText(img, name, (x + 16, height - 11), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img

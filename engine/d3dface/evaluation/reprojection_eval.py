"""Fit every shared photo and measure how well the fit reprojects onto its landmarks.

Per photo: the dense (MediaPipe, seen) and 68-point reprojection errors in % of the inter-ocular
distance (fit/reprojection.py), the photometric error of the fit's render on the seen face, the
fit time, and the overlay (outline and landmarks). Photos of ``faces/`` are fitted without a
mask; those of ``occluded/`` with their hand-drawn mask when one exists, else with the automatic
mask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import D3DFaceError
from ..fit.evidence import evidence_from_inputs
from ..fit.partial_fit import PartialFitter
from ..inputs import prepare_face_inputs
from ..outputs.fit_files import fit_overlay

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class PhotoFit:
    name: str
    mask: str  # "none", "given" or "auto"
    dense_iod_pct: float
    lmk68_iod_pct: float
    dense_points: int
    fit_seconds: float
    photometric_error: float  # mean absolute RGB error (0-1) of the fit's render on the seen face
    overlay: np.ndarray | None  # (S, 4S, 3) uint8; None when the fit failed
    error: str = ""  # why the photo could not be fitted


def shared_photos(images_dir: Path) -> list[tuple[Path, str]]:
    """(photo, mask) for faces/ (mask "none") and occluded/ (its *_mask.png, else "auto"), sorted."""
    out = []
    for sub in ("faces", "occluded"):
        for p in sorted((images_dir / sub).glob("*")):
            if p.suffix.lower() not in IMAGE_SUFFIXES or p.stem.endswith("_mask"):
                continue
            mask = p.with_name(p.stem + "_mask.png")
            out.append((p, "none" if sub == "faces" else (str(mask) if mask.is_file() else "auto")))
    return out


def fit_photo(fitter: PartialFitter, photo: Path, mask: str, backend: str = "mediapipe") -> PhotoFit:
    """The fit of one photo and its errors; a photo the engine refuses (no face, too little
    visible) gives a row with NaN errors and the engine's message."""
    kind = mask if mask in ("none", "auto") else "given"
    try:
        inputs = prepare_face_inputs(photo, mask=mask, backend=backend)
        t0 = time.perf_counter()
        result = fitter.fit(evidence_from_inputs(inputs))
    except D3DFaceError as exc:
        return PhotoFit(photo.stem, kind, float("nan"), float("nan"), 0, float("nan"), float("nan"), None, str(exc))
    seconds = time.perf_counter() - t0
    crop = inputs.crop
    image = crop.apply(inputs.image).astype(np.float32) / 255
    overlay = fit_overlay(image, crop.apply(inputs.occlusion_mask), result, fitter.renderer)
    rp = result.reprojection
    used = rp.get("dense_used")
    return PhotoFit(photo.stem, kind, rp["dense_error_iod_pct"], rp["lmk68_error_iod_pct"],
                    0 if used is None else int(used.sum()), seconds, result.photometric_error, overlay)


def markdown_table(rows: list[PhotoFit]) -> str:
    lines = ["| photo | mask | dense points | dense error (% IOD) | 68-point error (% IOD) | photometric error (RGB 0-1) | fit (s) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.name} | {r.mask} | not fitted: {r.error} | | | | |")
            continue
        lines.append(f"| {r.name} | {r.mask} | {r.dense_points} | {r.dense_iod_pct:.2f} | {r.lmk68_iod_pct:.2f} | "
                     f"{r.photometric_error:.4f} | {r.fit_seconds:.1f} |")
    return "\n".join(lines) + "\n"

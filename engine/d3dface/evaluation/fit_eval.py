"""Table 1 of the paper on our data: mean shape error of the global fit (full head model, no
local models: the paper's "FLAME" row) and of the global+local fit, per occlusion type.

Error: per-vertex L2 distance in mm on the face region, after a rigid Procrustes alignment
of the fit onto the ground truth on the face region (the same for both methods)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .metrics import align_to, per_vertex_distance
from ..errors import D3DFaceError
from ..fit.local_model import LocalModel
from ..fit.partial_fit import PartialFitter
from ..fit.settings import FitSettings, uses_local_model
from ..head_model import HeadModel
from .synthetic_faces import DEFAULT_LANDMARKS, OCCLUDER_TYPES, TEST_SEED_BASE, SyntheticFaceMaker

METHODS = ("global", "global+local", "full+local")
TABLE1_LANDMARKS = "detected"  # `evaluate-fit`'s default: a real detector's errors (README, Table 1)


ALIGNMENTS = ("rigid", "similarity")


@dataclass
class FitEvaluation:
    errors_mm: dict = field(default_factory=dict)  # alignment -> method -> occluder -> list of per-face errors
    seconds: dict = field(default_factory=dict)  # method -> list of fit times
    heads: str = "model"  # the ground truth: "model" or "out-of-span" heads (synthetic_faces.HEAD_KINDS)
    landmarks: str = DEFAULT_LANDMARKS  # what the fit is given (synthetic_faces.LANDMARK_SOURCES)
    skipped: list = field(default_factory=list)  # (occluder, seed, reason) of faces the detector or the fit refused
    methods: tuple = METHODS

    def table(self, alignment: str = "rigid") -> list[list]:
        rows = []
        for method in self.methods:
            e = self.errors_mm[alignment][method]
            per_type = [float(np.mean(e[k])) for k in OCCLUDER_TYPES]
            rows.append([method, *per_type, float(np.mean([x for k in OCCLUDER_TYPES for x in e[k]]))])
        return rows

    def markdown(self) -> str:
        lines = [f"ground truth: {self.heads} heads; landmarks: {self.landmarks}", ""]
        for alignment in ALIGNMENTS:
            lines.append(f"mean shape error (mm, face region) after {alignment} alignment")
            lines.append("| method | " + " | ".join(OCCLUDER_TYPES) + " | overall |\n|---|" + "---|" * (len(OCCLUDER_TYPES) + 1))
            for row in self.table(alignment):
                lines.append(f"| {row[0]} | " + " | ".join(f"{x:.2f}" for x in row[1:]) + " |")
            lines.append("")
        counts = "/".join(str(len(self.errors_mm["rigid"][self.methods[0]][k])) for k in OCCLUDER_TYPES)
        t = {m: float(np.median(self.seconds[m])) for m in self.methods}
        lines.append(f"faces per type {counts}; median fit time: " + ", ".join(f"{m} {t[m]:.1f} s" for m in self.methods))
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} faces: " + "; ".join(f"{k} {s}: {r}" for k, s, r in self.skipped))
        return "\n".join(lines)


def shape_error_mm(fit_vertices: np.ndarray, gt: np.ndarray, region: np.ndarray, scale: bool = False) -> float:
    """Mean per-vertex distance (mm) on ``region`` after rigid (or similarity) alignment onto gt."""
    aligned = align_to(fit_vertices.astype(np.float64), gt.astype(np.float64), region, scale=scale)
    return float(per_vertex_distance(aligned[region], gt[region]).mean() * 1000)


def evaluate_fit(model: HeadModel, local_model: LocalModel, n: int = 50, seed: int = 0, texture_path=None,
                 settings: FitSettings | None = None, progress=None, heads: str = "model",
                 methods: tuple = METHODS, fit_texture_path="same", landmarks: str = DEFAULT_LANDMARKS) -> FitEvaluation:
    """Table 1 over n faces shared evenly by the occluder types. texture_path: the albedo the test
    faces are rendered with; fit_texture_path: the fitter's ("same": texture_path); landmarks:
    synthetic_faces.LANDMARK_SOURCES. A face whose landmarks are not found, or which hides too many
    of them to fit, is skipped for every method and listed."""
    base = settings or FitSettings()
    fit_tex = texture_path if fit_texture_path == "same" else fit_texture_path
    fitters = {m: PartialFitter(model, local_model if uses_local_model(m) else None,
                                FitSettings(**{**base.__dict__, "mode": m}), fit_tex) for m in methods}
    maker = SyntheticFaceMaker(model, texture_path, heads=heads, landmarks=landmarks)
    region = model.regions["face"]
    out = FitEvaluation({a: {m: {k: [] for k in OCCLUDER_TYPES} for m in methods} for a in ALIGNMENTS},
                        {m: [] for m in methods}, heads=heads, methods=tuple(methods), landmarks=landmarks)
    per_type = [n // len(OCCLUDER_TYPES) + (1 if t < n % len(OCCLUDER_TYPES) else 0) for t in range(len(OCCLUDER_TYPES))]
    done = 0
    for ti, kind in enumerate(OCCLUDER_TYPES):
        for i in range(per_type[ti]):
            face_seed = TEST_SEED_BASE + seed * 10_000 + ti * 1000 + i
            fits, seconds = {}, {}
            try:
                face = maker.make(face_seed, kind)
                for m, fitter in fitters.items():
                    t0 = time.perf_counter()
                    fits[m] = fitter.fit(face.evidence)
                    seconds[m] = time.perf_counter() - t0
            except D3DFaceError as e:
                out.skipped.append((kind, face_seed, str(e)))
                fits = {}
            for m, res in fits.items():
                out.seconds[m].append(seconds[m])
                for a in ALIGNMENTS:
                    out.errors_mm[a][m][kind].append(shape_error_mm(res.vertices, face.gt_vertices, region, a == "similarity"))
            done += 1
            if progress:
                progress(done, n)
    return out

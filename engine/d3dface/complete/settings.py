"""Settings of the complete stage (Algorithm 2 and the join to the fit). One place for each
default; pure standard library, so the configuration tree (``d3dface.config``) and the worker
protocol can read them without torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..defaults import DEFAULT_SEED

Reduction = Literal["rms", "mean"]
QualityMode = Literal["chi2", "paper", "none"]
DEFAULT_SAMPLES = 8  # M, the completions of one photo
MAX_SAMPLES = 64  # the most completions one job makes (memory and time grow linearly with M)
JOIN_METHODS = ("laplacian", "smoothstep")  # how samples join the fit where seen (stitching.py)


@dataclass(frozen=True)
class DPPSettings:
    reduction: Reduction = "rms"  # distance on the occluded vertices: "rms" or "mean" per-vertex
    quality: QualityMode = "chi2"  # latent quality term: "chi2" (90%-mass radius), "paper", "none"
    mass: float = 0.9  # prior mass inside the quality radius ("chi2")
    k_scale: float = 0.5  # k = k_scale / median pairwise distance
    min_median: float = 1e-9  # metres; floor on the median so that k stays finite for identical samples
    eps: float = 1e-12  # metres; smoothing of the square root at zero distance


@dataclass(frozen=True)
class DiversifySettings:
    samples: int = DEFAULT_SAMPLES  # M
    iterations: int = 100  # the authors run 300 on a GPU; see the README's performance notes
    lr: float = 1e-2  # Adam, as the authors
    lambda_s: float = 1.0
    lambda_pho: float = 0.0  # used when the caller passes a photometric term
    lambda_dpp: float = 0.1
    diversity: float = 1.0  # user-facing strength: multiplies lambda_dpp
    init_spread: float = 1.0  # scales sigma of the initial draws
    dpp: DPPSettings = field(default_factory=DPPSettings)
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class StitchSettings:
    """How each completion joins the fit where the photo shows the face (``stitching.py``)."""

    enabled: bool = True  # samples take S_m exactly where seen
    method: str = "laplacian"  # a biharmonic correction (no crease), or "smoothstep" (the former): stitching.py
    rings: int = 3  # smoothstep only: mesh rings over which the weight rises from the fit to the sample

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
# what draws the completions: "gaussian", the fit plus offsets from a prior whose face regions
# vary on their own, conditioned exactly on the seen part (region_prior.py); "vae", the Mesh-VAE
# (mesh_vae.py). Chosen by measurement: README, "Completion models".
COMPLETION_MODELS = ("gaussian", "vae")


@dataclass(frozen=True)
class DPPSettings:
    reduction: Reduction = "rms"  # distance on the occluded vertices: "rms" or "mean" per-vertex
    quality: QualityMode = "chi2"  # latent quality term: "chi2" (90%-mass radius), "paper", "none"
    mass: float = 0.9  # prior mass inside the quality radius ("chi2")
    k_scale: float = 0.5  # k = k_scale / median pairwise distance
    min_median: float = 1e-9  # metres; floor on the median so that k stays finite for identical samples
    eps: float = 1e-12  # metres; smoothing of the square root at zero distance


@dataclass(frozen=True)
class RegionPriorSettings:
    """The "gaussian" completion's prior (region_prior.py)."""

    identity_sigma: float = 1.0  # std of each region's identity coefficients (the model's own)
    expression_sigma: float = 0.3  # std of each expression weight around the fit's
    # weight of the smoothness precision, relative to the coefficients' (0: none). Measured on 15
    # out-of-span synthetic faces (M = 8, 100 steps, varying M_o^v): 5 / 20 / 60 give ASD-O 2.3 /
    # 1.8 / 1.4 mm, creases 8.4 / 1.4 / 0.2 per sample, CSE 3.46 / 3.35 / 3.34 mm, CSE of 16 vs 1
    # sample 4.8 / 8.3 / 8.9% lower: smoother offsets spread whole shapes (a mouth, a jaw), not folds.
    # Varying only what projects into the occluder (the authors' split) at 5: ASD-O 0.7, CSE 3.50
    bending: float = 20.0
    noise_m: float = 1e-4  # metres: how closely a completion keeps to the fit where seen
    # the plausibility guard (diversify.diversify_gaussian): in the subspace holding this share of
    # the hidden part's posterior variance, a sample's whitened length stays within the chi radius
    # holding ``guard_mass`` of the prior (0: off). Without it (15 faces, bending 5, occluder-only
    # set): ASD-O 1.5 vs 0.7 mm, but creases 7.7 vs 0.9 and CSE 3.58 vs 3.50 mm
    guard_variance: float = 0.99
    guard_mass: float = 0.9
    guard_weight: float = 1.0  # weight of the guard's quadratic penalty (per unit of length beyond)
    # Adam's step for the whitened coefficients, in place of DiversifySettings.lr (the Mesh-VAE's
    # 1e-2 would move a principal coordinate at most 1 sigma in 100 steps); measured on
    # glasses_woman against 0.01 and 0.05 (bending 5, occluder-only set): ASD-O 0.93 vs 0.57 / 0.84 mm,
    # creases 1.9 vs 0.4 / 2.6
    lr: float = 0.1


@dataclass(frozen=True)
class DiversifySettings:
    model: str = COMPLETION_MODELS[0]  # what draws the completions: COMPLETION_MODELS
    samples: int = DEFAULT_SAMPLES  # M
    iterations: int = 100  # the authors run 300 on a GPU; see the README's performance notes
    lr: float = 1e-2  # Adam, as the authors
    lambda_s: float = 1.0
    # L_pho (complete/photometric.py): each sample rendered with the fit's camera, light and albedo
    # against the photo's seen face pixels; the Mesh-VAE only (the "gaussian" samples keep the fit
    # where seen). 0: off. Measured (README "L_pho in Algorithm 2", 12 out-of-span faces): 5 / 50 give
    # CSE 3.59 / 3.57 mm against 3.61, ASD-V 0.32 / 0.26, but ASD-O 1.25 / 0.72 against 1.30 and more creases
    lambda_pho: float = 0.0
    photometric_scale: float = 0.5  # L_pho's render resolution relative to the fit's crop
    lambda_dpp: float = 0.1
    diversity: float = 1.0  # user-facing strength: multiplies lambda_dpp
    init_spread: float = 1.0  # scales sigma of the initial draws
    dpp: DPPSettings = field(default_factory=DPPSettings)
    prior: RegionPriorSettings = field(default_factory=RegionPriorSettings)  # model "gaussian" only
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class StitchSettings:
    """How each completion joins the fit where the photo shows the face (``stitching.py``)."""

    enabled: bool = True  # samples take S_m exactly where seen
    method: str = "laplacian"  # a biharmonic correction (no crease), or "smoothstep" (the former): stitching.py
    rings: int = 3  # smoothstep only: mesh rings over which the weight rises from the fit to the sample

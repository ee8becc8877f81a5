"""The configuration tree of one reconstruction: each stage's settings, composed, never mutated.

    cfg = ReconstructConfig.create(samples=4, mask="photo_mask.png", seed=3)
    cfg.completion.samples, cfg.inputs.masks.occlusion, cfg.fit.mode, cfg.stitch.rings

Every default is written once, in the settings module of the stage it belongs to
(``inputs.settings``, ``fit.settings``, ``complete.settings``) or, when several stages share
it, in ``d3dface.defaults``; this module only composes them. The command line, the worker
protocol's defaults and the Blender add-on's property defaults come from here (the add-on
cannot import the engine, so a test checks its copies). Pure standard library.

A change is a new tree (``dataclasses.replace`` or ``create``); nothing is changed in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .complete.settings import COMPLETION_MODELS, DEFAULT_SAMPLES, JOIN_METHODS, MAX_SAMPLES, DiversifySettings, StitchSettings
from .defaults import DEFAULT_DEVICE, DEFAULT_SEED, DEVICES, is_device_name
from .errors import D3DFaceError
from .fit.settings import ALBEDO_BASES, FIT_MODES, FitSettings
from .inputs.settings import BACKENDS, InputSettings

__all__ = ["BACKENDS", "COMPLETION_MODELS", "DEFAULT_DEVICE", "DEFAULT_SAMPLES", "DEFAULT_SEED", "DEVICES", "FIT_MODES", "INTERPOLATION_STEPS",
           "JOIN_METHODS", "MASK_KEYWORDS", "MAX_SAMPLES", "PathSettings", "ReconstructConfig"]

MASK_KEYWORDS = ("auto", "none")  # besides a mask image path
INTERPOLATION_STEPS = 5  # meshes an interpolation between two samples makes unless asked (ends included)


@dataclass(frozen=True)
class PathSettings:
    """What the engine loads; None everywhere means the shipped defaults (``paths``)."""

    model: str | None = None  # head model: a .npz, a FLAME .pkl or a topology folder (None: the open model)
    assets: str | None = None  # shared assets folder (None: as ``paths.find_assets_dir`` finds it)
    vae: str | None = None  # Mesh-VAE checkpoint (None: the shipped one, or $D3DFACE_MESH_VAE)


@dataclass(frozen=True)
class OutputSettings:
    """Files a reconstruction writes besides the result, meshes and contact sheet."""

    expression_meshes: bool = False  # expressions/: the first sample neutral and under each ARKit key (.obj)


@dataclass(frozen=True)
class ReconstructConfig:
    seed: int = DEFAULT_SEED
    device: str = DEFAULT_DEVICE
    inputs: InputSettings = field(default_factory=InputSettings)
    fit: FitSettings = field(default_factory=FitSettings)
    completion: DiversifySettings = field(default_factory=DiversifySettings)
    stitch: StitchSettings = field(default_factory=StitchSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)

    @classmethod
    def create(cls, *, samples=None, seed=None, mask=None, backend=None, diversity=None, iterations=None,
               fit_mode=None, device=None, stitch=None, join=None, model=None, assets=None, vae=None,
               expressions=None, completion=None, photometric=None) -> "ReconstructConfig":
        """The tree from the flat options a user gives (None: the default). Validated."""
        base = cls()
        given = lambda v, default: default if v is None else v  # noqa: E731
        inputs = replace(base.inputs, masks=replace(base.inputs.masks, occlusion=str(given(mask, base.inputs.masks.occlusion))),
                         landmarks=replace(base.inputs.landmarks, backend=given(backend, base.inputs.landmarks.backend)))
        completion = replace(base.completion, model=str(given(completion, base.completion.model)),
                             samples=int(given(samples, base.completion.samples)),
                             diversity=float(given(diversity, base.completion.diversity)),
                             iterations=int(given(iterations, base.completion.iterations)),
                             lambda_pho=float(given(photometric, base.completion.lambda_pho)))
        cfg = cls(seed=int(given(seed, base.seed)), device=str(given(device, base.device)), inputs=inputs,
                  fit=replace(base.fit, mode=given(fit_mode, base.fit.mode)), completion=completion,
                  stitch=replace(base.stitch, enabled=bool(given(stitch, base.stitch.enabled)),
                                 method=given(join, base.stitch.method)),
                  paths=PathSettings(model=model, assets=assets, vae=vae),
                  outputs=OutputSettings(expression_meshes=bool(given(expressions, base.outputs.expression_meshes))))
        cfg.validate()
        return cfg

    @property
    def mask(self) -> str:
        return self.inputs.masks.occlusion

    @property
    def backend(self) -> str:
        return self.inputs.landmarks.backend

    @property
    def samples(self) -> int:
        return self.completion.samples

    def validate(self) -> None:
        """One-line D3DFaceError for a value no stage can use."""
        c = self.completion
        if not 1 <= c.samples <= MAX_SAMPLES:
            raise D3DFaceError(f"samples must be between 1 and {MAX_SAMPLES}, not {c.samples}")
        if c.iterations < 1:
            raise D3DFaceError(f"iterations must be at least 1, not {c.iterations}")
        if c.diversity < 0:
            raise D3DFaceError(f"diversity must be 0 or more, not {c.diversity}")
        if c.lambda_pho < 0:
            raise D3DFaceError(f"the photometric weight must be 0 or more, not {c.lambda_pho}")
        if c.lambda_pho > 0 and c.model != "vae":
            raise D3DFaceError(f"the photometric weight applies to the vae completion only, not {c.model!r} "
                               "(whose samples keep the fit where the photo shows the face)")
        if not 0 < c.photometric_scale <= 1:
            raise D3DFaceError(f"photometric_scale must be in (0, 1], not {c.photometric_scale}")
        if c.model not in COMPLETION_MODELS:
            raise D3DFaceError(f"unknown completion model {c.model!r} ({', '.join(COMPLETION_MODELS)})")
        if self.fit.mode not in FIT_MODES:
            raise D3DFaceError(f"unknown fit mode {self.fit.mode!r} ({', '.join(FIT_MODES)})")
        if self.fit.albedo_basis not in ALBEDO_BASES:
            raise D3DFaceError(f"unknown albedo basis {self.fit.albedo_basis!r} ({', '.join(ALBEDO_BASES)})")
        if self.fit.photometric_robust_scale < 0:
            raise D3DFaceError(f"photometric_robust_scale must be >= 0, not {self.fit.photometric_robust_scale}")
        if self.fit.estimate_focal and self.fit.focal_prior_sd <= 0:
            raise D3DFaceError(f"focal_prior_sd must be > 0 to estimate the focal length, not {self.fit.focal_prior_sd}")
        if self.backend not in BACKENDS:
            raise D3DFaceError(f"unknown landmark backend {self.backend!r} ({', '.join(BACKENDS)})")
        if self.stitch.method not in JOIN_METHODS:
            raise D3DFaceError(f"unknown join {self.stitch.method!r} ({', '.join(JOIN_METHODS)})")
        if not is_device_name(self.device):
            raise D3DFaceError(f"unknown device {self.device!r} ({', '.join(DEVICES)} or cuda:N)")

    def as_dict(self) -> dict:
        """A plain nested dict (for result files and logs)."""
        def plain(x):
            if hasattr(x, "__dataclass_fields__"):
                return {f.name: plain(getattr(x, f.name)) for f in fields(x)}
            return x
        return plain(self)

"""One call from a photo to M diverse complete heads: ``reconstruct`` (and ``interpolate``).

    from d3dface.reconstruct import reconstruct
    result, path = reconstruct("photo.jpg", mask="auto", samples=8, seed=0, out_dir="out/photo")

Settings: one ``d3dface.config.ReconstructConfig`` per job (``ReconstructConfig.create(...)``
from flat options), passed down to the stages and never changed.

Stages: face inputs -> partial fit (Algorithm 1) -> Mesh-VAE encoder -> DPP diversification
(Algorithm 2) -> result file, meshes and contact sheet. Models are loaded once per
``ReconstructionEngine`` (the worker keeps one alive between jobs).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__
from .atomic import atomic_output_dir
from .complete.diversify import Cancelled, diversify, diversify_gaussian, latent_statistics
from .complete.photometric import SamplePhotometricTerm, photometric_term_for_fit
from .complete.region_prior import RegionPrior
from .complete.settings import RegionPriorSettings, StitchSettings
from .complete.stitching import join_to_fit
from .complete.vae_checkpoint import load_default_vae, load_vae
from .devices import resolve_device
from .errors import D3DFaceError, InputFileError, ResourceError
from .fit.evidence import evidence_from_inputs
from .fit.local_model import model_fingerprint
from .training.local_models import load_or_build_local_model
from .fit.partial_fit import INNER, MIN_VISIBLE_LANDMARKS, PartialFitter
from .fit.regions import eyeball_vertices
from .config import ReconstructConfig
from .defaults import DEFAULT_DEVICE
from .fit.settings import FitSettings, uses_local_model
from .head_model import HeadLayer, load_head_model
from .head_model.expression_split import ExpressionState, neutralise
from .head_model.random_heads import random_coefficients_torch
from .outputs.interpolation_source import InterpolationSource, load_interpolation_source
from .outputs.result_file import ReconstructionResult
from .paths import find_assets_dir

Progress = Callable[[str, float], None]

# stage -> (start, end) of the overall fraction reported to the user
STAGES = {"inputs": (0.0, 0.05), "fit": (0.05, 0.45), "complete": (0.45, 0.9), "outputs": (0.9, 1.0)}


LATENT_STATS_HEADS = 64  # head-model samples the encoder's latent statistics are taken over
LATENT_STATS_SEED = 20220619


def versions() -> dict:
    import cv2
    import scipy

    return {"d3dface": __version__, "engine_dir": str(Path(__file__).resolve().parent), "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "opencv": cv2.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda or "", "cuda_available": torch.cuda.is_available()}


RUN_TIME_TEXTURE = None  # see ReconstructionEngine.texture_path

class ReconstructionEngine:
    """Holds the head model, local model, Mesh-VAE and their tensors on one device."""

    def __init__(self, model: str | None = None, device: str = DEFAULT_DEVICE, assets: str | None = None,
                 vae_path: str | None = None):
        self.device = resolve_device(device)
        self.assets = find_assets_dir(assets, required=False)
        self.model = load_head_model(model, assets=assets)
        self.model_hash = model_fingerprint(self.model)
        self._vae_path = vae_path
        self._local = None
        self._vae = None
        self._stats = None
        self._priors: dict = {}
        self._fitters: dict = {}

    @property
    def texture_path(self):
        """The albedo texture of the fit and the bake: None, FLAME's mean texture is not used at run
        time (its licence keeps it out of the product, and the fit measured as good without it:
        out-of-span Table 1, full+local 2.99 mm without vs 3.02 mm with, faces rendered with it), so
        the installed extension and the command line compute the same result."""
        return RUN_TIME_TEXTURE

    @property
    def vae(self):
        if self._vae is None:
            m = self.model
            self._vae = (load_vae(self._vae_path, self.device, m.v_template, m.faces) if self._vae_path
                         else load_default_vae(self.device, m))
        return self._vae

    def latent_stats(self):
        """Mean and std of the encoder's latents over LATENT_STATS_HEADS head-model samples (fixed seed)."""
        if self._stats is None:
            layer = HeadLayer(self.model).to(self.device)
            g = torch.Generator().manual_seed(LATENT_STATS_SEED)
            shape, expr = random_coefficients_torch(self.model, LATENT_STATS_HEADS, g)
            with torch.no_grad():
                meshes = layer(shape.to(self.device), expr.to(self.device)).vertices
            self._stats = latent_statistics(self.vae, meshes)
        return self._stats

    def region_prior(self, settings: RegionPriorSettings = RegionPriorSettings()) -> RegionPrior:
        """The "gaussian" completion's prior for these settings, made once and kept."""
        if settings not in self._priors:
            self._priors[settings] = RegionPrior(self.model, settings, self.device)
        return self._priors[settings]

    def fitter(self, settings: FitSettings | str = FitSettings.mode) -> PartialFitter:
        """The partial fitter for these settings (or this mode with default settings), made once
        and kept; the fit runs on the engine's device."""
        st = replace(FitSettings(mode=settings) if isinstance(settings, str) else settings, device=str(self.device))
        if st not in self._fitters:
            local = load_or_build_local_model(self.model) if uses_local_model(st.mode) else None
            self._fitters[st] = PartialFitter(self.model, local, st, self.texture_path)
        return self._fitters[st]

    def warm_up(self, config: ReconstructConfig | None = None) -> None:
        """Load everything a reconstruction with ``config`` (default: the defaults) needs, so that
        the first job pays no first-call costs (the worker calls this once, in the background)."""
        from .inputs.landmarks_base import get_backend

        cfg = config or ReconstructConfig()
        # the landmark detector (MediaPipe's graph initialises on its first image)
        get_backend(cfg.backend, cfg.inputs.landmarks).detect(np.zeros((64, 64, 3), np.uint8))
        self.fitter(cfg.fit)
        if cfg.completion.model == "gaussian":
            self.region_prior(cfg.completion.prior)
            return
        self.latent_stats()
        # the decoder's cached sparse matrices and their transposes (built on first use, ~1 s
        # on a CPU), so that the first job does not pay for them; no effect on results
        z = torch.zeros(1, *self.vae.latent_shape, device=self.device, requires_grad=True)
        self.vae.decode(z).sum().backward()

    # ---- the job ------------------------------------------------------------------------
    def reconstruct(self, image, config: ReconstructConfig | None = None, out_dir=None,
                    progress: Progress | None = None, cancel: Callable[[], bool] | None = None):
        """Returns (ReconstructionResult, path of result.npz or None). Writes ``out_dir`` atomically.
        CUDA running out of memory becomes a one-line ResourceError (nothing is written)."""
        try:
            return self._reconstruct(image, config or ReconstructConfig(), out_dir, progress, cancel)
        except torch.cuda.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise ResourceError(f"the GPU ran out of memory on {self.device}; use fewer samples or --device cpu") from None

    def _reconstruct(self, image, cfg: ReconstructConfig, out_dir, progress, cancel):
        cfg.validate()
        if isinstance(image, (str, Path)) and not Path(image).exists():
            raise InputFileError(f"image not found: {image}")
        report = _StageReporter(progress)
        check = cancel or (lambda: False)
        timings, notes = {}, []
        torch.manual_seed(cfg.seed)
        t = time.perf_counter()
        report("inputs", 0.0, "landmarks and masks")
        inputs = self._face_inputs(image, cfg, notes)
        timings["inputs"] = time.perf_counter() - t
        _raise_if(check)

        t = time.perf_counter()
        fitter = self.fitter(cfg.fit)
        evidence = evidence_from_inputs(inputs)
        fit = fitter.fit(evidence, progress=lambda s, f: (report("fit", f, s), _raise_if(check)), seed=cfg.seed)
        timings["fit"] = time.perf_counter() - t

        t = time.perf_counter()
        div = self._complete(fit, cfg, progress=lambda s, f: report("complete", f, s), cancel=check,
                             photometric=self._photometric_term(fit, evidence, fitter.renderer, cfg.completion))
        timings["complete"] = time.perf_counter() - t

        result = self._result(image, cfg, inputs, fit, div, notes, timings)
        path = None
        if out_dir is not None:
            t = time.perf_counter()
            report("outputs", 0.0, "writing files")
            from .outputs.reconstruction_files import write_reconstruction

            with atomic_output_dir(out_dir) as tmp:
                write_reconstruction(tmp, result, inputs, fit, fitter.renderer, self.model, self.texture_path,
                                     expression_meshes=cfg.outputs.expression_meshes)
            path = Path(out_dir) / "result.npz"
            timings["outputs"] = time.perf_counter() - t
        report("outputs", 1.0, "done")
        return result, path

    def _face_inputs(self, image, cfg: ReconstructConfig, notes: list):
        """Landmarks and masks; an automatic mask that hides too much is dropped (noted)."""
        from .inputs import prepare_face_inputs

        inputs = prepare_face_inputs(image, mask=cfg.mask, backend=cfg.backend, settings=cfg.inputs)
        if cfg.mask == "auto" and int(inputs.valid68[INNER].sum()) < MIN_VISIBLE_LANDMARKS:
            # the automatic mask can mistake skin for an occluder; with too little left to fit,
            # carry on without it rather than fail (a given mask is the user's word: it stays)
            notes.append("the automatic occlusion mask hid too much of the face; reconstructed without a mask")
            print(f"d3dface: note: {notes[-1]} (pass --mask FILE to give one)", file=sys.stderr)
            inputs = prepare_face_inputs(image, mask="none", backend=cfg.backend, settings=cfg.inputs)
        return inputs

    def dpp_excluded(self) -> torch.Tensor:
        """(V,) bool on the device: the eyeballs and everything outside the face region, which the
        DPP term leaves out."""
        eyes = torch.zeros(self.model.num_vertices, dtype=torch.bool, device=self.device)
        eyes[eyeball_vertices(self.model)] = True
        not_face = torch.ones_like(eyes)
        not_face[self.model.regions["face"]] = False
        return eyes | not_face

    def _photometric_term(self, fit, evidence, renderer, st) -> SamplePhotometricTerm | None:
        """L_pho of Algorithm 2 for the Mesh-VAE's samples (None when off or not used)."""
        if st.model != "vae" or st.lambda_pho <= 0:
            return None
        return photometric_term_for_fit(fit, evidence, renderer, st.photometric_scale, self.device)

    def _complete(self, fit, cfg: ReconstructConfig, progress, cancel, photometric=None):
        """Algorithm 2 on the fit: M completions diversified on the occluded face, by the
        configured completion model; photometric: L_pho for the Mesh-VAE (``_photometric_term``)."""
        dev = self.device
        S, occ = torch.as_tensor(fit.vertices, device=dev), torch.as_tensor(fit.occluded, device=dev)
        st = replace(cfg.completion, seed=cfg.seed)
        if st.model == "gaussian":
            return diversify_gaussian(self.region_prior(st.prior), S, occ, st, self.dpp_excluded(), progress, cancel)
        return diversify(self.vae, S, occ, st, latent_stats=self.latent_stats(), exclude_from_dpp=self.dpp_excluded(),
                         photometric=photometric, progress=progress, cancel=cancel)

    def _result(self, image, cfg: ReconstructConfig, inputs, fit, div, notes, timings) -> ReconstructionResult:
        """The result: the samples stitched to the fit where seen (when asked), the raw ones beside."""
        occ = fit.occluded
        samples = div.samples
        if cfg.stitch.enabled:
            samples = join_to_fit(div.samples, fit.vertices, occ, self.model.faces, cfg.stitch.method, cfg.stitch.rings)
        visible_fit = np.where(occ[:, None], div.mean_completion, fit.vertices).astype(np.float32)
        state = ExpressionState.from_fit(self.model, fit.params, fit.unposed_vertices)
        neutral = lambda v: neutralise(self.model, v, state).astype(np.float32)  # noqa: E731
        c = cfg.completion
        settings = {"completion_model": c.model, "samples": c.samples, "seed": cfg.seed, "mask": cfg.mask, "backend": cfg.backend,
                    "diversity": c.diversity, "iterations": c.iterations, "fit_mode": cfg.fit.mode,
                    "stitch": cfg.stitch.enabled, "stitch_method": cfg.stitch.method, "stitch_rings": cfg.stitch.rings, "device": str(self.device),
                    "landmark_backend": inputs.landmarks.backend, "face_count": inputs.landmarks.face_count,
                    "mask_source": inputs.mask_source, "occluded_fraction_of_face": inputs.occluded_fraction_of_face,
                    "notes": notes, "config": cfg.as_dict()}
        return ReconstructionResult(
            fit_vertices=fit.vertices,
            visible_fit_vertices=visible_fit,
            samples=samples, samples_raw=div.samples, latents=div.latents, mu=div.mu, logvar=div.logvar, occluded=occ,
            faces=self.model.faces, uvs=self.model.uvs, uv_faces=self.model.uv_faces, camera=fit.camera,
            crop_box=np.asarray(inputs.crop.box, np.float64), image_size=tuple(inputs.image.shape[:2]),
            image_path=str(Path(image).resolve()) if isinstance(image, (str, Path)) else "",
            head_model=self.model.meta.get("name", ""), head_model_hash=self.model_hash,
            settings=settings, versions=versions(), timings=timings, expression=state,
            neutral_fit_vertices=neutral(fit.vertices), neutral_visible_fit_vertices=neutral(visible_fit),
            neutral_samples=neutral(samples),
        )

    def interpolate(self, result_path, i: int, j: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode z(alpha) = (1 - alpha) z_i + alpha z_j for ``steps`` alphas in [0, 1] (Appendix A.3).
        ``result_path``: a result file, an ``interpolation_source.npz`` (the latents a Blender object
        stores) or an InterpolationSource. Returns (alphas (K,), vertices (K, V, 3))."""
        res = result_path if isinstance(result_path, InterpolationSource) else load_interpolation_source(result_path)
        M = res.num_samples
        for name, k in (("--from", i), ("--to", j)):
            if not 1 <= k <= M:
                raise D3DFaceError(f"{name} {k}: the result has samples 1..{M}")
        if steps < 2:
            raise D3DFaceError("steps must be at least 2")
        if res.head_model_hash and res.head_model_hash != self.model_hash:
            raise D3DFaceError("the result was made with another head model than the one loaded")
        if res.fit_vertices.shape[0] != self.model.num_vertices:
            raise D3DFaceError(f"the result has {res.fit_vertices.shape[0]} vertices; the head model {self.model.num_vertices}")
        faces = self.model.faces if res.faces is None else res.faces
        alphas = np.linspace(0.0, 1.0, steps)
        zi, zj = (torch.as_tensor(res.latents[k - 1], device=self.device) for k in (i, j))
        a = torch.as_tensor(alphas, dtype=zi.dtype, device=self.device)[:, None, None]
        with torch.no_grad():
            verts = self._decode(res, (1 - a) * zi + a * zj).cpu().numpy()
        if res.settings.get("stitch", False):
            # results written before the Laplacian join existed were joined by smoothstep
            verts = join_to_fit(verts, res.fit_vertices, res.occluded, faces, res.settings.get("stitch_method", "smoothstep"),
                                int(res.settings.get("stitch_rings", StitchSettings.rings)))
        return alphas, verts

    def _decode(self, res, latents: torch.Tensor) -> torch.Tensor:
        """Latents (K, ...) of a run -> vertices (K, V, 3): its Mesh-VAE's, or for a "gaussian" run
        (whitened coefficients (K, 1, C)) the fit plus the posterior's offsets, conditioned again
        on the run's occlusion (results older than "completion_model" are Mesh-VAE runs)."""
        if res.settings.get("completion_model", "vae") != "gaussian":
            return self.vae.decode(latents)
        prior = self.region_prior(RegionPriorSettings(**res.settings.get("config", {}).get("completion", {}).get("prior", {})))
        if latents.shape[-1] != prior.num_coefficients:
            raise D3DFaceError(f"the run has {latents.shape[-1]} prior coefficients; this head model's prior {prior.num_coefficients}")
        cond = prior.condition(~torch.as_tensor(res.occluded, device=self.device))
        fit = torch.as_tensor(res.fit_vertices, device=self.device)[None]
        return fit + cond.decode(latents.reshape(latents.shape[0], -1))


def _raise_if(check) -> None:
    if check():
        raise Cancelled("cancelled")


class _StageReporter:
    def __init__(self, progress: Progress | None):
        self.progress = progress

    def __call__(self, stage: str, fraction: float, text: str = "") -> None:
        if self.progress is None:
            return
        a, b = STAGES[stage]
        self.progress(text or stage, a + (b - a) * min(max(fraction, 0.0), 1.0))


_ENGINES: dict = {}


def get_engine(model=None, device=DEFAULT_DEVICE, assets=None) -> ReconstructionEngine:
    """One engine per (model, device, assets), kept for the process (the worker reuses it)."""
    key = (str(model), str(device), str(assets))
    if key not in _ENGINES:
        _ENGINES[key] = ReconstructionEngine(model, device, assets)
    return _ENGINES[key]


def reconstruct(image, mask=None, samples=None, seed=None, device=None, diversity=None, out_dir=None, progress=None,
                cancel=None, model=None, backend=None, iterations=None):
    """The library call (None: the default of ``ReconstructConfig``): see ``ReconstructionEngine.reconstruct``."""
    cfg = ReconstructConfig.create(samples=samples, seed=seed, mask=mask, backend=backend, diversity=diversity,
                                   iterations=iterations, device=device, model=model)
    return get_engine(model, cfg.device).reconstruct(image, cfg, out_dir, progress, cancel)


def interpolate(result_path, i: int, j: int, steps: int, device=DEFAULT_DEVICE, model=None):
    """Decoded vertices (steps, V, 3) between samples i and j (1-based) of a result file."""
    return get_engine(model, device).interpolate(result_path, i, j, steps)[1]

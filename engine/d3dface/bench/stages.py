"""The measured stages of ``d3dface bench``, one group per process.

    python -m d3dface.bench.stages GROUP '{"device": "cpu", "repeats": 5, ...}'

prints one JSON line ``{"group": ..., "measurements": {name: {...}}, "peak_rss_mb": ...}``.
Every measurement holds ``median`` (in ``unit``), the individual ``times`` and its
parameters; times are medians over ``repeats`` runs after one warm-up run (CUDA is
synchronised around each run). Groups: render, fit, vae, dpp, reconstruct, scaling_image.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux ru_maxrss is in KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device, warmup: int = 1, scale: float = 1e3) -> list[float]:
    """Run ``fn`` ``warmup`` times, then ``repeats`` times; the times (ms with scale 1e3)."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        out.append(scale * (time.perf_counter() - t))
    return out


def measurement(times: list[float], unit: str = "ms", **params) -> dict:
    return {"median": float(statistics.median(times)), "unit": unit, "repeats": len(times),
            "times": [round(float(t), 4) for t in times], **params}


# ---- inputs ---------------------------------------------------------------------------------
def test_photo(size: int, folder: Path, image: str | None = None, mask: str | None = None) -> tuple[str, str]:
    """(image path, mask argument) of the bench photo resized to size x size, written in ``folder``."""
    from PIL import Image

    from ..paths import find_assets_dir

    if image is None:
        assets = find_assets_dir(None, required=False)
        occluded = (assets.parent if assets else Path("shared")) / "images" / "occluded"
        image, mask = str(occluded / "glasses_woman.jpg"), str(occluded / "glasses_woman_mask.png")
    if not Path(image).is_file():
        raise FileNotFoundError(f"bench photo not found: {image} (pass --image)")
    out = folder / f"photo_{size}.png"
    if not out.exists():
        Image.open(image).convert("RGB").resize((size, size), Image.BICUBIC).save(out)
    return str(out), (mask or "auto")  # a mask file is resized to the image by the engine


def _engine(opts: dict):
    from ..reconstruct import ReconstructionEngine

    return ReconstructionEngine(device=opts["device"])


QUICK_FIT_ITERATIONS = (20, 10)  # landmark and photometric iterations of the fit in --quick runs
QUICK_COMPLETION_ITERATIONS = 5  # Algorithm 2 iterations in --quick runs


def _config(opts: dict, **options):
    """The reconstruction settings of a bench run: the defaults, or fewer iterations with --quick."""
    from dataclasses import replace

    from ..config import ReconstructConfig

    cfg = ReconstructConfig.create(**options)
    if not opts.get("quick"):
        return cfg
    landmarks, photometric = QUICK_FIT_ITERATIONS
    return replace(cfg, fit=replace(cfg.fit, iters_landmarks=landmarks, iters_photometric=photometric),
                   completion=replace(cfg.completion, iterations=options.get("iterations") or QUICK_COMPLETION_ITERATIONS))


# ---- groups ---------------------------------------------------------------------------------
def group_render(opts: dict) -> dict:
    """Renderer forward+backward (FLAME template, batch 1) at each size; pytorch3d side by side where importable."""
    from ..bench.renderer import bench

    dev = resolve_device(opts["device"])
    flame = _flame_dir()
    try:
        import pytorch3d  # noqa: F401

        p3d = "installed (no pytorch3d backend to compare with in this engine yet)"
    except ImportError:
        p3d = "not installed"
    out = {}
    for size in opts.get("render_sizes", [224, 512]):
        times = []
        r = bench(size, 1, opts["repeats"], flame, str(dev), times_out=times)
        out[f"render_fwd_bwd_{size}"] = measurement(
            times, size=size, batch=1, mesh=r["mesh"], forward_ms=r["forward_ms"], raster_ms=r["raster_ms"],
            pytorch3d=p3d)
    return out


def _flame_dir() -> str | None:
    from ..paths import find_assets_dir

    assets = find_assets_dir(None, required=False)
    return str(assets / "flame") if assets else None


def group_fit(opts: dict) -> dict:
    """The partial fit (Algorithm 1) of the bench photo at 512x512: total time and iterations per second."""
    from ..fit.evidence import evidence_from_inputs
    from ..inputs import prepare_face_inputs

    dev = resolve_device(opts["device"])
    with tempfile.TemporaryDirectory() as tmp:
        image, mask = test_photo(opts.get("image_size", 512), Path(tmp), opts.get("image"), opts.get("mask"))
        ev = evidence_from_inputs(prepare_face_inputs(image, mask=mask))
    engine = _engine(opts)
    fitter = engine.fitter(_config(opts).fit)
    iters = fitter.settings.iters_landmarks + fitter.settings.iters_photometric
    last = {}

    def run():
        last["fit"] = fitter.fit(ev)

    times = timed(run, opts["repeats"], dev, scale=1.0)
    med = statistics.median(times)
    t = last["fit"].timings
    return {"fit": measurement(times, "s", iterations=iters, iterations_per_s=iters / med,
                               landmark_iterations_per_s=fitter.settings.iters_landmarks / t["landmarks"],
                               photometric_iterations_per_s=fitter.settings.iters_photometric / t["photometric"],
                               stage_seconds={k: round(v, 4) for k, v in t.items()})}


def _occlusion(model, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A glasses-like occlusion for the VAE and DPP stages: the face's upper half hidden.
    Returns occluded (V,) bool and exclude_from_dpp (V,) bool (eyeballs, not face), as reconstruct."""
    from ..fit.regions import eyeball_vertices

    V = model.num_vertices
    face = np.asarray(model.regions["face"])
    y = model.v_template[face, 1]
    occ = np.zeros(V, bool)
    occ[face[y > np.median(y)]] = True
    excl = np.ones(V, bool)
    excl[face] = False
    excl[eyeball_vertices(model)] = True
    return torch.as_tensor(occ, device=device), torch.as_tensor(excl, device=device)


def group_vae(opts: dict) -> dict:
    """Mesh-VAE encode and decode (inference) for batches of 1 and 16."""
    engine = _engine(opts)
    dev, vae, model = engine.device, engine.vae, engine.model
    occ, _ = _occlusion(model, dev)
    g = torch.Generator().manual_seed(0)
    out = {}
    for b in (1, 16):
        verts = (torch.as_tensor(model.v_template)[None] + 2e-3 * torch.randn(b, model.num_vertices, 3, generator=g)).to(dev)
        vis = (~occ)[None].expand(b, -1)
        z = torch.randn(b, *vae.latent_shape, generator=g).to(dev)
        with torch.inference_mode():
            enc = timed(lambda: vae.encode(verts, vis), opts["repeats"], dev)
            dec = timed(lambda: vae.decode(z), opts["repeats"], dev)
        out[f"vae_encode_b{b}"] = measurement(enc, batch=b)
        out[f"vae_decode_b{b}"] = measurement(dec, batch=b)
    return out


def group_dpp(opts: dict) -> dict:
    """One step of Algorithm 2 (decode M latents + L_S + DPP loss + backward + Adam) per M."""
    from ..complete.diversify import DiversifySettings, optimise_diverse

    engine = _engine(opts)
    dev, vae, model = engine.device, engine.vae, engine.model
    m_agg, s_agg = engine.latent_stats()
    occ, excl = _occlusion(model, dev)
    partial = torch.as_tensor(model.v_template, device=dev)
    out = {}
    for M in opts.get("dpp_samples", [8, 16, 32]):
        g = torch.Generator().manual_seed(M)
        z0 = (m_agg + s_agg * torch.randn(M, *vae.latent_shape, generator=g).to(dev))
        st = DiversifySettings(samples=M, iterations=1)
        times = timed(lambda: optimise_diverse(vae.decode, z0, partial, occ, st, lambda t: (t - m_agg) / s_agg, excl),
                      opts["repeats"], dev)
        out[f"dpp_step_m{M}"] = measurement(times, samples=M)
    return out


def group_reconstruct(opts: dict) -> dict:
    """End-to-end reconstruct (inputs, fit, Mesh-VAE + DPP, all output files) of the bench photo.

    ``cold``: a fresh engine (model, local model, Mesh-VAE and latent statistics loaded) and one
    reconstruction; ``median``: repeated reconstructions with the loaded engine (the worker's case)."""
    from ..reconstruct import ReconstructionEngine

    dev = resolve_device(opts["device"])
    size, M = opts.get("image_size", 512), opts.get("samples", 8)
    with tempfile.TemporaryDirectory() as tmp:
        image, mask = test_photo(size, Path(tmp), opts.get("image"), opts.get("mask"))
        st = _config(opts, samples=M, mask=mask, seed=0)
        runs = iter(range(10**6))
        last = {}

        def run(engine):
            last["result"], _ = engine.reconstruct(image, st, out_dir=Path(tmp) / f"out{next(runs)}")

        _sync(dev)
        t = time.perf_counter()
        engine = ReconstructionEngine(device=str(dev))
        engine.fitter(st.fit)
        engine.warm_up()
        load_s = time.perf_counter() - t
        run(engine)
        _sync(dev)
        cold_s = time.perf_counter() - t
        cold_stages = dict(last["result"].timings)
        times = timed(lambda: run(engine), max(1, opts["repeats"] // 2), dev, warmup=0, scale=1.0)
    name = f"reconstruct_m{M}_{size}"
    return {name: measurement(times, "s", samples=M, image_size=size, cold_s=cold_s, load_s=load_s,
                              iterations=st.completion.iterations, cold_stage_seconds={k: round(v, 3) for k, v in cold_stages.items()},
                              stage_seconds={k: round(v, 3) for k, v in last["result"].timings.items()})}


def group_scaling_image(opts: dict) -> dict:
    """Warm reconstruct (M=8) and renderer forward+backward at each image size."""
    from ..reconstruct import ReconstructionEngine
    from ..bench.renderer import bench

    dev = resolve_device(opts["device"])
    engine = ReconstructionEngine(device=str(dev))
    engine.fitter(_config(opts).fit)
    engine.warm_up()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        image, mask = test_photo(200, Path(tmp), opts.get("image"), opts.get("mask"))  # warm-up job (first-call costs)
        engine.reconstruct(image, _config(opts, samples=8, mask=mask, iterations=2), out_dir=Path(tmp) / "warm")
        for size in opts.get("scaling_sizes", [256, 512, 1024, 2048]):
            image, mask = test_photo(size, Path(tmp), opts.get("image"), opts.get("mask"))
            st = _config(opts, samples=8, mask=mask, seed=0)
            holder = {}
            times = timed(lambda: holder.update(r=engine.reconstruct(image, st, out_dir=Path(tmp) / f"o{size}_{time.time_ns()}")[0]),
                          1, dev, warmup=0, scale=1.0)
            r_times = []
            bench(size, 1, max(1, opts["repeats"] // 2), _flame_dir(), str(dev), times_out=r_times)
            out[f"image_{size}"] = {"reconstruct_s": times[0], "stage_seconds": {k: round(v, 3) for k, v in holder["r"].timings.items()},
                                    "render_fwd_bwd_ms": statistics.median(r_times)}
    return {"scaling_image": out}


def group_scaling_samples(opts: dict) -> dict:
    """One DPP step and the whole completion stage (encode + ``iterations`` steps + decode) per M."""
    from ..complete.diversify import DiversifySettings, diversify

    step = group_dpp({**opts, "dpp_samples": opts.get("scaling_samples", [2, 4, 8, 16, 32])})
    engine = _engine(opts)
    dev, vae, model = engine.device, engine.vae, engine.model
    occ, excl = _occlusion(model, dev)
    partial = torch.as_tensor(model.v_template, device=dev)
    iters = 5 if opts.get("quick") else DiversifySettings.iterations
    diversify(vae, partial, occ, DiversifySettings(samples=2, iterations=1), engine.latent_stats(), excl)  # warm-up
    out = {}
    for name, m in step.items():
        M = m["samples"]
        st = DiversifySettings(samples=M, iterations=iters)
        t = timed(lambda: diversify(vae, partial, occ, st, engine.latent_stats(), excl), 1, dev, warmup=0, scale=1.0)
        out[f"m{M}"] = {"dpp_step_ms": m["median"], "complete_s": t[0], "iterations": iters}
    return {"scaling_samples": out}


GROUPS = {"render": group_render, "fit": group_fit, "vae": group_vae, "dpp": group_dpp,
          "reconstruct": group_reconstruct, "scaling_image": group_scaling_image,
          "scaling_samples": group_scaling_samples}


def run_group(name: str, opts: dict) -> dict:
    if opts.get("threads"):
        torch.set_num_threads(int(opts["threads"]))
    else:  # the engine's rule, as the command line and the worker ($D3DFACE_THREADS, default 1)
        from ..devices import configure_threads

        configure_threads()
    torch.manual_seed(0)
    t = time.perf_counter()
    res = GROUPS[name](opts)
    dev = resolve_device(opts["device"])
    extra = {}
    if dev.type == "cuda":
        extra["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return {"group": name, "measurements": res, "peak_rss_mb": peak_rss_mb(), "seconds": time.perf_counter() - t,
            "threads": torch.get_num_threads(), "device": str(dev), **extra}


def _clean(o):
    """JSON-safe: non-finite floats become None."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    name, opts = argv[0], json.loads(argv[1])
    print("D3DFACE_BENCH " + json.dumps(_clean(run_group(name, opts))), flush=True)


if __name__ == "__main__":
    main()

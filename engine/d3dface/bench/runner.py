"""Run the bench groups in subprocesses, check the budgets, format the table.

Each group runs in a fresh ``python -m d3dface.bench.stages`` process so that its peak RSS
(``ru_maxrss``) is its own and one stage's caches do not flatter the next. The budgets are
DESIGN section 6's for a 2-core CPU; they are checked on full CPU runs only.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time

import torch

from .. import __version__
from ..devices import resolve_device
from ..errors import D3DFaceError
from . import blender_keys

MARK = "D3DFACE_BENCH "
GROUPS = ["render", "fit", "vae", "dpp", "reconstruct"]

# name, measurement, field, limit, unit: DESIGN 6 on a 2-core CPU
BUDGETS = [
    ("reconstruct 512x512 M=8 end to end (cold engine)", "reconstruct_m8_512", "cold_s", 20.0, "s"),
    ("reconstruct peak RSS", "reconstruct_m8_512", "peak_rss_mb", 3072.0, "MB"),
    ("Mesh-VAE decode of 16", "vae_decode_b16", "median", 150.0, "ms"),
    ("fit", "fit", "median", 15.0, "s"),
]


def _subprocess(args: list[str], threads: int, timeout: float) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = env["D3DFACE_THREADS"] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    raise D3DFaceError(f"bench stage {' '.join(args[2:3])} failed (exit {p.returncode}): {' | '.join(tail)[:400]}")


def run_group(name: str, opts: dict, timeout: float = 1800) -> dict:
    return _subprocess(["-m", "d3dface.bench.stages", name, json.dumps(opts)], opts.get("threads", 0), timeout)


def run_blender(samples: int, repeats: int, threads: int, addon_dir=None) -> dict:
    if addon_dir is None:
        return {"skipped": "no add-on folder: pass d3dface bench --addon-dir DIR (or set $D3DFACE_ADDON_DIR)"}
    if not blender_keys.available():
        return {"skipped": "bpy is not importable in this Python (d3dface bench --addon-dir needs it)"}
    parent = blender_keys.check_addon_dir(addon_dir)
    return _subprocess([str(blender_keys.script(parent)), str(parent), str(samples), str(repeats)], threads, 600)


def run_bench(device: str = "auto", repeats: int | None = None, threads: int = 0, quick: bool = False,
              scaling: bool = False, image: str | None = None, mask: str | None = None, log=print,
              addon_dir=None) -> dict:
    """All measurements as one dict (see ``d3dface bench --help``); the Blender shape-key timing
    needs ``addon_dir`` (the folder holding ``d3dface_addon/`` and ``scripts/bench_blender_keys.py``)
    and bpy, and is recorded as skipped, with a one-line note, without either."""
    dev = resolve_device(device)  # the parent decides: every group gets the same explicit device
    repeats = repeats or (2 if quick else 5)
    opts = {"device": str(dev), "repeats": repeats, "threads": threads, "quick": quick, "image": image, "mask": mask,
            "image_size": 256 if quick else 512, "samples": 8}
    if quick:
        opts["dpp_samples"] = [8, 16, 32]
        opts["scaling_sizes"], opts["scaling_samples"] = [256, 512], [2, 4]
    out = {"meta": {"d3dface": __version__, "torch": torch.__version__, "python": platform.python_version(),
                    "device": str(dev), "cuda_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "",
                    "threads": threads or f"engine default ($D3DFACE_THREADS={os.environ.get('D3DFACE_THREADS', '1')})", "cpu_count": os.cpu_count(), "quick": quick,
                    "repeats": repeats, "machine": platform.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")},
           "measurements": {}, "peak_rss_mb": {}, "seconds": {}}
    groups = GROUPS + (["scaling_samples", "scaling_image"] if scaling else [])
    for g in groups:
        log(f"bench: {g} ...")
        t = time.perf_counter()
        r = run_group(g, opts)
        out["seconds"][g] = time.perf_counter() - t
        out["peak_rss_mb"][g] = r["peak_rss_mb"]
        if "peak_cuda_mb" in r:
            out.setdefault("peak_cuda_mb", {})[g] = r["peak_cuda_mb"]
        for name, m in r["measurements"].items():
            if isinstance(m, dict) and "median" in m:
                m["peak_rss_mb"] = r["peak_rss_mb"]
            (out.setdefault("scaling", {}) if name.startswith("scaling") else out["measurements"])[name] = m
    log("bench: blender shape keys ...")
    t = time.perf_counter()
    bl = run_blender(16, repeats, threads, addon_dir)
    if "skipped" in bl:
        log(f"bench: blender shape keys skipped: {bl['skipped']}")
    out["seconds"]["blender"] = time.perf_counter() - t
    out["measurements"]["blender_keys_16"] = bl
    if "peak_rss_mb" in bl:
        out["peak_rss_mb"]["blender"] = bl["peak_rss_mb"]
    out["budgets"] = check_budgets(out, dev, quick)
    return out


def check_budgets(out: dict, dev, quick: bool) -> list[dict]:
    rows = []
    for label, meas, field, limit, unit in BUDGETS:
        value = out["measurements"].get(meas, {}).get(field)
        if quick or dev.type != "cpu":
            status = "n/a (quick run)" if quick else "n/a (budgets are for the 2-core CPU)"
        elif value is None or not math.isfinite(value):
            status = "not measured"
        else:
            status = "met" if value <= limit else "NOT met"
        rows.append({"budget": label, "value": value, "limit": limit, "unit": unit, "status": status})
    return rows


def _fmt(v, unit) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} {unit}" if unit in ("ms", "MB") or v >= 10 else f"{v:.2f} {unit}"


def table(out: dict) -> str:
    m = out["measurements"]
    meta = out["meta"]
    lines = [f"d3dface {meta['d3dface']} bench, torch {meta['torch']}, device {meta['device']} {meta['cuda_name']}".rstrip()
             + f", threads {meta['threads']}, {meta['cpu_count']} CPUs, medians of {meta['repeats']}"
             + (" (quick)" if meta["quick"] else ""),
             f"{'measurement':34s} {'median':>12s}  {'peak RSS':>9s}  notes"]
    for name, r in m.items():
        if "median" not in r:
            lines.append(f"{name:34s} {'skipped':>12s}  {'':>9s}  {r.get('skipped', '')}")
            continue
        note = ""
        if name.startswith("render"):
            note = f"forward {r['forward_ms']:.1f} ms; pytorch3d: {r['pytorch3d']}"
        elif name == "fit":
            note = f"{r['iterations']} iterations, {r['iterations_per_s']:.1f} it/s"
        elif name.startswith("reconstruct"):
            note = f"warm; cold {r['cold_s']:.2f} s (load {r['load_s']:.2f} s); " + ", ".join(
                f"{k} {v:.2f}" for k, v in r["stage_seconds"].items())
        elif name.startswith("blender"):
            note = f"replace {r['samples']} sample keys; new object {r['new_object_ms']:.1f} ms; bpy {r['bpy_version']}"
        lines.append(f"{name:34s} {_fmt(r['median'], r['unit']):>12s}  {_fmt(r.get('peak_rss_mb'), 'MB'):>9s}  {note}")
    sc = out.get("scaling", {})
    if "scaling_samples" in sc:
        lines.append("scaling with M: " + "; ".join(
            f"M={k[1:]}: step {v['dpp_step_ms']:.0f} ms, completion {v['complete_s']:.2f} s" for k, v in sc["scaling_samples"].items()))
    if "scaling_image" in sc:
        lines.append("scaling with image size (M=8, warm): " + "; ".join(
            f"{k[6:]}: {v['reconstruct_s']:.2f} s (inputs {v['stage_seconds'].get('inputs', 0):.2f}, outputs "
            f"{v['stage_seconds'].get('outputs', 0):.2f}), render {v['render_fwd_bwd_ms']:.0f} ms"
            for k, v in sc["scaling_image"].items()))
    lines.append("budgets: " + "; ".join(f"{b['budget']} {_fmt(b['value'], b['unit'])} <= {b['limit']:g} {b['unit']}: "
                                          f"{b['status']}" for b in out["budgets"]))
    return "\n".join(lines)

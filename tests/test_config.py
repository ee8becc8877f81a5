"""The configuration tree (d3dface.config): one home for each default, derived or checked
everywhere else it shows (command line, worker protocol, Blender add-on), never mutated."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import pytest

from d3dface.complete.settings import DiversifySettings, StitchSettings
from d3dface.config import (BACKENDS, DEVICES, INTERPOLATION_STEPS, MAX_SAMPLES, ReconstructConfig)
from d3dface.errors import D3DFaceError
from d3dface.fit.settings import FitSettings
from d3dface.inputs.settings import InputSettings

from conftest import REPO


def _addon_defaults():
    spec = importlib.util.spec_from_file_location("addon_engine_defaults", REPO / "d3dface_addon" / "engine_defaults.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_tree_is_made_of_the_stages_settings_and_reads_its_defaults_from_them():
    cfg = ReconstructConfig()
    assert isinstance(cfg.inputs, InputSettings) and isinstance(cfg.fit, FitSettings)
    assert isinstance(cfg.completion, DiversifySettings) and isinstance(cfg.stitch, StitchSettings)
    assert cfg.samples == DiversifySettings().samples == 8 and cfg.mask == "auto" and cfg.backend == "auto"
    assert cfg.fit.mode == "full+local" and cfg.stitch.enabled and cfg.stitch.method == "laplacian" and cfg.seed == 0


def test_nothing_in_the_tree_can_be_changed_in_place():
    cfg = ReconstructConfig()
    for section, name in ((cfg, "seed"), (cfg.completion, "samples"), (cfg.fit, "iters_landmarks"),
                          (cfg.inputs, "crop_size"), (cfg.inputs.masks, "occlusion"), (cfg.stitch, "rings")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, name, 1)


def test_create_maps_flat_options_and_validates_them():
    cfg = ReconstructConfig.create(samples=3, seed=7, mask="m.png", backend="mediapipe", diversity=0.5, iterations=9,
                                   fit_mode="global", device="cpu", stitch=False)
    assert (cfg.completion.samples, cfg.seed, cfg.inputs.masks.occlusion, cfg.inputs.landmarks.backend) == (3, 7, "m.png", "mediapipe")
    assert (cfg.completion.diversity, cfg.completion.iterations, cfg.fit.mode, cfg.device, cfg.stitch.enabled) == (0.5, 9, "global", "cpu", False)
    # what was not given keeps the stage's default
    assert cfg.completion.lr == DiversifySettings().lr and cfg.fit.iters_landmarks == FitSettings().iters_landmarks
    assert ReconstructConfig.create() == ReconstructConfig()
    for bad, word in (({"samples": 0}, "samples"), ({"samples": MAX_SAMPLES + 1}, "samples"), ({"iterations": 0}, "iterations"),
                      ({"diversity": -1}, "diversity"), ({"fit_mode": "local"}, "fit mode"), ({"backend": "dlib"}, "backend"),
                      ({"device": "tpu"}, "device"), ({"join": "poisson"}, "join"),
                      ({"photometric": -1, "completion": "vae"}, "photometric weight"),
                      ({"photometric": 5}, "vae completion only")):
        with pytest.raises(D3DFaceError, match=word):
            ReconstructConfig.create(**bad)
    ReconstructConfig.create(device="cuda:1")  # a CUDA index is a device name too
    assert ReconstructConfig.create(photometric=5, completion="vae").completion.lambda_pho == 5
    with pytest.raises(D3DFaceError, match="photometric_scale"):
        dataclasses.replace(ReconstructConfig(), completion=DiversifySettings(model="vae", photometric_scale=0)).validate()
    for fit, word in (({"albedo_basis": "texture"}, "albedo basis"), ({"photometric_robust_scale": -0.1}, "robust"),
                      ({"estimate_focal": True, "focal_prior_sd": 0.0}, "focal_prior_sd")):
        with pytest.raises(D3DFaceError, match=word):
            dataclasses.replace(ReconstructConfig(), fit=FitSettings(**fit)).validate()


def test_the_worker_protocol_defaults_come_from_the_tree():
    from d3dface import worker_protocol as wp

    cfg = ReconstructConfig()
    r = wp.RECONSTRUCT_DEFAULTS
    assert (r["samples"], r["seed"], r["diversity"], r["mask"], r["device"]) == (
        cfg.samples, cfg.seed, cfg.completion.diversity, cfg.mask, cfg.device)
    assert wp.INTERPOLATE_DEFAULTS["steps"] == INTERPOLATION_STEPS


def test_the_addons_copies_of_the_defaults_agree_with_the_engine():
    d, cfg = _addon_defaults(), ReconstructConfig()
    assert (d.SAMPLES, d.MAX_SAMPLES, d.SEED, d.DIVERSITY, d.MASK, d.INTERPOLATION_STEPS) == (
        cfg.samples, MAX_SAMPLES, cfg.seed, cfg.completion.diversity, cfg.mask, INTERPOLATION_STEPS)


def test_the_addons_properties_use_those_defaults_and_limits():
    """Registered in headless Blender: the panel's and the operator's properties."""
    code = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
import bpy, addon_utils
addon_utils.enable("d3dface_addon", default_set=True, handle_error=None)
def prop(rna, name):
    p = rna.bl_rna.properties[name]
    return {"default": p.default, "min": getattr(p, "hard_min", None), "max": getattr(p, "hard_max", None)}
from d3dface_addon.properties import D3DFaceSettings
op = bpy.ops.d3dface.reconstruct.get_rna_type()
out = {"panel_samples": prop(D3DFaceSettings, "samples"), "panel_seed": prop(D3DFaceSettings, "seed"),
       "panel_diversity": prop(D3DFaceSettings, "diversity"), "panel_steps": prop(D3DFaceSettings, "interp_steps"),
       "op_samples": op.properties["samples"].default, "op_max": op.properties["samples"].hard_max,
       "op_mask": op.properties["mask"].default, "op_seed": op.properties["seed"].default,
       "op_diversity": op.properties["diversity"].default,
       "interp_steps": bpy.ops.d3dface.interpolate.get_rna_type().properties["steps"].default}
print("JSON" + json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    out = json.loads(next(line for line in res.stdout.splitlines() if line.startswith("JSON"))[4:])
    cfg = ReconstructConfig()
    assert out["panel_samples"]["default"] == out["op_samples"] == cfg.samples
    assert out["panel_samples"]["max"] == out["op_max"] == MAX_SAMPLES
    assert out["panel_seed"]["default"] == out["op_seed"] == cfg.seed
    assert out["panel_diversity"]["default"] == pytest.approx(cfg.completion.diversity) == out["op_diversity"]
    assert out["op_mask"] == cfg.mask
    assert out["panel_steps"]["default"] == out["interp_steps"] == INTERPOLATION_STEPS


def test_the_command_line_defaults_come_from_the_tree():
    from d3dface.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    rec = {a.dest: a for a in sub.choices["reconstruct"]._actions}
    cfg = ReconstructConfig()
    assert (rec["samples"].default, rec["seed"].default, rec["mask"].default, rec["diversity"].default,
            rec["iterations"].default) == (cfg.samples, cfg.seed, cfg.mask, cfg.completion.diversity, cfg.completion.iterations)
    assert tuple(rec["device"].choices) == DEVICES and tuple(rec["backend"].choices) == BACKENDS
    inter = {a.dest: a for a in sub.choices["interpolate"]._actions}
    assert inter["steps"].default == INTERPOLATION_STEPS


LAYERS = ["inputs", "head_model", "render", "fit", "complete", "outputs", "training", "reconstruct", "evaluation",
          "bench", "cli", "worker"]  # the README's layout table, first to last


def _layer(module: str):
    parts = module.split(".")
    if len(parts) < 2:
        return None
    name = "worker" if parts[1] in ("worker", "worker_protocol") else parts[1]
    return name if name in LAYERS else None


def test_no_module_imports_a_later_layer():
    """Read every engine module's imports (ast) and check the pipeline's one direction."""
    import ast

    root = REPO / "engine" / "d3dface"
    bad = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if path.name == "__init__.py" else rel.parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        me = _layer(module)
        if me is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("d3dface."):
                targets = [node.module]
            else:
                continue
            bad += [f"{module} imports {t}" for t in targets
                    if _layer(t) and LAYERS.index(_layer(t)) > LAYERS.index(me)]
    assert not bad, bad
    assert _layer("d3dface.cli.main") == "cli" and _layer("d3dface.fit.partial_fit") == "fit"  # the reader works

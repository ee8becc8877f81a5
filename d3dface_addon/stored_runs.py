"""What the engine needs to interpolate between an object's samples, stored on the object, so
that Interpolate works without the run's result file (after the cache folder is cleaned, or in
a .blend opened on another machine). No mathematics: arrays in, arrays out.

The object's ``d3dface`` property holds, besides the latents of every sample (``latents``, in
"Sample NN" order), ``runs``: one entry per reconstruction that added samples, with
- ``result_path`` (str), ``head_model_hash`` (str), ``settings_json`` (the run's settings)
- ``fit`` (3V,) float32: the run's partial fit, metres, FLAME axes
- ``occluded`` (V,) int32: 1 where the photo does not show the vertex
- ``expression`` (only for results with a neutral): ``expression_weights``, ``pose``, ``rest_joints``
  (flat float64), which the engine needs to give interpolated heads without the run's expression
and ``sample_runs``: for each sample, the index of its run (-1: stored by an older add-on, which
kept only the result file's path). ``write_source`` turns one run into the engine's
``interpolation_source.npz`` (``d3dface.outputs.interpolation_source``, mirrored here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .result_reader import ResultData

SOURCE_FORMAT = "d3dface-interpolation-source"
SOURCE_VERSION = 1
SOURCE_NAME = "interpolation_source.npz"


def run_entry(r: ResultData) -> dict:
    """The stored entry of one result."""
    return {"result_path": r.path, "head_model_hash": r.head_model_hash,
            "settings_json": json.dumps(r.settings, sort_keys=True),
            "fit": np.ascontiguousarray(r.fit, np.float32).reshape(-1),
            "occluded": np.asarray(r.occluded, np.int32),
            "expression": {k: np.asarray(v, np.float64).reshape(-1) for k, v in r.expression.items()}}


def _restored(entry: dict) -> dict:
    """An entry read back with ``to_dict()`` (lists) -> arrays of the stored types again."""
    return {**entry, "fit": np.asarray(entry["fit"], np.float32), "occluded": np.asarray(entry["occluded"], np.int32),
            "expression": {k: np.asarray(v, np.float64) for k, v in dict(entry.get("expression", {})).items()}}


def appended(prev: dict, r: ResultData) -> tuple[list, list]:
    """(runs, sample_runs) after adding the samples of ``r`` to the stored data ``prev`` ({} for none)."""
    runs = [_restored(e) for e in prev.get("runs", [])] + [run_entry(r)]
    before = list(prev.get("sample_runs", [-1] * len(prev.get("sample_keys", []))))
    return runs, before + [len(runs) - 1] * r.num_samples


def sample_run(stored: dict, k: int) -> int:
    """The run index of sample ``k`` (1-based); -1 when the object stores no run for it."""
    runs = stored.get("sample_runs", [])
    return int(runs[k - 1]) if k - 1 < len(runs) else -1


def write_source(stored: dict, k: int, latents: np.ndarray, job_dir: Path) -> str:
    """Write the ``interpolation_source.npz`` of sample ``k``'s run into ``job_dir``; its path, or ""
    when the object stores no run for it. ``latents``: (N, 10, 64) of all the object's samples."""
    run = sample_run(stored, k)
    if run < 0:
        return ""
    entry = stored["runs"][run]
    members = [s for s, r in enumerate(stored["sample_runs"]) if int(r) == run]
    indices = [int(stored["sample_indices"][s]) for s in members]
    run_latents = np.zeros((max(indices) + 1, *latents.shape[1:]), np.float32)
    run_latents[indices] = latents[members]  # the run's own sample order (i, j index it)
    path = Path(job_dir) / SOURCE_NAME
    np.savez(path, format=np.array(SOURCE_FORMAT), version=np.array(SOURCE_VERSION), latents=run_latents,
             fit_vertices=np.asarray(entry["fit"], np.float32).reshape(-1, 3),
             occluded=np.asarray(entry["occluded"]).astype(bool), settings_json=np.array(str(entry["settings_json"])),
             head_model_hash=np.array(str(entry["head_model_hash"])),
             **{k: np.asarray(v, np.float64) for k, v in dict(entry.get("expression", {})).items()})
    return str(path)

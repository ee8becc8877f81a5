"""The worker protocol (DESIGN 2.1): JSON lines between Blender and ``python -m d3dface.worker``.

Pure standard library (its defaults come from ``d3dface.config``, which is too): the add-on
side mirrors it in ``d3dface_addon/worker_client.py`` (Blender may run a different interpreter
than the worker).

One JSON object per line, UTF-8, ``\\n``-terminated. The worker's stdout carries protocol lines
only; everything else it or its libraries print goes to stderr (the add-on sends stderr to
``worker.log`` in the cache folder).

Requests (add-on -> worker, stdin)::

    {"op": "reconstruct", "id": "j1", "args": {"image": PATH, "mask": "auto"|"none"|PATH,
         "mask_from_alpha": false, "samples": 8, "seed": 0, "diversity": 1.0, "device": "auto",
         "model": null|PATH, "out_dir": PATH}}
    {"op": "interpolate", "id": "j2", "args": {"result": PATH, "i": 1, "j": 4, "steps": 5,
         "device": "auto", "out_dir": PATH}}      # i, j: 1-based sample numbers of the result
                                               # -> an .npz with vertices (steps, V, 3), alphas (steps,)
         # instead of "result": "source": PATH of an interpolation_source.npz (the latents a head
         # object stores, d3dface.outputs.interpolation_source); exactly one of the two
    {"op": "check", "id": "j3", "args": {"device": "auto", "model": null}}
    {"op": "warm_up", "args": {"device": "auto", "model": null}}
         # no id, no answer: load the engine and its models in the background (sent right after
         # the worker starts); a job that arrives meanwhile waits for it; ignored while a job runs
    {"op": "cancel", "id": "j1"}          # cancels job j1 (or the running job when id is omitted)
    {"op": "shutdown"}                    # finish: the worker exits after the running job stops

Messages (worker -> add-on, stdout)::

    {"type": "ready", "protocol": 1, "engine": "0.1.0", "python": "3.11.9", "pid": 123}
    {"type": "progress", "id": "j1", "stage": "fit", "fraction": 0.42, "text": "fit: photometric"}
    {"type": "result", "id": "j1", "path": RESULT_NPZ, "scene": SCENE_NPZ, "info": {...}}
         # reconstruct: OUT_DIR/result/result.npz and OUT_DIR/result/blender_scene.npz, both
         # written by the engine (d3dface.outputs.blender_scene); check: "path" is "" and
         # "info" holds the versions
    {"type": "error", "id": "j1", "kind": "file"|"input"|"model"|"cancelled"|"busy"|"protocol"|
         "internal"|..., "message": ONE_LINE, "log": PATH_OR_NULL}

Every request with an ``id`` except ``cancel`` gets exactly one final ``result`` or ``error``
with that id. One job runs at a time; a second job while one runs is refused at once with
an ``error`` of kind ``busy`` (the running job is not disturbed). ``cancel`` takes effect
within a second: the job polls it and stops with kind ``cancelled``.

``ready`` is the first line. Its ``protocol`` is ``PROTOCOL_VERSION``; raise it with any change
a client cannot ignore. The add-on's client stops a worker whose ``protocol`` is not its own.
"""

from __future__ import annotations

import json

from .config import INTERPOLATION_STEPS, ReconstructConfig

PROTOCOL_VERSION = 2  # 2: warm_up; interpolate from a "source"

OPS = ("reconstruct", "interpolate", "check", "warm_up", "cancel", "shutdown")
JOB_OPS = ("reconstruct", "interpolate", "check")
ARG_OPS = JOB_OPS + ("warm_up",)  # requests with args
MESSAGE_TYPES = ("ready", "progress", "result", "error")
FINAL_TYPES = ("result", "error")

_D = ReconstructConfig()
RECONSTRUCT_DEFAULTS = {
    "mask": _D.mask, "mask_from_alpha": False, "samples": _D.samples, "seed": _D.seed, "diversity": _D.completion.diversity,
    "device": _D.device, "model": None, "out_dir": None,
}
INTERPOLATE_DEFAULTS = {"result": None, "source": None, "steps": INTERPOLATION_STEPS, "device": _D.device,
                        "out_dir": None, "model": None}
CHECK_DEFAULTS = {"device": _D.device, "model": None}
DEFAULTS = {"reconstruct": RECONSTRUCT_DEFAULTS, "interpolate": INTERPOLATE_DEFAULTS, "check": CHECK_DEFAULTS,
            "warm_up": CHECK_DEFAULTS}
REQUIRED = {"reconstruct": ("image",), "interpolate": ("i", "j"), "check": (), "warm_up": ()}
ONE_OF = {"interpolate": ("result", "source")}


class ProtocolError(ValueError):
    """A line that is not a valid request or message."""


def one_line(text) -> str:
    return " ".join(str(text).split())


def encode(obj: dict) -> str:
    """One protocol line (with its newline)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"


def decode(line: str) -> dict:
    try:
        obj = json.loads(line)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"not a JSON line: {one_line(line)[:80]!r} ({exc})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a protocol line must be a JSON object, not {type(obj).__name__}")
    return obj


def parse_request(line: str) -> dict:
    """A request with defaults filled in: {"op", "id", "args"}; raises ProtocolError."""
    req = decode(line)
    op = req.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r} (expected one of {', '.join(OPS)})")
    job_id = req.get("id")
    if job_id is not None and not isinstance(job_id, str):
        raise ProtocolError("id must be a string")
    if op in ARG_OPS:
        if not job_id and op in JOB_OPS:
            raise ProtocolError(f"{op} needs an id")
        args = req.get("args") or {}
        if not isinstance(args, dict):
            raise ProtocolError("args must be an object")
        missing = [k for k in REQUIRED[op] if k not in args]
        if missing:
            raise ProtocolError(f"{op} needs {', '.join(missing)}")
        unknown = sorted(set(args) - set(DEFAULTS[op]) - set(REQUIRED[op]))
        if unknown:
            raise ProtocolError(f"{op} does not take {', '.join(unknown)}")
        given = [k for k in ONE_OF.get(op, ()) if args.get(k) is not None]
        if op in ONE_OF and len(given) != 1:
            raise ProtocolError(f"{op} needs exactly one of {', '.join(ONE_OF[op])}")
        req = {"op": op, "id": job_id, "args": {**DEFAULTS[op], **args}}
    return req


# ---- worker -> add-on messages ------------------------------------------------------------
def ready(engine_version: str, python: str, pid: int) -> dict:
    return {"type": "ready", "protocol": PROTOCOL_VERSION, "engine": engine_version, "python": python, "pid": pid}


def progress(job_id: str, stage: str, fraction: float, text: str = "") -> dict:
    f = min(max(float(fraction), 0.0), 1.0) if fraction == fraction else 0.0
    return {"type": "progress", "id": job_id, "stage": one_line(stage), "fraction": round(f, 4),
            "text": one_line(text or stage)}


def result(job_id: str, path: str, scene: str | None = None, info: dict | None = None) -> dict:
    return {"type": "result", "id": job_id, "path": str(path), "scene": None if scene is None else str(scene),
            "info": info or {}}


def error(job_id: str | None, kind: str, message: str, log: str | None = None) -> dict:
    return {"type": "error", "id": job_id, "kind": kind, "message": one_line(message), "log": log}

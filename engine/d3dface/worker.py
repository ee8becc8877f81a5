"""The engine worker: ``python -m d3dface.worker [--cache DIR]`` (DESIGN 2.1).

Blender starts it once and reuses it between jobs (models stay loaded). It reads requests
from stdin and writes protocol lines (``d3dface.worker_protocol``) to stdout; every other
print, log line or native library message goes to stderr. One job runs at a time, in a
thread, so that ``cancel`` is read while it runs; the job polls the cancel flag through its
``progress`` and ``cancel`` callbacks and stops within a second.

Warm-up: the client sends ``warm_up`` (device, model) right after the worker starts; a thread
then imports the engine, builds its models and calls its ``warm_up()`` (landmark detector, fitter,
latent statistics, decoder caches), so that a job sent later pays none of it. A job that arrives
during the warm-up waits for it (and can be cancelled while it waits); a failed warm-up only
logs a line to stderr: the job that needs the same models reports the error.

Errors: a D3DFaceError becomes an ``error`` with its kind and one-line message; any other
exception an ``error`` of kind ``internal`` whose traceback goes to ``worker-errors.log`` in
the cache folder (named in the message's ``log``), never to Blender's UI.

The worker calls the engine module and nothing more: ``d3dface.reconstruct.reconstruct``
(which writes the output folder, ``blender_scene.npz`` included), ``.interpolate`` and
``.get_engine`` (whose ``.model`` is the head model the ``check`` op reports). The environment
variable ``D3DFACE_WORKER_ENGINE`` names another module with the same three functions (tests
use it for a fast stand-in). Images sent from the .blend are converted by
``d3dface.inputs.blender_images``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from . import __version__
from . import worker_protocol as wp
from .errors import Cancelled, D3DFaceError
from .paths import ENV_CACHE, cache_dir

ENV_ENGINE = "D3DFACE_WORKER_ENGINE"
PROGRESS_INTERVAL_S = 0.05


class Worker:
    """The request loop. ``out`` is the protocol stream (a text file object)."""

    def __init__(self, out, cache_dir: Path):
        self.out = out
        self.cache_dir = Path(cache_dir)
        self._lock = threading.Lock()
        self._job: threading.Thread | None = None
        self._job_id: str | None = None
        self._cancel = threading.Event()
        self._engine = None
        self._warming: threading.Thread | None = None

    # ---- output -------------------------------------------------------------------------
    def send(self, msg: dict) -> None:
        line = wp.encode(msg)
        with self._lock:
            self.out.write(line)
            self.out.flush()

    # ---- loop ---------------------------------------------------------------------------
    def serve(self, lines) -> None:
        self.send(wp.ready(__version__, platform.python_version(), os.getpid()))
        for line in lines:
            if not line.strip():
                continue
            try:
                req = wp.parse_request(line)
            except wp.ProtocolError as exc:
                job_id = None
                with contextlib.suppress(Exception):
                    job_id = wp.decode(line).get("id")
                self.send(wp.error(job_id if isinstance(job_id, str) else None, "protocol", str(exc)))
                continue
            op = req["op"]
            if op == "shutdown":
                break
            if op == "cancel":
                if self.busy and (req.get("id") in (None, self._job_id)):
                    self._cancel.set()
                continue
            if op == "warm_up":
                self._start_warm_up(req["args"])
                continue
            if self.busy:
                self.send(wp.error(req["id"], "busy", f"the engine is busy with job {self._job_id}; "
                                                      "cancel it or wait for it to finish"))
                continue
            self._start(req)
        # stdin closed or shutdown: stop the running job quickly
        self._cancel.set()
        if self._job is not None:
            self._job.join(timeout=5.0)

    @property
    def busy(self) -> bool:
        return self._job_id is not None

    def _start(self, req: dict) -> None:
        if self._job is not None:
            self._job.join()  # only its final send is left
        self._cancel.clear()
        self._job_id = req["id"]
        self._job = threading.Thread(target=self._run, args=(req,), name=f"job-{req['id']}", daemon=True)
        self._job.start()

    def _start_warm_up(self, args: dict) -> None:
        """Warm up in a thread, unless a job runs (it loads what it needs) or a warm-up does."""
        if self.busy or (self._warming is not None and self._warming.is_alive()):
            return
        self._warming = threading.Thread(target=self._warm_up, args=(args,), name="warm-up", daemon=True)
        self._warming.start()

    def _warm_up(self, args: dict) -> None:
        t = time.perf_counter()
        try:
            engine = self.engine().get_engine(args.get("model"), args["device"])
            if hasattr(engine, "warm_up"):
                engine.warm_up()
            print(f"d3dface worker: warmed up in {time.perf_counter() - t:.2f} s", file=sys.stderr)
        except BaseException as exc:  # noqa: BLE001 - not a job: the job that needs these models reports it
            print(f"d3dface worker: warm-up failed: {type(exc).__name__}: {wp.one_line(exc)}", file=sys.stderr)

    def _await_warm_up(self, job_id: str) -> None:
        """Block the job until the warm-up has finished (polling cancel)."""
        w = self._warming
        if w is None or not w.is_alive():
            return
        self.send(wp.progress(job_id, "start", 0.0, "start: loading the engine"))
        while w.is_alive():
            if self._cancel.is_set():
                raise Cancelled("cancelled")
            w.join(0.05)

    def _run(self, req: dict) -> None:
        job_id = req["id"]
        try:
            self._await_warm_up(job_id)
            handler = {"reconstruct": self.reconstruct, "interpolate": self.interpolate, "check": self.check}[req["op"]]
            msg = handler(job_id, req["args"])
        except D3DFaceError as exc:
            kind = exc.kind
            msg = wp.error(job_id, kind, str(exc) if kind != "cancelled" else "cancelled")
        except BaseException as exc:  # noqa: BLE001 - a programming error: one line here, traceback to the log
            log = self._log_traceback(req)
            msg = wp.error(job_id, "internal", f"internal error in the engine: {type(exc).__name__}: {exc}", log)
        self._job_id = None  # free before the final line: a request that follows it is not refused
        self.send(msg)

    def _log_traceback(self, req: dict) -> str | None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            path = self.cache_dir / "worker-errors.log"
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} job {req.get('id')} {req.get('op')} "
                         f"args={req.get('args')}\n{traceback.format_exc()}\n")
            return str(path)
        except OSError:
            traceback.print_exc(file=sys.stderr)
            return None

    # ---- callbacks given to the engine ----------------------------------------------------
    def _callbacks(self, job_id: str):
        last = [0.0, None]

        def cancel() -> bool:
            return self._cancel.is_set()

        def progress(stage: str, fraction: float) -> None:
            if self._cancel.is_set():
                raise Cancelled("cancelled")
            now = time.monotonic()
            if stage != last[1] or now - last[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                last[0], last[1] = now, stage
                self.send(wp.progress(job_id, str(stage).split(":")[0], fraction, stage))

        return progress, cancel

    def engine(self):
        if self._engine is None:
            self._engine = importlib.import_module(os.environ.get(ENV_ENGINE) or "d3dface.reconstruct")
        return self._engine

    def _out_dir(self, args: dict, prefix: str) -> Path:
        if args.get("out_dir"):
            path = Path(args["out_dir"])
            path.mkdir(parents=True, exist_ok=True)
            return path
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.cache_dir))

    # ---- jobs -----------------------------------------------------------------------------
    def reconstruct(self, job_id: str, args: dict) -> dict:
        import numpy as np

        from .errors import InputFileError
        from .inputs.blender_images import blender_image_to_png

        progress, cancel = self._callbacks(job_id)
        progress("start: loading the engine", 0.0)
        image = Path(str(args["image"])).expanduser()
        if not image.is_file():
            raise InputFileError(f"image not found: {image}")
        out_dir = self._out_dir(args, "job-")
        if image.suffix.lower() == ".npy":  # pixels of an image in the .blend
            image = blender_image_to_png(image, out_dir / "photo.png")
        mask = args["mask"]
        from_alpha = bool(args.get("mask_from_alpha"))
        if mask not in (None, "auto", "none") and (from_alpha or str(mask).lower().endswith(".npy")):
            mask = str(blender_image_to_png(mask, out_dir / "painted_mask.png", from_alpha))
        res, path = self.engine().reconstruct(  # the engine writes (and replaces) its own output folder
            str(image), mask=mask or "none", samples=int(args["samples"]), seed=int(args["seed"]),
            device=args["device"], diversity=float(args["diversity"]), out_dir=str(out_dir / "result"),
            progress=progress, cancel=cancel, model=args.get("model"),
        )
        if cancel():
            raise Cancelled("cancelled")
        scene = Path(path).with_name("blender_scene.npz")  # written by the engine's outputs stage
        if not scene.is_file():
            raise RuntimeError(f"the engine wrote no {scene.name} next to {path}")
        with np.load(scene) as hints:
            has_rig = "bone_heads" in hints.files
        info = {"samples": res.num_samples, "vertices": int(res.fit_vertices.shape[0]),
                "timings": res.timings, "has_rig": has_rig}
        return wp.result(job_id, str(path), str(scene), info)

    def interpolate(self, job_id: str, args: dict) -> dict:
        import numpy as np

        from .atomic import write_atomic
        from .errors import InputFileError
        from .head_model.expression_split import neutralise
        from .outputs.interpolation_source import load_interpolation_source

        progress, cancel = self._callbacks(job_id)
        progress("interpolate: decoding", 0.0)
        result_path = Path(str(args["source"] or args["result"]))
        if not result_path.is_file():
            what = "interpolation data" if args["source"] else "result file"
            raise InputFileError(f"{what} not found: {result_path} (re-run the reconstruction)")
        i, j, steps = int(args["i"]), int(args["j"]), int(args["steps"])  # 1-based sample numbers
        if steps < 2:
            raise D3DFaceError("interpolate needs at least 2 steps")
        source = load_interpolation_source(result_path)  # read once: the decode and the neutral use it
        verts = np.asarray(self.engine().interpolate(source, i, j, steps, args["device"], model=args.get("model")),
                           np.float32)
        if cancel():
            raise Cancelled("cancelled")
        extra = {}
        state = source.expression
        if state is not None:  # the heads without the run's expression, for an object whose Basis is neutral
            model = self.engine().get_engine(args.get("model"), args["device"]).model
            extra["neutral_vertices"] = neutralise(model, verts, state).astype(np.float32)
        out_dir = self._out_dir(args, "interp-")
        path = write_atomic(out_dir / f"interpolate_{i:02d}_{j:02d}_{steps}.npz", lambda p: np.savez(
            p, vertices=verts, alphas=np.linspace(0.0, 1.0, steps), i=np.array(i), j=np.array(j), **extra))
        progress("interpolate: done", 1.0)
        return wp.result(job_id, str(path), None, {"steps": steps, "i": i, "j": j})

    def check(self, job_id: str, args: dict) -> dict:
        import numpy as np

        progress, _ = self._callbacks(job_id)
        progress("check: importing torch", 0.1)
        info = {"engine": __version__, "python": platform.python_version(), "executable": sys.executable,
                "numpy": np.__version__, "platform": platform.platform()}
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["cuda_device"] = torch.cuda.get_device_name(0) if info["cuda_available"] else ""
        device = args.get("device") or "auto"
        info["device"] = ("cuda" if info["cuda_available"] else "cpu") if device == "auto" else device
        if device == "cuda" and not info["cuda_available"]:
            raise D3DFaceError("device cuda: no CUDA device is available to this torch build")
        progress("check: loading the engine and its head model", 0.5)
        try:
            eng = self.engine()
        except ImportError as exc:
            info["reconstruct"] = False
            info["reconstruct_missing"] = str(exc)
        else:
            info["reconstruct"] = hasattr(eng, "reconstruct")
            model = eng.get_engine(args.get("model"), device).model  # the engine keeps it for the jobs that follow
            info["head_model"] = model.meta.get("name", "") or str(args.get("model") or "default")
            info["head_model_vertices"] = model.num_vertices
            info["head_model_lbs"] = bool(model.has_lbs)
        progress("check: done", 1.0)
        return wp.result(job_id, "", None, info)


def _protocol_stream():
    """Keep the real stdout for protocol lines; send fd 1 (C libraries) and sys.stdout to stderr."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m d3dface.worker", description="d3dface engine worker (JSON lines)")
    parser.add_argument("--cache", default=None, help="job folders and worker-errors.log "
                        f"(default: the engine's cache folder, {ENV_CACHE} or ~/.cache/d3dface)")
    args = parser.parse_args(argv)
    from .devices import configure_threads

    configure_threads()
    out = _protocol_stream()
    worker = Worker(out, Path(args.cache) if args.cache else cache_dir())
    worker.serve(iter(sys.stdin.readline, ""))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

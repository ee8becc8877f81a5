"""The add-on's side of the worker protocol (mirrors ``d3dface/worker_protocol.py``).

No bpy, no torch, no mathematics: a child process ``python -m d3dface.worker``, a reader
thread that turns its stdout lines into a queue, and ``poll()`` which the add-on calls from
a ``bpy.app.timers`` callback (about 10 Hz) and which never blocks.

A job ends in exactly one of: ``done`` (result path), ``failed`` (message and kind) or
``cancelled``. When the worker dies, the running job fails with kind ``worker`` and the next
job starts a fresh worker. ``cancel()`` asks the worker to stop; if it has not answered
within ``CANCEL_GRACE_S`` the worker is killed, so a cancel always ends the job within a second.
A worker whose ``ready`` line names another ``protocol`` than ``PROTOCOL_VERSION`` is stopped
and the job fails with kind ``protocol`` and one line saying so. Right after starting a worker
the client sends ``warm_up`` with ``warm_up_args`` (device, model) when it has them: the worker
loads its models in the background, so that a job sent later does not wait for them.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROTOCOL_VERSION = 2  # must equal d3dface.worker_protocol.PROTOCOL_VERSION of a matching engine
CANCEL_GRACE_S = 0.8
STARTUP_TIMEOUT_S = 120.0

# Extra environment for the worker (tests point D3DFACE_WORKER_ENGINE at a stand-in here).
EXTRA_ENV: dict[str, str] = {}


@dataclass
class Job:
    id: str
    op: str
    args: dict
    state: str = "running"  # running | done | failed | cancelled
    stage: str = "starting"
    fraction: float = 0.0
    text: str = "starting the engine"
    result_path: str = ""
    scene_path: str = ""
    info: dict = field(default_factory=dict)
    message: str = ""
    kind: str = ""
    log: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float = 0.0
    cancel_requested: float = 0.0

    @property
    def running(self) -> bool:
        return self.state == "running"


class EngineBusy(RuntimeError):
    pass


def _one_line(text) -> str:
    return " ".join(str(text).split())


class WorkerClient:
    """One worker process, reused between jobs; one job at a time."""

    def __init__(self, python: str, cache_dir: str, env: dict | None = None, warm_up_args: dict | None = None):
        """``env``: the worker's whole environment (default: this process's); ``warm_up_args``:
        the ``warm_up`` request's args ({"device", "model"}; None: no warm-up)."""
        self.python = python
        self.cache_dir = Path(cache_dir)
        self.env = None if env is None else dict(env)
        self.warm_up_args = None if warm_up_args is None else dict(warm_up_args)
        self.proc: subprocess.Popen | None = None
        self.ready: dict | None = None
        self.job: Job | None = None
        self._lines: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self._log_file = None

    # ---- process --------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.cache_dir / "worker.log"

    def start(self) -> None:
        if self.alive:
            return
        self.kill()  # a dead process's handles
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        base = dict(os.environ) if self.env is None else dict(self.env)
        env = {**base, **EXTRA_ENV, "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"}
        self._log_file = open(self.log_path, "ab")
        self._log_file.write(f"--- worker start {time.strftime('%Y-%m-%d %H:%M:%S')}: {self.python}\n".encode())
        self._log_file.flush()
        self._lines = queue.Queue()
        self.ready = None
        try:
            self.proc = subprocess.Popen(
                [self.python, "-m", "d3dface.worker", "--cache", str(self.cache_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, env=env,
                cwd=str(self.cache_dir), start_new_session=True, bufsize=0,
            )
        except OSError as exc:
            self.proc = None
            raise RuntimeError(f"cannot start the engine Python {self.python!r}: {exc.strerror or exc}") from None
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True, name="d3dface-reader").start()
        if self.warm_up_args is not None:
            self._send({"op": "warm_up", "args": self.warm_up_args})

    @staticmethod
    def _read(proc: subprocess.Popen, lines: queue.Queue) -> None:
        for raw in iter(proc.stdout.readline, b""):
            lines.put(raw.decode("utf-8", "replace"))
        lines.put(None)  # end of stream

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the worker to exit; kill it if it does not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write(b'{"op":"shutdown"}\n')
                proc.stdin.flush()
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            self._kill(proc)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            proc.kill()
            proc.wait(2.0)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _send(self, obj: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (OSError, AttributeError, ValueError):
            pass  # the worker is gone: poll() reports it

    # ---- jobs -----------------------------------------------------------------------------
    def submit(self, op: str, args: dict) -> Job:
        """Start a job; raises EngineBusy when one is running and RuntimeError when the worker cannot start."""
        if self.job is not None and self.job.running:
            raise EngineBusy(f"a {self.job.op} job is already running; cancel it or wait for it to finish")
        self.start()
        job = Job(id=f"j{next(self._ids)}", op=op, args=dict(args))
        self.job = job
        self._send({"op": op, "id": job.id, "args": job.args})
        return job

    def cancel(self) -> None:
        job = self.job
        if job is None or not job.running or job.cancel_requested:
            return
        job.cancel_requested = time.monotonic()
        job.text = "cancelling"
        self._send({"op": "cancel", "id": job.id})

    def poll(self) -> Job | None:
        """Read what the worker said since the last call (never blocks); returns the current job."""
        job = self.job
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:  # stdout closed: the worker exited
                break
            self._handle(line)
        if job is not None and job.running:
            if job.cancel_requested and time.monotonic() - job.cancel_requested > CANCEL_GRACE_S:
                self.kill()  # a job that does not stop in time: the worker goes, the job is cancelled
                self._finish(job, "cancelled", message="cancelled")
            elif self.proc is None or self.proc.poll() is not None:
                self._drain()
                if job.running:
                    code = None if self.proc is None else self.proc.returncode
                    self.proc = None
                    if job.cancel_requested:
                        self._finish(job, "cancelled", message="cancelled")
                    else:
                        self._finish(job, "failed", kind="worker", log=str(self.log_path),
                                     message=f"the engine worker stopped unexpectedly (exit code {code}); "
                                             f"see {self.log_path}")
            elif self.ready is None and time.monotonic() - job.started > STARTUP_TIMEOUT_S:
                self.kill()
                self._finish(job, "failed", kind="worker", log=str(self.log_path),
                             message=f"the engine worker did not start within {STARTUP_TIMEOUT_S:.0f} s; see {self.log_path}")
        return job

    def _drain(self) -> None:
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                return
            self._handle(line)

    def _handle(self, line: str) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return  # not ours (the worker keeps stdout clean; be lenient anyway)
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        job = self.job
        if kind == "ready":
            self.ready = msg
            if msg.get("protocol") != PROTOCOL_VERSION:
                self.kill()  # it may misread the requests: stop it before it answers the job
                if job is not None and job.running:
                    self._finish(job, "failed", kind="protocol", message=protocol_mismatch(msg.get("protocol")))
            return
        if job is None or msg.get("id") != job.id or not job.running:
            return
        if kind == "progress":
            job.stage = str(msg.get("stage", ""))
            job.fraction = float(msg.get("fraction", 0.0))
            job.text = "cancelling" if job.cancel_requested else str(msg.get("text", job.stage))
        elif kind == "result":
            job.result_path = str(msg.get("path") or "")
            job.scene_path = str(msg.get("scene") or "")
            job.info = dict(msg.get("info") or {})
            self._finish(job, "done")
        elif kind == "error":
            if msg.get("kind") == "cancelled":
                self._finish(job, "cancelled", message="cancelled")
            else:
                self._finish(job, "failed", kind=str(msg.get("kind", "internal")),
                             message=_one_line(msg.get("message", "unknown error")), log=str(msg.get("log") or ""))

    @staticmethod
    def _finish(job: Job, state: str, message: str = "", kind: str = "", log: str = "") -> None:
        job.state = state
        job.message = message
        job.kind = kind or ("cancelled" if state == "cancelled" else "")
        job.log = log
        job.finished = time.monotonic()
        if state == "done":
            job.fraction = 1.0

    def wait(self, job: Job, timeout: float | None = None, interval: float = 0.02) -> Job:
        """Block until ``job`` ends (scripting and tests only; the UI polls from a timer)."""
        t0 = time.monotonic()
        while self.poll() is job and job.running:
            if timeout is not None and time.monotonic() - t0 > timeout:
                self.cancel()
                timeout = None
            time.sleep(interval)
        return job


def protocol_mismatch(theirs) -> str:
    """The one line shown when the engine and the add-on speak different worker protocols."""
    spoken = "an unknown worker protocol" if theirs is None else f"worker protocol {theirs}"
    return (f"the engine speaks {spoken}, this add-on {PROTOCOL_VERSION}: "
            "install matching versions of the add-on and the engine")


def worker_env(use_blender_python: bool) -> dict:
    """The worker's environment. With Blender's own Python: Blender's sys.path (which holds the
    extension's installed wheels) as PYTHONPATH. With an external interpreter: this environment
    without PYTHONPATH/PYTHONHOME, so that it uses its own packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    if use_blender_python:
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env

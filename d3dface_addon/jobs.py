"""The one engine worker of this Blender session and the job that runs on it.

``start()`` submits a job and registers ``tick`` with ``bpy.app.timers`` (every 0.1 s). ``tick``
polls the worker (never blocks), updates the progress bar and status text and, when the job
has ended, calls its ``on_done`` (which writes the scene through an undoable operator).
``run_sync()`` is the scripting path: it blocks until the job ends.

``stats`` records how long each timer call held Blender's main thread; ``max_stall_ms`` is the
longest (the scene write included).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bpy

from . import preferences
from .worker_client import EngineBusy, Job, WorkerClient, worker_env

TICK_S = 0.1


@dataclass
class Pending:
    job: Job
    on_done: Callable[[Job], None] | None
    label: str
    preload: Callable[[Job], None] | None = None  # file reading, off the main thread, before on_done
    loader: threading.Thread | None = None


@dataclass
class Stats:
    ticks: int = 0
    max_stall_ms: float = 0.0
    last_apply_ms: float = 0.0
    stalls_ms: list = field(default_factory=list)

    def record(self, ms: float) -> None:
        self.ticks += 1
        self.stalls_ms.append(ms)
        self.max_stall_ms = max(self.max_stall_ms, ms)


class Runner:
    def __init__(self):
        self.client: WorkerClient | None = None
        self.pending: Pending | None = None
        self.stats = Stats()
        self.last_message = ""
        self.last_level = "INFO"
        self.last_object = ""
        self._progress_open = False

    # ---- worker ---------------------------------------------------------------------------
    def get_client(self) -> WorkerClient:
        python, own = preferences.engine_python()
        cache = preferences.cache_dir()
        env = worker_env(own)
        c = self.client
        if c is None or c.python != python or c.cache_dir != cache or c.env != env:
            if c is not None and c.job is not None and c.job.running:
                raise EngineBusy("a job is running; cancel it before changing the engine settings")
            if c is not None:
                c.stop()
            warm = {"device": preferences.device_arg("DEFAULT"), "model": preferences.head_model_arg()}
            self.client = WorkerClient(python, str(cache), env, warm_up_args=warm)
        return self.client

    def prestart(self) -> None:
        """Start the worker now (it warms up in the background), so that the first job does not
        wait for the engine to load; a worker that cannot start is left for that job to report."""
        try:
            self.get_client().start()
        except (EngineBusy, RuntimeError, OSError) as exc:
            print(f"Diverse3DFace: the engine did not start early: {exc}")

    def shutdown(self) -> None:
        if bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.unregister(self.tick)
        if self.client is not None:
            self.client.stop(timeout=1.0)
            self.client = None
        self.pending = None
        self._progress_end()

    @property
    def job(self) -> Job | None:
        return self.pending.job if self.pending is not None else None

    @property
    def busy(self) -> bool:
        return self.pending is not None

    def new_job_dir(self, prefix: str = "job") -> Path:
        d = preferences.cache_dir() / "jobs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{prefix}-{uuid.uuid4().hex[:6]}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ---- async (UI) -------------------------------------------------------------------------
    def start(self, op: str, args: dict, on_done: Callable[[Job], None] | None = None, label: str = "",
              preload: Callable[[Job], None] | None = None) -> Job:
        if self.busy:
            raise EngineBusy(f"Diverse3DFace is busy ({self.pending.label or self.pending.job.op}); "
                             "cancel it or wait for it to finish")
        job = self.get_client().submit(op, args)
        self.pending = Pending(job, on_done, label or op, preload)
        self.stats = Stats()
        self.last_message, self.last_level = "", "INFO"
        self._progress_begin()
        if not bpy.app.timers.is_registered(self.tick):
            bpy.app.timers.register(self.tick, first_interval=TICK_S, persistent=True)
        return job

    def cancel(self) -> None:
        if self.client is not None:
            self.client.cancel()

    def tick(self):
        """The bpy.app.timers callback: returns the next interval, or None when done."""
        t0 = time.perf_counter()
        try:
            pending = self.pending
            if pending is None or self.client is None:
                return None
            job = self.client.poll() if pending.job.running else pending.job
            if job is pending.job and job.running:
                self._show(job)
                return TICK_S
            if pending.job.state == "done" and pending.preload is not None:
                if pending.loader is None:  # read the files in a thread: the main thread only writes the scene
                    pending.job.text = "reading the result"
                    pending.loader = threading.Thread(target=pending.preload, args=(pending.job,), daemon=True)
                    pending.loader.start()
                if pending.loader.is_alive():
                    return TICK_S
            self.pending = None
            self._progress_end()
            if pending.job.state == "done" and pending.on_done is not None:
                t1 = time.perf_counter()
                try:
                    pending.on_done(pending.job)
                except Exception as exc:  # noqa: BLE001 - reported, never raised into Blender's timer loop
                    self.report("ERROR", f"Diverse3DFace: {exc}")
                self.stats.last_apply_ms = (time.perf_counter() - t1) * 1000.0
            elif pending.job.state == "cancelled":
                self.report("WARNING", "Diverse3DFace: cancelled; the scene is unchanged")
            elif pending.job.state == "failed":
                self.report("ERROR", f"Diverse3DFace: {pending.job.message}")
            self._redraw()
            return None
        finally:
            self.stats.record((time.perf_counter() - t0) * 1000.0)

    # ---- sync (scripts) ---------------------------------------------------------------------
    def run_sync(self, op: str, args: dict, timeout: float | None = None) -> Job:
        if self.busy:
            raise EngineBusy("Diverse3DFace is busy with another job; cancel it or wait for it to finish")
        client = self.get_client()
        job = client.submit(op, args)
        return client.wait(job, timeout=timeout)

    # ---- feedback ---------------------------------------------------------------------------
    def report(self, level: str, message: str) -> None:
        self.last_message, self.last_level = message, level
        print(f"{level}: {message}")
        try:
            with _window_context():
                bpy.ops.d3dface.report_message("EXEC_DEFAULT", level=level, message=message)
        except Exception:  # noqa: BLE001 - no window (background) or no operator: the print suffices
            pass

    def _show(self, job: Job) -> None:
        wm = bpy.context.window_manager
        if self._progress_open:
            try:
                wm.progress_update(job.fraction)
            except Exception:  # noqa: BLE001
                pass
        _status_text(f"Diverse3DFace: {job.text} ({job.fraction * 100:.0f}%)  (Cancel in the sidebar)")
        self._redraw()

    def _progress_begin(self) -> None:
        if bpy.app.background:
            return
        try:
            bpy.context.window_manager.progress_begin(0.0, 1.0)
            self._progress_open = True
        except Exception:  # noqa: BLE001
            self._progress_open = False

    def _progress_end(self) -> None:
        if self._progress_open:
            try:
                bpy.context.window_manager.progress_end()
            except Exception:  # noqa: BLE001
                pass
            self._progress_open = False
        _status_text(None)

    @staticmethod
    def _redraw() -> None:
        wm = bpy.context.window_manager
        for win in getattr(wm, "windows", []):
            for area in win.screen.areas:
                if area.type in ("VIEW_3D", "PREFERENCES", "IMAGE_EDITOR"):
                    area.tag_redraw()


def _status_text(text) -> None:
    if bpy.app.background:
        return
    try:
        for win in bpy.context.window_manager.windows:
            win.workspace.status_text_set_internal(text)
    except Exception:  # noqa: BLE001
        pass


def _window_context():
    """A context override with a window, screen and 3D view area (for operators run from a timer)."""
    wm = bpy.context.window_manager
    if not wm.windows:
        raise RuntimeError("no window")
    win = bpy.context.window or wm.windows[0]
    areas = [a for a in win.screen.areas if a.type == "VIEW_3D"] or list(win.screen.areas)
    override = {"window": win, "screen": win.screen}
    if areas:
        override["area"] = areas[0]
        regions = [r for r in areas[0].regions if r.type == "WINDOW"]
        if regions:
            override["region"] = regions[0]
    return bpy.context.temp_override(**override)


window_context = _window_context
RUNNER = Runner()

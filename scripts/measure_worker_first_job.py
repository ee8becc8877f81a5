"""First-job time of a fresh engine worker, with and without its warm-up (issue 20):

    python scripts/measure_worker_first_job.py [--warm-up] [--idle 20] [--samples 4] [--device cpu]

Starts ``python -m d3dface.worker`` (the real engine), waits for ``ready``, sends the
``warm_up`` request when asked, stays idle for ``--idle`` seconds (the user choosing a photo),
then times two reconstructions of the same photo from request to ``result``: the first job
and a second one (which pays no first-call costs). Prints one JSON line with both times and
their difference (what the first job pays beyond a warm job).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Queue

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "images" / "occluded" / "glasses_woman.jpg"


def _reader(proc, q: Queue) -> None:
    for line in proc.stdout:
        q.put(json.loads(line))


def _final(q: Queue, job_id: str, timeout: float = 300.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        msg = q.get(timeout=timeout)
        if msg.get("id") == job_id and msg["type"] in ("result", "error"):
            return msg
    raise TimeoutError(job_id)


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--warm-up", action="store_true")
    p.add_argument("--idle", type=float, default=20.0)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-m", "d3dface.worker", "--cache", tmp], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=open(Path(tmp) / "stderr.log", "w"), text=True, bufsize=1)
        q: Queue = Queue()
        threading.Thread(target=_reader, args=(proc, q), daemon=True).start()
        assert q.get(timeout=120)["type"] == "ready"
        if a.warm_up:
            proc.stdin.write(json.dumps({"op": "warm_up", "args": {"device": a.device, "model": None}}) + "\n")
            proc.stdin.flush()
        time.sleep(a.idle)
        times, stages = [], []
        for k in range(2):
            t = time.perf_counter()
            proc.stdin.write(json.dumps({"op": "reconstruct", "id": f"r{k}", "args": {
                "image": str(PHOTO), "samples": a.samples, "device": a.device, "out_dir": str(Path(tmp) / f"o{k}")}}) + "\n")
            proc.stdin.flush()
            msg = _final(q, f"r{k}")
            assert msg["type"] == "result", msg
            times.append(time.perf_counter() - t)
            stages.append({s: round(v, 2) for s, v in msg["info"].get("timings", {}).items()})
        proc.stdin.write('{"op": "shutdown"}\n')
        proc.stdin.flush()
        proc.wait(30)
        log = [ln for ln in (Path(tmp) / "stderr.log").read_text().splitlines() if "d3dface worker" in ln]
    print(json.dumps({"warm_up": a.warm_up, "idle_s": a.idle, "samples": a.samples, "first_job_s": round(times[0], 3),
                      "second_job_s": round(times[1], 3), "first_minus_second_s": round(times[0] - times[1], 3),
                      "stage_seconds": stages, "worker_log": log}))


if __name__ == "__main__":
    main()

"""The engine worker and its protocol (DESIGN 2.1), with a fast stand-in engine
(tests/addon_fake_engine.py) in a real worker process, and the add-on's bpy-free client."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from d3dface import worker_protocol as wp

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
IMAGE = REPO.parent / "shared" / "images" / "occluded" / "glasses_woman.jpg"
sys.path.insert(0, str(REPO))  # d3dface_addon.worker_client is bpy-free

from d3dface_addon import worker_client  # noqa: E402
from d3dface_addon.worker_client import EngineBusy, WorkerClient  # noqa: E402


def fake_env(seconds=0.4, **extra) -> dict:
    env = dict(os.environ)
    env.update({"D3DFACE_WORKER_ENGINE": "addon_fake_engine", "D3DFACE_FAKE_SECONDS": str(seconds),
                "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])})
    env.update(extra)
    return env


class Worker:
    """A worker process driven line by line."""

    def __init__(self, cache: Path | None, **env):
        cmd = [sys.executable, "-m", "d3dface.worker"] + ([] if cache is None else ["--cache", str(cache)])
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=fake_env(**env), bufsize=1)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(x) for x in self.proc.stdout], daemon=True).start()

    def send(self, obj) -> None:
        self.proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.proc.stdin.flush()

    def read(self, timeout=30.0) -> dict:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no line from the worker") from None
        self.lines.append(line)
        return json.loads(line)  # every stdout line is protocol JSON

    def until_final(self, job_id: str, timeout=30.0) -> tuple[dict, list[dict]]:
        progress = []
        while True:
            msg = self.read(timeout)
            if msg.get("id") == job_id and msg["type"] in wp.FINAL_TYPES:
                return msg, progress
            if msg["type"] == "progress" and msg["id"] == job_id:
                progress.append(msg)

    def close(self) -> str:
        self.send({"op": "shutdown"})
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("cache"))
    ready = w.read(60)
    assert ready["type"] == "ready" and ready["protocol"] == wp.PROTOCOL_VERSION
    yield w
    w.close()


# ---- the protocol module --------------------------------------------------------------
def test_requests_are_parsed_with_defaults_and_checked():
    req = wp.parse_request('{"op": "reconstruct", "id": "a", "args": {"image": "x.jpg"}}')
    assert req["args"]["samples"] == 8 and req["args"]["mask"] == "auto" and req["args"]["image"] == "x.jpg"
    for bad in ['{"op": "explode", "id": "a"}', '{"op": "reconstruct", "args": {"image": "x"}}',
                '{"op": "reconstruct", "id": "a", "args": {}}', '{"op": "check", "id": "a", "args": {"colour": 1}}',
                "[1, 2]", "not json"]:
        with pytest.raises(wp.ProtocolError):
            wp.parse_request(bad)
    assert wp.parse_request('{"op": "cancel"}')["op"] == "cancel"
    line = wp.encode(wp.error("a", "file", "two\nlines"))
    assert line.endswith("\n") and line.count("\n") == 1 and json.loads(line)["message"] == "two lines"


# ---- the worker process ---------------------------------------------------------------
def test_reconstruct_reports_progress_then_one_result(worker, tmp_path):
    worker.send({"op": "reconstruct", "id": "r1", "args": {"image": str(IMAGE), "samples": 3, "out_dir": str(tmp_path)}})
    final, progress = worker.until_final("r1")
    assert final["type"] == "result", final
    fr = [p["fraction"] for p in progress]
    assert len(fr) >= 5 and fr == sorted(fr) and all(0 <= f <= 1 for f in fr)
    assert {"fit", "diversity"} <= {p["stage"] for p in progress}
    from d3dface.outputs.result_file import ReconstructionResult

    res = ReconstructionResult.load(final["path"])
    assert res.samples.shape == (3, 5023, 3) and final["info"]["samples"] == 3
    # the scene file is the one the engine wrote next to result.npz
    assert final["scene"] == str(Path(final["path"]).with_name("blender_scene.npz")) and Path(final["scene"]).is_file()
    assert final["info"]["has_rig"] is True


def test_second_job_is_refused_while_one_runs(worker, tmp_path):
    worker.send({"op": "reconstruct", "id": "long", "args": {"image": str(IMAGE), "samples": 2, "out_dir": str(tmp_path)}})
    worker.send({"op": "check", "id": "second"})
    finals = {}
    while len(finals) < 2:
        msg = worker.read()
        if msg["type"] in wp.FINAL_TYPES:
            finals[msg["id"]] = msg
    refused = finals["second"]
    assert refused["type"] == "error" and refused["kind"] == "busy" and "busy" in refused["message"]
    assert finals["long"]["type"] == "result"  # the running job was not disturbed


def test_bad_image_and_bad_lines_are_one_line_errors(worker, tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("this is not a picture")
    worker.send({"op": "reconstruct", "id": "bad", "args": {"image": str(bad), "out_dir": str(tmp_path)}})
    final, _ = worker.until_final("bad")
    assert final["type"] == "error" and final["kind"] == "file" and "\n" not in final["message"]
    worker.send({"op": "reconstruct", "id": "gone", "args": {"image": str(tmp_path / "missing.png")}})
    final, _ = worker.until_final("gone")
    assert final["kind"] == "file" and "not found" in final["message"]
    worker.send("garbage")
    msg = worker.read()
    assert msg["type"] == "error" and msg["kind"] == "protocol"


def test_check_reports_versions_and_device(worker):
    worker.send({"op": "check", "id": "c1", "args": {"device": "cpu"}})
    final, _ = worker.until_final("c1", timeout=60)
    info = final["info"]
    import torch

    assert final["type"] == "result" and info["torch"] == torch.__version__ and info["device"] == "cpu"
    assert info["head_model_vertices"] == 5023 and info["reconstruct"] is True


def test_interpolate_decodes_between_two_samples(worker, tmp_path):
    worker.send({"op": "reconstruct", "id": "r2", "args": {"image": str(IMAGE), "samples": 3, "out_dir": str(tmp_path)}})
    result, _ = worker.until_final("r2")
    worker.send({"op": "interpolate", "id": "i1", "args": {"result": result["path"], "i": 1, "j": 3, "steps": 5,
                                                           "out_dir": str(tmp_path / "i")}})
    final, _ = worker.until_final("i1")
    with np.load(final["path"]) as d:
        v, a = d["vertices"], d["alphas"]
    with np.load(result["path"]) as d:
        s = d["samples"]
    assert v.shape == (5, 5023, 3) and np.allclose(a, [0, 0.25, 0.5, 0.75, 1])
    assert np.allclose(v[2], 0.5 * (s[0] + s[2]), atol=1e-6)


def test_interpolation_requests_name_exactly_one_source():
    ok = wp.parse_request('{"op": "interpolate", "id": "a", "args": {"source": "s.npz", "i": 1, "j": 2}}')
    assert ok["args"]["source"] == "s.npz" and ok["args"]["result"] is None
    for args in ('{"i": 1, "j": 2}', '{"result": "r.npz", "source": "s.npz", "i": 1, "j": 2}'):
        with pytest.raises(wp.ProtocolError, match="exactly one of result, source"):
            wp.parse_request('{"op": "interpolate", "id": "a", "args": %s}' % args)
    warm = wp.parse_request('{"op": "warm_up", "args": {"device": "cpu"}}')  # no id: it has no answer
    assert warm["args"] == {"device": "cpu", "model": None}


def test_interpolate_from_stored_latents_equals_from_the_result_file(worker, tmp_path):
    from d3dface.outputs.interpolation_source import InterpolationSource, load_interpolation_source

    worker.send({"op": "reconstruct", "id": "r3", "args": {"image": str(IMAGE), "samples": 3, "out_dir": str(tmp_path)}})
    result, _ = worker.until_final("r3")
    src = load_interpolation_source(result["path"])
    moved = InterpolationSource(src.latents, src.fit_vertices, src.occluded, src.settings, src.head_model_hash)
    source = moved.save(tmp_path / "elsewhere" / "interpolation_source.npz")
    out = {}
    for key, path in (("result", result["path"]), ("source", str(source))):
        worker.send({"op": "interpolate", "id": key, "args": {key: path, "i": 2, "j": 3, "steps": 4,
                                                             "out_dir": str(tmp_path / key)}})
        final, _ = worker.until_final(key)
        with np.load(final["path"]) as d:
            out[key] = d["vertices"]
    assert np.array_equal(out["result"], out["source"])
    worker.send({"op": "interpolate", "id": "gone", "args": {"source": str(tmp_path / "no.npz"), "i": 1, "j": 2}})
    final, _ = worker.until_final("gone")
    assert final["kind"] == "file" and "interpolation data not found" in final["message"]


def test_a_job_waits_for_the_warm_up_and_can_be_cancelled_meanwhile(tmp_path):
    w = Worker(tmp_path / "cache", seconds=0.1, D3DFACE_FAKE_WARM_SECONDS="1.5")
    try:
        assert w.read(60)["type"] == "ready"
        w.send({"op": "warm_up", "args": {"device": "cpu"}})
        w.send({"op": "check", "id": "c", "args": {"device": "cpu"}})
        w.send({"op": "cancel", "id": "c"})
        t0 = time.monotonic()
        final, progress = w.until_final("c")
        assert final["kind"] == "cancelled" and time.monotonic() - t0 < 1.0
        assert progress and progress[0]["text"] == "start: loading the engine"
        w.send({"op": "warm_up", "args": {"device": "cpu"}})
        t0 = time.monotonic()
        w.send({"op": "reconstruct", "id": "r", "args": {"image": str(IMAGE), "samples": 2, "out_dir": str(tmp_path / "r")}})
        final, _ = w.until_final("r")
        assert final["type"] == "result" and time.monotonic() - t0 >= 1.0  # it waited for the warm-up
    finally:
        err = w.close()
    assert "d3dface worker: warmed up in" in err


def test_a_failed_warm_up_is_logged_and_the_job_reports_the_error(tmp_path):
    w = Worker(tmp_path / "cache", seconds=0.1)
    try:
        assert w.read(60)["type"] == "ready"
        w.send({"op": "warm_up", "args": {"device": "cpu", "model": str(tmp_path / "missing.npz")}})
        w.send({"op": "check", "id": "c", "args": {"device": "cpu", "model": str(tmp_path / "missing.npz")}})
        final, _ = w.until_final("c", timeout=60)
        assert final["type"] == "error" and "\n" not in final["message"]
        w.send({"op": "check", "id": "ok", "args": {"device": "cpu"}})
        assert w.until_final("ok", timeout=60)[0]["type"] == "result"  # the worker carries on
    finally:
        err = w.close()
    assert "d3dface worker: warm-up failed:" in err


def test_the_client_asks_a_new_worker_to_warm_up(tmp_path):
    client = WorkerClient(sys.executable, str(tmp_path / "cache"), fake_env(seconds=0.1),
                          warm_up_args={"device": "cpu", "model": None})
    try:
        client.start()
        job = client.wait(client.submit("check", {"device": "cpu"}), 60)
        assert job.state == "done"
    finally:
        client.stop()
    assert "d3dface worker: warmed up in" in (tmp_path / "cache" / "worker.log").read_text()


def test_stdout_carries_protocol_lines_only(worker):
    # the stand-in engine prints to stdout on every reconstruct; every line read so far was JSON
    assert worker.lines and all(json.loads(line)["type"] in wp.MESSAGE_TYPES for line in worker.lines)


def test_cancel_stops_a_job_within_a_second(tmp_path):
    w = Worker(tmp_path / "cache", seconds=30)
    try:
        assert w.read(60)["type"] == "ready"
        w.send({"op": "reconstruct", "id": "c", "args": {"image": str(IMAGE), "out_dir": str(tmp_path)}})
        while w.read().get("stage") != "fit":
            pass
        t0 = time.monotonic()
        w.send({"op": "cancel", "id": "c"})
        final, _ = w.until_final("c", timeout=5)
        assert final["type"] == "error" and final["kind"] == "cancelled"
        assert time.monotonic() - t0 < 1.0
        assert not (tmp_path / "result" / "result.npz").exists()
    finally:
        w.close()


def test_internal_errors_go_to_the_log_not_the_message(tmp_path):
    w = Worker(tmp_path / "cache", D3DFACE_FAKE_CRASH="1", seconds=0.05)
    try:
        assert w.read(60)["type"] == "ready"
        w.send({"op": "reconstruct", "id": "x", "args": {"image": str(IMAGE), "out_dir": str(tmp_path)}})
        final, _ = w.until_final("x")
        assert final["kind"] == "internal" and "fake engine crash" in final["message"]
        assert "Traceback" not in final["message"] and "\n" not in final["message"]
        assert "Traceback" in Path(final["log"]).read_text() and Path(final["log"]).parent == tmp_path / "cache"
    finally:
        w.close()


def test_default_cache_is_the_engines_cache_folder(tmp_path):
    from d3dface.paths import ENV_CACHE

    w = Worker(None, D3DFACE_FAKE_CRASH="1", seconds=0.05, **{ENV_CACHE: str(tmp_path / "engine-cache")})
    try:
        assert w.read(60)["type"] == "ready"
        w.send({"op": "reconstruct", "id": "x", "args": {"image": str(IMAGE), "out_dir": str(tmp_path / "out")}})
        final, _ = w.until_final("x")
        assert final["kind"] == "internal" and Path(final["log"]).parent == tmp_path / "engine-cache"
    finally:
        w.close()


# ---- images sent from the .blend ------------------------------------------------------------
def test_blender_images_use_one_alpha_threshold_for_pixels_and_files(tmp_path):
    from PIL import Image

    from d3dface.inputs.blender_images import blender_image_to_png

    alpha8 = np.array([[0, 126, 127, 128], [129, 200, 255, 64]], np.uint8)  # top row first
    rgba8 = np.dstack([np.full_like(alpha8, 90), np.full_like(alpha8, 150), np.full_like(alpha8, 210), alpha8])
    Image.fromarray(rgba8, "RGBA").save(tmp_path / "painted.png")
    np.save(tmp_path / "painted.npy", (rgba8[::-1] / 255.0).astype(np.float32))  # Blender: bottom row first
    expect = np.where(alpha8 < 128, 255, 0)
    for src in ("painted.png", "painted.npy"):
        out = blender_image_to_png(tmp_path / src, tmp_path / f"mask_{src}.png", mask_from_alpha=True)
        assert np.array_equal(np.asarray(Image.open(out)), expect), src
    photo = blender_image_to_png(tmp_path / "painted.npy", tmp_path / "photo.png")
    assert np.array_equal(np.asarray(Image.open(photo)), rgba8[..., :3])
    np.save(tmp_path / "opaque.npy", np.full((2, 3, 3), 0.25, np.float32))  # no alpha: nothing erased
    out = blender_image_to_png(tmp_path / "opaque.npy", tmp_path / "opaque_mask.png", mask_from_alpha=True)
    assert not np.asarray(Image.open(out)).any()


def test_reconstruct_takes_blender_pixels_and_a_painted_mask(worker, tmp_path):
    from PIL import Image

    with Image.open(IMAGE) as im:
        rgb = np.asarray(im.convert("RGB"), np.float32) / 255.0
    alpha = np.ones(rgb.shape[:2], np.float32)
    alpha[: rgb.shape[0] // 3] = 0.0  # erased: the top third (top row first)
    np.save(tmp_path / "photo.npy", np.dstack([rgb, np.ones_like(alpha)])[::-1])
    np.save(tmp_path / "mask.npy", np.dstack([rgb, alpha])[::-1])
    worker.send({"op": "reconstruct", "id": "px", "args": {"image": str(tmp_path / "photo.npy"), "samples": 2,
                                                           "mask": str(tmp_path / "mask.npy"), "mask_from_alpha": True,
                                                           "out_dir": str(tmp_path / "job")}})
    final, _ = worker.until_final("px")
    assert final["type"] == "result", final
    mask = np.asarray(Image.open(tmp_path / "job" / "painted_mask.png"))
    assert mask.shape == alpha.shape and np.array_equal(mask > 0, alpha < 0.5)
    assert np.asarray(Image.open(tmp_path / "job" / "photo.png")).shape == rgb.shape


# ---- scene hints (the numbers the add-on must not compute) ----------------------------------
def test_scene_hints_match_the_engine_camera_and_rig():
    import torch

    sys.path.insert(0, str(TESTS))
    from addon_fake_engine import template_result

    from d3dface.head_model import load_head_model
    from d3dface.outputs.blender_scene import scene_hints
    from d3dface.render.cameras import PerspectiveCamera

    res = template_result(2, image_size=(400, 300))
    model = load_head_model(None)
    h = scene_hints(res, model)
    c = res.camera
    t = lambda k: torch.tensor([c[k]], dtype=torch.float64)  # noqa: E731
    cam = PerspectiveCamera(t("focal"), t("principal"), t("rotation"), t("translation"), tuple(c["image_size"]))
    pix, _ = cam.project(torch.as_tensor(res.fit_vertices, dtype=torch.float64)[None])
    x0, y0, x1, _ = res.crop_box
    photo = pix[0].numpy() * (x1 - x0) / 224 + [x0, y0]  # crop px -> photo px
    H, W = res.image_size
    expect = np.stack([(photo[:, 0] + 0.5) / W, 1 - (photo[:, 1] + 0.5) / H], 1)
    assert np.allclose(h["photo_uv"], expect, atol=1e-5)
    # camera -> world is the inverse of the engine's world -> camera
    w2c = np.eye(4)
    w2c[:3, :3] = cam.rotation_matrix()[0].numpy()
    w2c[:3, 3] = c["translation"]
    assert np.allclose(h["camera_matrix"] @ w2c, np.eye(4), atol=1e-9)
    # the bones sit at the fit's rest joints: regressed from the fit before its jaw pose
    unposed = res.neutral_fit_vertices + np.einsum("vce,e->vc", model.exprdirs, res.expression.weights)
    assert np.allclose(h["bone_heads"], model.joint_regressor.astype(np.float64) @ unposed, atol=1e-6)
    # the grouped weights rebuild the skinning weights to the rounding step
    rebuilt = np.zeros_like(model.skinning_weights, dtype=np.float64)
    off = h["weight_offsets"]
    for k, (j, w) in enumerate(zip(h["weight_joint"], h["weight_value"])):
        rebuilt[h["weight_vertices"][off[k]:off[k + 1]], j] = w
    assert np.abs(rebuilt - model.skinning_weights).max() <= 5e-5 + 1e-9
    assert h["visible"].sum() == (~res.occluded).sum()


# ---- the add-on's client (no bpy) ------------------------------------------------------------
def test_client_survives_a_killed_worker_and_refuses_a_second_job(tmp_path):
    client = WorkerClient(sys.executable, str(tmp_path / "cache"), fake_env(seconds=20))
    try:
        job = client.submit("reconstruct", {"image": str(IMAGE), "samples": 2, "out_dir": str(tmp_path / "a")})
        with pytest.raises(EngineBusy):
            client.submit("check", {})
        while client.poll() is job and job.stage in ("starting", "start"):
            time.sleep(0.02)
        os.kill(client.pid, 9)
        t0 = time.monotonic()
        while job.running and time.monotonic() - t0 < 5:
            client.poll()
            time.sleep(0.02)
        assert job.state == "failed" and job.kind == "worker" and "stopped unexpectedly" in job.message
        client.env["D3DFACE_FAKE_SECONDS"] = "0.1"
        job2 = client.wait(client.submit("reconstruct", {"image": str(IMAGE), "samples": 2, "out_dir": str(tmp_path / "b")}), 60)
        assert job2.state == "done" and Path(job2.result_path).is_file()
    finally:
        client.stop()


def test_client_refuses_a_worker_of_another_protocol(tmp_path, monkeypatch):
    assert worker_client.PROTOCOL_VERSION == wp.PROTOCOL_VERSION  # the add-on mirrors the engine's protocol
    monkeypatch.setattr(worker_client, "PROTOCOL_VERSION", wp.PROTOCOL_VERSION + 1)
    client = WorkerClient(sys.executable, str(tmp_path / "cache"), fake_env(seconds=0.1))
    try:
        job = client.wait(client.submit("check", {}), 60)
        assert job.state == "failed" and job.kind == "protocol" and "\n" not in job.message
        assert job.message == (f"the engine speaks worker protocol {wp.PROTOCOL_VERSION}, this add-on "
                               f"{wp.PROTOCOL_VERSION + 1}: install matching versions of the add-on and the engine")
        assert not client.alive  # the worker was stopped
    finally:
        client.stop()


def test_the_addon_never_imports_torch_or_the_engine():
    import re

    for f in (REPO / "d3dface_addon").glob("*.py"):
        text = f.read_text()
        assert not re.search(r"^\s*(import|from)\s+(torch|d3dface)\b", text, re.M), f.name

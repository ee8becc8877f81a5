"""Packaging (slow): build the engine wheel and the extension zip with Blender's own tool,
validate it, check what it bundles, install it into a temporary Blender user folder, enable
it and reconstruct a ../shared photo through the documented operator."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PHOTO = SHARED / "images" / "occluded" / "glasses_woman.jpg"
MASK = SHARED / "images" / "occluded" / "glasses_woman_mask.png"
PY = REPO / ".venv" / "bin" / "python"

pytestmark = pytest.mark.slow


def build(*extra) -> Path:
    out = subprocess.run([sys.executable, str(REPO / "build.py"), "extension", *extra], cwd=REPO,
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    path = re.search(r"extension: (\S+\.zip)", out.stdout).group(1)
    return Path(path)


@pytest.fixture(scope="module")
def full_zip() -> Path:
    return build()


def test_the_zip_is_valid_and_lists_every_bundled_wheel(full_zip):
    tool = next((REPO / ".venv" / "lib").glob("python3.11/site-packages/bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    assert subprocess.run([str(PY), str(tool), "validate", str(full_zip)], capture_output=True).returncode == 0
    with zipfile.ZipFile(full_zip) as z:
        names = set(z.namelist())
        manifest = z.read("blender_manifest.toml").decode()
    import tomllib

    m = tomllib.loads(manifest)
    assert m["id"] == "d3dface" and m["name"] == "Diverse3DFace" and m["blender_version_min"] == "4.2.0"
    from d3dface import __version__

    assert m["version"] == __version__
    assert "__init__.py" in names and "worker_client.py" in names
    listed = {w.removeprefix("./") for w in m["wheels"]}
    assert listed == {n for n in names if n.endswith(".whl")}
    stems = {w.split("/")[-1].split("-")[0].lower() for w in listed}
    assert {"d3dface", "torch", "scipy", "mediapipe", "opencv_contrib_python", "trimesh"} <= stems
    assert "numpy" not in stems  # Blender ships numpy 1.26
    print(f"\n{full_zip.name}: {full_zip.stat().st_size / 1e6:.1f} MB, {len(listed)} wheels")


def test_the_bundled_wheels_run_the_engine_with_only_blenders_numpy(full_zip, tmp_path):
    """A stock Blender has numpy and nothing else: the worker must start from the bundle alone."""
    site = tmp_path / "site"
    with zipfile.ZipFile(full_zip) as z:
        for n in z.namelist():
            if n.endswith(".whl"):
                z.extract(n, tmp_path)
    for w in (tmp_path / "wheels").glob("*.whl"):
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
    import numpy

    npdir = tmp_path / "numpy_only"
    src = Path(numpy.__file__).parent
    shutil.copytree(src, npdir / "numpy")
    if (src.parent / "numpy.libs").is_dir():
        shutil.copytree(src.parent / "numpy.libs", npdir / "numpy.libs")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{site}{os.pathsep}{npdir}"}
    base_python = Path(sys.base_prefix) / "bin" / "python3.11"
    req = json.dumps({"op": "check", "id": "c", "args": {"device": "cpu"}}) + "\n"
    proc = subprocess.Popen([str(base_python), "-s", "-S", "-m", "d3dface.worker", "--cache", str(tmp_path / "cache")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)
    proc.stdin.write(req)
    proc.stdin.flush()  # stdin stays open until the answer: end of input cancels a running job
    final = {}
    for line in proc.stdout:
        final = json.loads(line)
        if final.get("id") == "c" and final["type"] in ("result", "error"):
            break
    proc.stdin.close()
    err = proc.stderr.read()
    proc.wait(60)
    assert final.get("type") == "result", (final, err[-2000:])
    assert final["info"]["torch"].startswith("2.") and final["info"]["head_model_vertices"] == 5023
    code = "import d3dface.reconstruct; from d3dface.inputs.mediapipe_backend import MediaPipeBackend; MediaPipeBackend(); print('ok')"
    out = subprocess.run([str(base_python), "-s", "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def run_installed(zip_path: Path, tmp_path: Path, env_extra: dict, samples=2) -> dict:
    user = tmp_path / "blender_user"
    out_json = tmp_path / "summary.json"
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user), **env_extra}
    proc = subprocess.run([str(PY), str(REPO / "tests" / "addon_installed_check.py"), str(zip_path), str(PHOTO), str(MASK),
                           str(samples), str(out_json)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0 and out_json.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out_json.read_text())


def check_summary(s: dict, samples: int) -> None:
    assert s["module"] == "bl_ext.user_default.d3dface"
    assert s["vertices"] == 5023
    assert s["keys"] == ["Basis", "Visible fit", *[f"Sample {k + 1:02d}" for k in range(samples)]] == s["expected_keys"]
    assert s["max_key_error"] < 1e-5
    assert s["undo_restores"]


def test_installed_extension_reconstructs_through_the_worker(tmp_path):
    """Install (engine wheel only: this machine's .venv provides the rest), enable, run the operator."""
    zip_path = build("--engine-only")
    tests = str(REPO / "tests")
    s = run_installed(zip_path, tmp_path, {"D3DFACE_WORKER_ENGINE": "addon_fake_engine",
                                           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])})
    check_summary(s, 2)


def test_installed_extension_end_to_end_with_the_real_engine(tmp_path):
    from d3dface.complete.vae_checkpoint import default_vae_path

    if not default_vae_path().is_file():
        pytest.skip(f"the shipped Mesh-VAE checkpoint is not built yet ({default_vae_path()})")
    zip_path = build("--engine-only")
    s = run_installed(zip_path, tmp_path, {}, samples=2)
    check_summary(s, 2)
    # the worker ran the engine wheel installed with the extension, not this checkout's engine
    assert Path(s["engine_dir"]).is_relative_to(tmp_path / "blender_user"), s["engine_dir"]
    print(f"\nreal engine through the installed extension: {s['seconds']:.1f} s")

#!/usr/bin/env python3.11
"""Project tasks, runnable with a bare Python 3.11 (no dependencies needed to start).

    python3.11 build.py demo     # set up everything, then run the main job on the embedded default
    python3.11 build.py test     # set up everything, then run the whole test suite, end-to-end paths included
                                 # (pytest args may follow; --fast leaves out the end-to-end cases)
    python3.11 build.py setup    # only create/refresh .venv and check the shipped model files
    python3.11 build.py models     # rebuild the shipped default model files from ../shared (maintainers)
    python3.11 build.py wheel      # the engine wheel in wheels/
    python3.11 build.py extension  # dist/d3dface-VERSION-linux-x64.zip: the Blender extension with its wheels
                                   # (--engine-only: the engine wheel alone, for an external engine Python)

The environment is one virtual environment, ``.venv``, holding the engine (editable),
its dependencies and bpy 5.0.1 for headless Blender tests. Setup is idempotent: it
re-installs only when requirements.txt or engine/pyproject.toml change.

The default head model and its local region models ship in ``engine/d3dface/data/``
(committed, like the Mesh-VAE trained for them): a rebuild on another CPU differs in the
last bits, so setup never rebuilds them, and every machine runs the same files.
``tests/test_shipped_models.py`` checks that a rebuild from ../shared reproduces them
within a stated tolerance.

A failed step is one line, ``build.py: error: ...``, and a non-zero exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".d3dface-setup-stamp"
DATA = ROOT / "engine" / "d3dface" / "data"
OPEN_MODEL = DATA / "open_head_model.npz"
SHIPPED_DATA = [OPEN_MODEL, DATA / "mesh_vae_open.pt"]  # + the local model named after the open model's hash
DEMO_OUT = ROOT / "out" / "demo"


class StepFailed(Exception):
    """A build step that failed: its one-line message is what the user sees."""


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log(" ".join(str(c) for c in cmd))
    try:
        subprocess.run([str(c) for c in cmd], check=True, cwd=kw.pop("cwd", ROOT), **kw)
    except subprocess.CalledProcessError as exc:
        raise StepFailed(f"{_step_name(cmd)} failed with exit code {exc.returncode} (its output is above)") from None
    except OSError as exc:
        raise StepFailed(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None


def _step_name(cmd) -> str:
    return " ".join(Path(str(c)).name if i == 0 else str(c) for i, c in enumerate(cmd[:3]))


def _setup_hash() -> str:
    h = hashlib.sha256()
    for p in (ROOT / "requirements.txt", ROOT / "engine" / "pyproject.toml"):
        h.update(p.read_bytes())
    return h.hexdigest()


def setup() -> None:
    t0 = time.time()
    if sys.version_info[:2] != (3, 11):
        log(f"warning: Blender 5.0 uses Python 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        run([sys.executable, "-m", "venv", VENV])
    if not STAMP.exists() or STAMP.read_text() != _setup_hash():
        run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", ROOT / "requirements.txt"])
        run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", ROOT / "engine"])
        STAMP.write_text(_setup_hash())
    else:
        log(".venv is up to date")
    check_shipped_data()
    log(f"setup done in {time.time() - t0:.1f} s")


def check_shipped_data() -> None:
    """The committed model files are there (a checkout without them is incomplete)."""
    missing = [p for p in SHIPPED_DATA if not p.is_file()]
    if not list(DATA.glob("local_model_*.npz")):
        missing.append(DATA / "local_model_*.npz")
    if missing:
        raise StepFailed(f"shipped model file missing: {missing[0].relative_to(ROOT)} (an incomplete checkout? "
                         "'git checkout -- engine/d3dface/data', or 'python3.11 build.py models' to rebuild)")


def rebuild_models() -> None:
    """Rebuild the shipped default head model and its local models from ../shared (maintainers:
    after a change of the builder; the Mesh-VAE must then be retrained for the new model)."""
    setup()
    d3dface = VENV / "bin" / "d3dface"
    for old in DATA.glob("local_model_*.npz"):
        old.unlink()
    run([d3dface, "build-open-model", "--out", OPEN_MODEL])
    run([d3dface, "build-local-model"])


DEMO_IMAGE = ROOT.parent / "shared" / "images" / "occluded" / "glasses_woman.jpg"
DEMO_MASK = ROOT.parent / "shared" / "images" / "occluded" / "glasses_woman_mask.png"


def demo() -> None:
    """The main job on the embedded default: 8 diverse completions of an occluded photo."""
    setup()
    t0 = time.time()
    d3dface = VENV / "bin" / "d3dface"
    run([d3dface, "info"])
    run([d3dface, "reconstruct", DEMO_IMAGE, "--mask", DEMO_MASK, "--samples", "8", "--seed", "0", "--out", DEMO_OUT])
    run([PY, ROOT / "scripts" / "write_blend.py", DEMO_OUT / "result.npz", DEMO_OUT / "result.blend"])
    log(f"demo done in {time.time() - t0:.1f} s; outputs in {DEMO_OUT}")


# ---- packaging: the engine wheel and the Blender extension (DESIGN 3.2) ----------------------
WHEELS = ROOT / "wheels"
DIST = ROOT / "dist"
STAGE = ROOT / "build" / "extension"
ADDON = ROOT / "d3dface_addon"
MANIFEST = ROOT / "blender_manifest.toml"
WHEEL_PLATFORM = "manylinux_2_28_x86_64"  # Blender 5.0 on Linux x86-64: Python 3.11
# What the extension bundles besides the engine wheel so that a stock Blender 5.0 (which ships
# numpy 1.26) runs a CPU reconstruction with nothing else installed: the engine's runtime
# imports and theirs, pinned to the versions of .venv (the tested set). opencv-contrib-python
# replaces opencv-python (same cv2, and MediaPipe needs contrib); MediaPipe's jax, jaxlib,
# sentencepiece and sounddevice serve parts of it the engine never imports and are left out.
BUNDLED = [
    "torch", "filelock", "typing_extensions", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec",
    "scipy", "trimesh", "opencv-contrib-python", "tqdm", "pillow",
    "mediapipe", "absl-py", "attrs", "flatbuffers", "protobuf",
    "matplotlib", "contourpy", "cycler", "fonttools", "kiwisolver", "packaging", "pyparsing", "python-dateutil", "six", "tzdata",
]  # (those not installed in .venv, e.g. six for a dateutil that no longer needs it, are skipped)


def engine_version() -> str:
    import re

    text = (ROOT / "engine" / "d3dface" / "__init__.py").read_text()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def blender_ext_tool() -> Path:
    """Blender's extension tool, shipped inside the bpy wheel."""
    out = subprocess.run([str(PY), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    tool = Path(out) / "bpy" / "5.0" / "scripts" / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        raise StepFailed(f"Blender's extension tool not found at {tool} (is bpy==5.0.1 in .venv?)")
    return tool


def build_wheel() -> Path:
    """The engine wheel (with its shipped data: default head model, local model, Mesh-VAE) in wheels/."""
    setup()
    WHEELS.mkdir(exist_ok=True)
    for old in WHEELS.glob("d3dface-*.whl"):
        old.unlink()
    run([PY, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", WHEELS, ROOT / "engine"])
    shutil.rmtree(ROOT / "engine" / "build", ignore_errors=True)
    wheel = next(WHEELS.glob(f"d3dface-{engine_version()}-*.whl"))
    log(f"engine wheel: {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB)")
    return wheel


def _venv_versions(names: list[str]) -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "v = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: v[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))")
    out = subprocess.run([str(PY), "-c", code, *names], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def gather_runtime_wheels() -> list[Path]:
    """Binary wheels for Linux x86-64 / CPython 3.11 of everything in BUNDLED (versions of .venv)."""
    pins = [f"{n}=={v}" for n, v in _venv_versions(BUNDLED).items()]
    have = {p.name.split("-")[0].lower().replace("_", "-") for p in WHEELS.glob("*.whl")}
    missing = [p for p in pins if p.split("==")[0].lower().replace("_", "-") not in have]
    if missing:
        run([PY, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
             "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
             "--platform", WHEEL_PLATFORM, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
             "--platform", "linux_x86_64", "--platform", "any", "-d", WHEELS, *missing])
    wheels = sorted(p for p in WHEELS.glob("*.whl") if not p.name.startswith("d3dface-"))
    wanted = {n.lower().replace("-", "_") for n in BUNDLED}
    return [w for w in wheels if w.name.split("-")[0].lower() in wanted]


def _manifest_text(wheels: list[Path]) -> str:
    import re

    text = MANIFEST.read_text()
    text = re.sub(r'(?m)^version = ".*"$', f'version = "{engine_version()}"', text)
    listed = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    return re.sub(r"(?m)^wheels = \[.*?\]$", f"wheels = [\n{listed},\n]", text, flags=re.S)


def build_extension(engine_only: bool = False) -> Path:
    """Stage the add-on with its wheels, pack it with Blender's tool into dist/, validate it."""
    wheel = build_wheel()
    runtime = [] if engine_only else gather_runtime_wheels()
    wheels = [wheel, *runtime]
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "wheels").mkdir(parents=True)
    for f in ADDON.glob("*.py"):
        shutil.copy2(f, STAGE / f.name)
    for w in wheels:
        os.link(w, STAGE / "wheels" / w.name) if w.stat().st_dev == STAGE.stat().st_dev else shutil.copy2(w, STAGE / "wheels")
    (STAGE / "blender_manifest.toml").write_text(_manifest_text(wheels))
    DIST.mkdir(exist_ok=True)
    suffix = "engine-only" if engine_only else "linux-x64"
    out = DIST / f"d3dface-{engine_version()}-{suffix}.zip"
    if out.exists():
        out.unlink()
    tool = blender_ext_tool()
    run([PY, tool, "build", "--source-dir", STAGE, "--output-filepath", out])
    run([PY, tool, "validate", out])
    log(f"extension: {out} ({out.stat().st_size / 1e6:.1f} MB, {len(wheels)} wheels)")
    return out


def test(pytest_args: list[str]) -> int:
    """The whole suite, the end-to-end paths users run included (``--fast``: without them).
    Skipped cases are listed with their reasons at the end (-rs)."""
    setup()
    fast = "--fast" in pytest_args
    args = [a for a in pytest_args if a != "--fast"]
    if not fast:
        args.insert(0, "--run-slow")
    return subprocess.run([str(PY), "-m", "pytest", "tests", "-rs", *args], cwd=ROOT, env=dict(os.environ)).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["setup", "demo", "test", "models", "wheel", "extension"])
    args, rest = parser.parse_known_args()
    try:
        if args.task == "setup":
            setup()
        elif args.task == "demo":
            demo()
        elif args.task == "test":
            return test(rest)
        elif args.task == "models":
            rebuild_models()
        elif args.task == "wheel":
            build_wheel()
        elif args.task == "extension":
            build_extension(engine_only="--engine-only" in rest)
    except StepFailed as exc:
        print(f"build.py: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"build.py: error: {_step_name(exc.cmd)} failed with exit code {exc.returncode}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"build.py: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("build.py: error: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

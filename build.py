#!/usr/bin/env python3.11
"""Project tasks, runnable with a bare Python 3.11 (no dependencies needed to start).

    python3.11 build.py demo     # set up everything, then run the main job on the embedded default
    python3.11 build.py test     # set up everything, then run the whole test suite (pytest args may follow)
    python3.11 build.py setup    # only create/refresh .venv and build the embedded default model

The environment is one virtual environment, ``.venv``, holding the engine (editable),
its dependencies and bpy 5.0.1 for headless Blender tests. Setup is idempotent: it
re-installs only when requirements.txt or engine/pyproject.toml change.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
DEMO_OUT = ROOT / "out" / "demo"


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log(" ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, cwd=kw.pop("cwd", ROOT), **kw)


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
    build_default_model()
    log(f"setup done in {time.time() - t0:.1f} s")


def build_default_model() -> None:
    """Build the embedded open head model when it is missing (deterministic; see DESIGN 2.2)."""
    if OPEN_MODEL.exists():
        return
    d3dface = VENV / "bin" / "d3dface"
    help_text = subprocess.run([d3dface, "--help"], capture_output=True, text=True).stdout
    if "build-open-model" not in help_text:
        log("the open default head model builder is not available yet; skipping")
        return
    run([d3dface, "build-open-model", "--out", OPEN_MODEL])


def demo() -> None:
    setup()
    t0 = time.time()
    d3dface = VENV / "bin" / "d3dface"
    DEMO_OUT.mkdir(parents=True, exist_ok=True)
    model = [] if OPEN_MODEL.exists() else ["../shared/assets/flame"]
    run([d3dface, "info", *model])
    run([d3dface, "pose", *(["--model", model[0]] if model else []), "--yaw", "20",
         *([] if model else []), "--out", DEMO_OUT / "posed_head.obj"])
    log(f"demo done in {time.time() - t0:.1f} s; outputs in {DEMO_OUT}")


def test(pytest_args: list[str]) -> int:
    setup()
    env = dict(os.environ)
    return subprocess.run([str(PY), "-m", "pytest", "tests", *pytest_args], cwd=ROOT, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["setup", "demo", "test"])
    args, rest = parser.parse_known_args()
    if args.task == "setup":
        setup()
    elif args.task == "demo":
        demo()
    elif args.task == "test":
        return test(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures: the ../shared folder (assets and photos) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("D3DFACE_SHARED")
    if env:
        return Path(env)
    return REPO.parent / "shared"


SHARED = _shared()
ASSETS = SHARED / "assets"
FLAME_DIR = ASSETS / "flame"
IMAGES = SHARED / "images"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end cases (run with -m slow or --run-slow)")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def flame_dir() -> Path:
    if not FLAME_DIR.is_dir():
        pytest.fail(f"shared assets not found at {FLAME_DIR} (set D3DFACE_SHARED)")
    return FLAME_DIR


@pytest.fixture(scope="session")
def topology(flame_dir):
    from d3dface.head_model.flame_assets import load_flame_topology

    return load_flame_topology(flame_dir)


@pytest.fixture(scope="session")
def expression_run(tmp_path_factory) -> Path:
    """A real reconstruction with its expression meshes (``d3dface reconstruct --expressions``) of
    a shared photo with a wide smile and an open jaw; its output folder."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("expressions") / "smiling_girl"
    d3dface = Path(sys.executable).parent / "d3dface"
    res = subprocess.run([d3dface, "reconstruct", IMAGES / "faces" / "smiling_girl_450.jpg", "--samples", "2",
                          "--iterations", "10", "--expressions", "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out

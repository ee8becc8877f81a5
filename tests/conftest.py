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

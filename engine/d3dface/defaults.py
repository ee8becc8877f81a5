"""Defaults that several stages and entry points share, one place each (pure standard library).
Stage-specific defaults live in each stage's settings module; ``d3dface.config`` composes them."""

from __future__ import annotations

DEFAULT_SEED = 0  # every entry point's seed unless the caller gives one (same seed, same output on a CPU)
DEVICES = ("auto", "cpu", "cuda")  # "auto": CUDA when available; "cuda:N" is accepted too
DEFAULT_DEVICE = "auto"


def is_device_name(name: str) -> bool:
    """One of DEVICES, or ``cuda:N`` (the N-th GPU)."""
    name = str(name)
    return name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit())

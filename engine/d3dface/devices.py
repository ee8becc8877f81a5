"""Device choice, one rule for every entry point: 'auto' picks CUDA when available."""

from __future__ import annotations

import torch

from .errors import D3DFaceError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu' / 'cuda[:N]' as asked (clear error without CUDA)."""
    if isinstance(name, torch.device):
        return name
    name = "auto" if name is None else str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise D3DFaceError(f"device {name!r} was asked for but no CUDA device is available to this torch build")
    if name != "cpu" and not name.startswith("cuda"):
        raise D3DFaceError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


ENV_THREADS = "D3DFACE_THREADS"


def configure_threads() -> int:
    """CPU threads for torch in the command line and the worker: ``$D3DFACE_THREADS``, default 1.

    The engine's work is many small tensor operations; on a small machine shared with Blender's
    user interface or other jobs, a second torch thread that has to wait for a busy core slows
    every operation down (up to 20x measured on this project's 2-core machine), while one thread
    loses little when the machine is quiet. Set D3DFACE_THREADS to use more."""
    import os

    try:
        n = max(1, int(os.environ.get(ENV_THREADS, "1")))
    except ValueError:
        n = 1
    torch.set_num_threads(n)
    return n

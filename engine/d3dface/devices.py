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

"""Small helpers shared by sub-commands: progress bars and torch settings."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; 'cuda' without a GPU is a clear error."""
    from ..errors import D3DFaceError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise D3DFaceError("--device cuda: no CUDA device is available to this torch build")
    if name not in ("cpu", "cuda"):
        raise D3DFaceError(f"unknown device {name!r} (auto, cpu or cuda)")
    return name


class StageProgress:
    """A tqdm bar driven by ``(stage, fraction)`` callbacks; silent when not on a terminal unless forced."""

    def __init__(self, total: int = 1000, disable: bool | None = None):
        self.bar = tqdm(total=total, file=sys.stderr, disable=disable, bar_format="{desc:28s} {percentage:3.0f}%|{bar}| {elapsed}")
        self.total = total

    def __call__(self, stage: str, fraction: float) -> None:
        self.bar.set_description_str(stage, refresh=False)
        self.bar.n = int(self.total * min(max(fraction, 0.0), 1.0))
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

"""Small helpers shared by sub-commands: progress bars and torch settings."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..devices import resolve_device  # noqa: F401  (re-exported for the commands)


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

"""Small helpers shared by sub-commands: progress bars, the options every command spells the
same way (``--device``, ``--backend``, ``--json FILE``) and torch settings."""

from __future__ import annotations

import json
import sys

from tqdm import tqdm

from ..defaults import DEFAULT_DEVICE, DEVICES, is_device_name
from ..devices import resolve_device
from ..inputs.settings import BACKENDS, LandmarkSettings

__all__ = ["ASSETS_HELP", "MODEL_HELP", "DEVICE_CHOICES", "StageProgress", "add_backend", "add_device", "add_json",
           "json_to_stdout", "resolve_device", "write_json"]  # resolve_device: re-exported for the commands


class DeviceChoices(tuple):
    """``choices`` for ``--device``: auto, cpu, cuda, and also ``cuda:N`` (a GPU by index).

    argparse lists the three names in help and errors; ``in`` also accepts ``cuda:N``, as
    ``resolve_device`` always has (a validator kept inside the choices)."""

    def __new__(cls):
        return super().__new__(cls, DEVICES)

    def __contains__(self, value) -> bool:
        return isinstance(value, str) and is_device_name(value)


DEVICE_CHOICES = DeviceChoices()


def add_device(p, default: str = DEFAULT_DEVICE) -> None:
    """``--device``: one spelling and one set of choices for every command."""
    p.add_argument("--device", default=default, choices=DEVICE_CHOICES,
                   help="auto (CUDA when available), cpu, cuda, or cuda:N for the N-th GPU (default: %(default)s)")


def add_backend(p, default: str = LandmarkSettings.backend) -> None:
    """``--backend``: the landmark detector."""
    p.add_argument("--backend", default=default, choices=BACKENDS,
                   help="landmark backend: auto (FAN when its weights are here, else MediaPipe), mediapipe or fan (default: %(default)s)")


def add_json(p, what: str, stdout_note: str = "the text report goes to standard error") -> None:
    """``--json FILE``: every command that writes JSON takes a file; ``-`` is standard output."""
    p.add_argument("--json", dest="json_path", metavar="FILE",
                   help=f"also write {what} as JSON to FILE; '-' writes it to standard output ({stdout_note})")


def json_to_stdout(args) -> bool:
    return getattr(args, "json_path", None) == "-"


def write_json(dest: str, obj, indent: int = 2) -> None:
    """Write ``obj`` as JSON to the file ``dest`` (atomically) or, for ``-``, to standard output."""
    text = json.dumps(obj, indent=indent, default=float)
    if dest == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    from ..atomic import write_text_atomic

    write_text_atomic(dest, text + "\n")


ASSETS_HELP = "shared assets folder (default: $D3DFACE_ASSETS, else shared/assets beside the current folder or the engine)"
MODEL_HELP = "head model: a .npz, a FLAME .pkl or a FLAME assets folder (default: the embedded open model)"


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


"""``d3dface``: the engine's command line. Each sub-command lives in its own module and
registers itself here; user errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import D3DFaceError
from ..devices import configure_threads
from ..native_logs import route_native_stderr
from . import (cmd_bench, cmd_build_model, cmd_evaluate, cmd_fit, cmd_info, cmd_inputs, cmd_pose, cmd_reconstruct,
               cmd_render_model, cmd_vae)

# the order of ``d3dface --help``: the main job first, then its stages, evaluations, models, tools
COMMANDS = [cmd_reconstruct, cmd_fit, cmd_inputs, cmd_evaluate, cmd_info, cmd_pose, cmd_render_model, cmd_build_model,
            cmd_vae, cmd_bench]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d3dface",
        description="Diverse 3D head reconstructions from one occluded face photo (FLAME topology).",
    )
    parser.add_argument("--version", action="version", version=f"d3dface {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def entry() -> None:
    """The console script: native log lines off the terminal, then ``main``."""
    route_native_stderr()
    configure_threads()
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    try:
        return int(args.run(args) or 0)
    except D3DFaceError as exc:
        print(f"d3dface: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("d3dface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    entry()

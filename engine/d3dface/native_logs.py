"""Keep native libraries' log lines (TensorFlow Lite, glog, libpng) off the user's terminal.

MediaPipe and OpenCV write to file descriptor 2 directly, some of it from their own threads,
so a temporary redirection cannot catch it all. ``route_native_stderr`` points fd 2 at
``os.devnull`` (or the file named by ``D3DFACE_NATIVE_LOG``) for the rest of the process and
gives Python's ``sys.stderr`` a private copy of the original stream: our one-line errors,
notices, warnings and progress bars still reach the user.
"""

from __future__ import annotations

import os
import sys

ENV_LOG = "D3DFACE_NATIVE_LOG"
_done = False


def route_native_stderr() -> None:
    global _done
    if _done:
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        target = os.environ.get(ENV_LOG) or os.devnull
        sink = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(sink, 2)
        os.close(sink)
        sys.stderr = os.fdopen(original, "w", buffering=1, encoding="utf-8", errors="replace")
    except OSError:
        return
    _done = True

"""Errors a user can cause. They carry one line of text and a kind; the CLI prints
``error: <line>`` and exits non-zero, the worker sends them as an ``error`` message."""

from __future__ import annotations


class D3DFaceError(Exception):
    """A problem with the user's input or environment (never a programming error)."""

    kind = "input"
    exit_code = 2

    def __init__(self, message: str):
        # One line, always: a user reads it in a terminal or a Blender report.
        super().__init__(" ".join(str(message).split()))


class InputFileError(D3DFaceError):
    """A file is missing, unreadable, or not what it claims to be."""

    kind = "file"


class ModelFileError(D3DFaceError):
    """A head model or checkpoint cannot be used (corrupt, wrong topology, missing parts)."""

    kind = "model"


class OutputError(D3DFaceError):
    """The output location cannot be written."""

    kind = "output"
    exit_code = 3


class ResourceError(D3DFaceError):
    """The machine ran out of something (GPU memory)."""

    kind = "resources"
    exit_code = 4


class Cancelled(D3DFaceError):
    """The user cancelled the job."""

    kind = "cancelled"
    exit_code = 130

"""The open default head model: ICT-FaceKit Light carried onto FLAME's topology."""

from .build import BuildReport, build_open_model

__all__ = ["BuildReport", "build_open_model"]

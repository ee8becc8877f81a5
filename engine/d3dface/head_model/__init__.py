"""Head models on the FLAME topology: data (HeadModel), loaders, and the torch forward model."""

from .layer import HeadLayer, HeadOutput
from .load import load_head_model
from .model import FLAME_NUM_FACES, FLAME_NUM_VERTICES, HeadModel

__all__ = ["HeadLayer", "HeadModel", "HeadOutput", "load_head_model", "FLAME_NUM_VERTICES", "FLAME_NUM_FACES"]

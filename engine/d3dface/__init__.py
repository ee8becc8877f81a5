"""Diverse3DFace engine: diverse 3D head reconstructions from one occluded face photo.

Pipeline (one direction; lower layers never import higher ones):
inputs -> head_model -> render -> fit -> complete -> outputs -> cli / worker.
"""

__version__ = "0.1.0"

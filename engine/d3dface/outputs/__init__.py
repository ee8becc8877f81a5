"""Outputs: meshes, result files and pictures, all written atomically."""

"""Evaluation on synthetic occluded faces (the paper's protocols on our data). Sits above the
pipeline stages it measures; only the CLI sits above it."""

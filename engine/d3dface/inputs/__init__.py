"""inputs stage of the pipeline."""

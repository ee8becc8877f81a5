"""fit stage of the pipeline."""

"""complete stage of the pipeline."""

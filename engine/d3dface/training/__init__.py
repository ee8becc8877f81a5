"""Training and model building: the Mesh-VAE (data, loop, checkpoints written), the fit's local
region models. Sits beside evaluation above the pipeline stages it trains for; only the CLI
sits above it."""

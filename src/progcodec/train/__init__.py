"""Training: data, the loop, checkpoints, export."""

"""storage: runs and their loss curves in MLflow, read back as one loss-point table."""

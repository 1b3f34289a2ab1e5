"""evals: sampling from checkpoints and measures of the ABC they write (ARCHITECTURE.md)."""

"""sweeps: grid specs, run identity, launching runs, campaigns."""

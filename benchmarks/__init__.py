"""The routemw benchmark: `python -m benchmarks.run` (see README, Performance)."""

"""Benchmarks: run each from the repository root as `python -m benchmarks.NAME`; they import dlmpo
only through its public names and share benchmarks/common.py."""

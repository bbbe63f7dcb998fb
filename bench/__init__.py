"""Reproducible benchmarks of the portal at production volume (see bench/README.md)."""

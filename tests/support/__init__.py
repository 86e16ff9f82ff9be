"""Helpers shared by the test suite and the benchmarks: real registry processes,
OCI layouts written from Python, and tools that must be present."""

"""Berth: a desktop console for container registries, and the registry it administers."""

__version__ = "0.1.0"

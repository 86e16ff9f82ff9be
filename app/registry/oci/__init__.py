"""The OCI Distribution API (spec v1.1) under ``/v2/``."""

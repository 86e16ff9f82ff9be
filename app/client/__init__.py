"""Async clients over httpx (no Qt): the Berth management API, the OCI
Distribution API of any registry, auth flows, credentials and profiles."""

"""The Berth registry service: OCI Distribution API, management API, GC."""

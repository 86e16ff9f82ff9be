"""Pure domain logic shared by the registry and the client: no Qt, no I/O."""

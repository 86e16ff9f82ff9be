"""The metadata store: schema, engine set-up and migrations."""

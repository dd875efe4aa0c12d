"""Migration scripts, oldest first (``0001_baseline`` creates the schema as it was before migrations)."""

"""Engines: one module per model library, behind the per-task interfaces of :mod:`.base`."""

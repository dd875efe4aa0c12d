"""Deployments: model lifecycle (load/unload), admission control, and later replicas and routing."""

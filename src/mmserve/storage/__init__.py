"""Artifacts (generated images, videos, audio) and the signed, expiring URLs that serve them."""

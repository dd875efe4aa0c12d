"""Helpers shared by several engine families (torch set-up, per-thread tokenizers, voice names)."""

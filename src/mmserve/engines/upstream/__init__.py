"""Engines for third-party OpenAI-compatible providers: ``upstream-<task>`` cards in the same catalog.

One small engine per task (chat, image, speech, transcription, video, embedding) on one shared
client (:mod:`.client`): remote models are routed, fallen back from, metered and priced like
local ones.
"""

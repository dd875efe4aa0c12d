"""Whisper speech recognition (transformers): the engine and the window-to-segments decoding."""

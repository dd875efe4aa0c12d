"""mmserve: a self-hosted, OpenAI-compatible multimodal inference server."""

__version__ = "0.1.0"

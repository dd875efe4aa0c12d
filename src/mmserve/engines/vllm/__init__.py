"""``engine: vllm``: chat served by a vLLM OpenAI server that mmserve starts, watches and stops.

Each replica is one vLLM server process (:mod:`.process`), started with the card's
``options.python`` so vLLM lives in its own virtualenv with its own torch/transformers pins
(:mod:`.venv` builds one), listening on a unix socket only mmserve's user can reach.
mmserve renders nothing itself: it sends vLLM the messages (images already fetched, decoded
and bounded by mmserve's media layer, as data URIs), the tools for the chat template and the
answer's grammar, and reads vLLM's raw text back through the same parsers as every other engine
(:mod:`.mapping`). This package's ``__init__`` stays import-free: :mod:`.launch` runs through it.
"""

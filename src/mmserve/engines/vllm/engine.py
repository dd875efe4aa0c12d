"""``engine: vllm``: each replica is a vLLM OpenAI server process that mmserve manages and streams from.

Why a managed server rather than vLLM inside mmserve's process: vLLM pins its own torch and
transformers (the CPU build pins exact versions) and runs its engine in separate processes
anyway; a server of its own, started with the card's ``options.python``, lets it live in its
own virtualenv, be restarted when it dies without taking mmserve down, and be configured with
vLLM's own flags. Over a unix socket the hop costs about a millisecond (``benchmarks/engines.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx

from mmserve.chatformat.reasoning import REASONING_PARSERS
from mmserve.chatformat.tools import TOOL_PARSERS
from mmserve.engines.base import ChatEngine, EngineOptions
from mmserve.engines.types import ChatDelta, ChatInput, ServingStats
from mmserve.engines.vllm.client import ORIGIN, TRANSPORT_ERRORS, VLLMClient
from mmserve.engines.vllm.mapping import (
    SUPPRESS_BIAS,
    ChunkReader,
    RequestShape,
    chat_body,
    coalesce,
    refusal,
    vllm_message,
)
from mmserve.engines.vllm.model_files import ModelFiles
from mmserve.engines.vllm.options import VLLMOptions, server_argv, server_env
from mmserve.engines.vllm.process import ManagedServer, Timing, group_rss_bytes
from mmserve.engines.vllm.stats import parse_metrics
from mmserve.errors import EngineError, EngineUnavailableError, InvalidRequestError

log = logging.getLogger("mmserve.engines.vllm")
PROMPT_TAIL_TOKENS = 32  # enough to see whether the template opened a reasoning trace


class VLLMChatEngine(ChatEngine):
    Options = VLLMOptions
    options: VLLMOptions
    supports_logprobs = True
    supports_ignore_eos = True
    loads_in_process = False

    server: ManagedServer | None = None
    client: VLLMClient | None = None
    files: ModelFiles = ModelFiles()
    _workdir: Path | None = None
    _context: int | None = None
    _stats: ServingStats | None = None
    _aborted = False  # abort_load was called: the server is stopping

    @classmethod
    def default_concurrency(cls, options: EngineOptions, device: str) -> int:
        """vLLM batches what it is sent: admit its batch size (``max_num_seqs``, else 64) per replica."""
        assert isinstance(options, VLLMOptions)
        return options.max_num_seqs or 64

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        if self.source is None:
            raise EngineError(f"Model '{self.card.id}' has no source (a model directory for vLLM).")
        opts = self.options
        python = opts.interpreter()
        if not shutil.which(python):
            raise EngineUnavailableError(
                f"Model '{self.card.id}': options.python '{python}' is not an interpreter. "
                "Make a vLLM environment with `mmserve vllm-venv` and point options.python at its python."
            )
        self.files = ModelFiles.read(self.source)
        self._workdir = Path(tempfile.mkdtemp(prefix="mmserve-vllm-"))
        if opts.chat_template and "{" in opts.chat_template:  # a Jinja template rather than a file: make it one
            template = self._workdir / "chat_template.jinja"
            template.write_text(opts.chat_template)
            opts = opts.model_copy(update={"chat_template": str(template)})
        socket = self._workdir / "api.sock"
        log_path = Path(opts.log_file).expanduser() if opts.log_file else self._workdir / "server.log"
        context = self.card.capabilities.context_length
        argv = server_argv(opts, model=self.source, name=self.card.id, socket=socket, context_length=context)
        timing = Timing(
            opts.startup_timeout_s, opts.health_interval_s, opts.restart_backoff_s, opts.restart_backoff_max_s
        )
        env = server_env(opts, dict(os.environ), device=self.device)
        pin = opts.pin_engine_core and not self.device.startswith("cuda")  # a no-op unless the Worker is bound
        self.server = ManagedServer(self.card.id, argv, env, socket, log_path, timing, pin_engine_core=pin)
        try:
            if self._aborted:  # abort_load came before the server was made: it found none to stop
                raise EngineUnavailableError("stopped before its start")
            self.server.start()
            self._context = self._served_context(socket)
        except BaseException as e:
            self.unload()
            if self._aborted:
                raise EngineUnavailableError(
                    f"The server is stopping: the vLLM server of '{self.card.id}' was stopped while it started."
                ) from e
            raise
        self.client = VLLMClient(socket, read_timeout_s=opts.read_timeout_s)

    def _served_context(self, socket: Path) -> int | None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), base_url=ORIGIN, timeout=30) as c:
            models = c.get("/v1/models").json().get("data") or [{}]
        value = models[0].get("max_model_len")
        return value if isinstance(value, int) else self.card.capabilities.context_length

    def abort_load(self) -> None:
        """Stop the server :meth:`load` waits for (its start can take minutes): the load raises."""
        self._aborted = True
        server = self.server
        if server is not None:
            server.stop()

    async def aclose(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    def unload(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def context_length(self) -> int | None:
        return self._context

    def memory_bytes(self) -> int | None:
        """Resident memory of the server's processes (CPU memory: GPU memory is the card's deployment.memory_gb)."""
        pid = self.server.pid if self.server is not None else None
        return group_rss_bytes(pid) if pid is not None else None

    @property
    def available(self) -> bool:
        return self.server is not None and self.server.ready

    # ------------------------------------------------------------------ generation

    async def generate(self, request: ChatInput) -> AsyncGenerator[ChatDelta, None]:
        client = self._ready_client()
        shape = await self._shape(client, request)
        has_images = any(m.images for m in request.messages)
        # images are PNG-encoded for the body: not on the loop
        body = await asyncio.to_thread(chat_body, request, shape) if has_images else chat_body(request, shape)
        schema_param = request.constraint.param if request.constraint is not None else None
        reader = ChunkReader(self.card.id, self.files.image_token_id, request.params.top_logprobs)
        try:
            async with client.stream("/v1/chat/completions", body) as (status, stream):
                if status != 200:
                    raise self._refusal(status, b"".join([part async for part in stream]), schema_param)
                rest = b""
                # Read to the end ([DONE] included): a half-read response cannot go back to the pool.
                async for data in stream:
                    *lines, rest = (rest + data).split(b"\n")
                    deltas = []
                    for line in lines:
                        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                            chunk = json.loads(line[5:])
                            if "error" in chunk:
                                log.error("vLLM server of '%s' failed a request: %s", self.card.id, chunk["error"])
                            deltas += reader.feed(chunk)
                    for delta in coalesce(deltas):
                        yield delta
            yield reader.finish()
        except TRANSPORT_ERRORS as e:
            raise self._gone() from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # not vLLM's OpenAI chunks
            raise EngineError(f"The vLLM server of '{self.card.id}' sent an unreadable stream.") from e

    def _refusal(self, status: int, raw: bytes, schema_param: str | None) -> Exception:
        return refusal(self.card.id, status, _json(raw), context=self._context, schema_param=schema_param)

    def _gone(self) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"The vLLM server of '{self.card.id}' stopped answering. Retry shortly.", code="model_restarting"
        )

    def _ready_client(self) -> VLLMClient:
        if self.client is None or self.server is None:
            raise EngineError(f"Model '{self.card.id}' is not loaded.")
        if not self.server.ready:
            raise EngineUnavailableError(
                f"The vLLM server of '{self.card.id}' is restarting. Retry shortly.",
                code="model_restarting",
                headers={"Retry-After": "5"},
            )
        return self.client

    async def _shape(self, client: VLLMClient, request: ChatInput) -> RequestShape:
        caps = self.card.capabilities
        grammar = None
        constraint = request.constraint
        if constraint is not None:
            prompt = await self._prompt_tail(client, request) if constraint.reasoning_format else None
            try:
                grammar = constraint.grammar(prompt, token_tags=self._token_tags())
            except ValueError as e:  # a format mmserve cannot constrain
                raise InvalidRequestError(str(e), param=constraint.param) from None
        return RequestShape(
            model=self.card.id,
            max_tokens=request.params.max_tokens or self.card.limits.max_output_tokens,  # vLLM fits it to the context
            logit_bias={str(t): SUPPRESS_BIAS for t in self.files.suppress_tokens},
            min_tokens=self.files.min_new_tokens,
            grammar=grammar,
            prompt_text=caps.reasoning_format is not None,
            token_ids=self.files.image_token_id is not None and any(m.images for m in request.messages),
        )

    def _token_tags(self) -> frozenset[str]:
        tags = [t for p in REASONING_PARSERS.values() for t in (p.start_tag, p.end_tag)]
        tags += [t for p in TOOL_PARSERS.values() for t in (p.start_tag, p.end_tag)]
        return frozenset(t for t in tags if t in self.files.added_tokens)

    async def _prompt_tail(self, client: VLLMClient, request: ChatInput) -> str | None:
        """The end of the rendered prompt: whether the template opened a reasoning trace decides the grammar."""
        body: dict[str, Any] = {
            "model": self.card.id,
            "messages": [vllm_message(m) for m in request.messages],
            "add_generation_prompt": True,
        }
        if request.tools:
            body["tools"] = request.tools
        if request.extra.get("chat_template_kwargs"):
            body["chat_template_kwargs"] = request.extra["chat_template_kwargs"]
        try:
            tokens = await client.post("/tokenize", body)
            if tokens.status != 200:
                raise self._refusal(tokens.status, tokens.body, None)
            ids = tokens.json()["tokens"][-PROMPT_TAIL_TOKENS:]
            text = await client.post("/detokenize", {"model": self.card.id, "tokens": ids})
        except TRANSPORT_ERRORS as e:
            raise self._gone() from e
        if text.status != 200:
            raise self._refusal(text.status, text.body, None)
        prompt: str = text.json()["prompt"]
        return prompt

    # ------------------------------------------------------------------ statistics

    async def refresh_stats(self) -> None:
        if self.client is None or self.server is None or not self.server.ready:
            self._stats = None
            return
        try:
            resp = await self.client.get("/metrics", timeout=2.0)
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            self._stats = await asyncio.to_thread(parse_metrics, resp.body.decode())
        except (*TRANSPORT_ERRORS, ValueError) as e:
            log.debug("could not read the metrics of '%s': %s", self.card.id, e)
            self._stats = None  # /metrics shows no figures for the replica rather than old ones as current

    def stats(self) -> ServingStats | None:
        return self._stats


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None

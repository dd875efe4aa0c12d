"""Concurrent chat requests through the openai SDK share the model's batch, with the answers each gets alone."""

from __future__ import annotations

import asyncio
import re

import httpx
from openai import AsyncOpenAI

from tests.helpers.images import data_uri


def _messages(i: int) -> list[dict]:
    text = {"type": "text", "text": f"Picture {i}: what is in it?"}
    if i % 2:  # text-only and image requests mix
        return [{"role": "user", "content": f"Question number {i}?"}]
    return [
        {
            "role": "user",
            "content": [text, {"type": "image_url", "image_url": {"url": data_uri(color=(i * 20, 90, 160))}}],
        }
    ]


async def test_concurrent_streams_are_batched_and_answer_as_alone(base_url: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    kwargs = {"model": "demo-vlm", "temperature": 0, "max_tokens": 40}
    alone = [
        (await client.chat.completions.create(messages=_messages(i), **kwargs)).choices[0].message.content
        for i in range(6)
    ]
    sizes: list[int] = []

    async def stream(i: int) -> str:
        text = ""
        async for chunk in await client.chat.completions.create(messages=_messages(i), stream=True, **kwargs):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        return text

    async def scrape(done: asyncio.Event) -> None:
        async with httpx.AsyncClient() as http:
            while not done.is_set():
                page = (await http.get(base_url.removesuffix("/v1") + "/metrics")).text
                found = re.search(r'^mmserve_batch_size\{model="demo-vlm"\} (\S+)$', page, re.M)
                assert found, "the batch size gauge is missing"
                sizes.append(int(float(found.group(1))))

    done = asyncio.Event()
    scraper = asyncio.create_task(scrape(done))
    together = await asyncio.gather(*(stream(i) for i in range(6)))
    done.set()
    await scraper
    assert together == alone
    assert max(sizes) >= 2  # /metrics saw requests decoded together
    await client.close()


def test_the_default_concurrency_is_the_engines_batch_size(base_url: str) -> None:
    # the cards: demo-vlm sets max_concurrency 4; tiny-text leaves it to the engine
    models = {m["id"]: m for m in httpx.get(base_url + "/models").json()["data"]}
    assert models["demo-vlm"]["deployment"]["max_concurrency"] == 4
    assert models["tiny-text"]["deployment"]["max_concurrency"] == 16  # CPU default max_batch_size

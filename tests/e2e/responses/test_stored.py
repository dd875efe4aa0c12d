"""Stored responses: store, previous_response_id, retrieve, input items, delete."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI


def test_retrieve_returns_the_stored_response(client: OpenAI) -> None:
    r = client.responses.create(model="tool-lm", input="Say hello", metadata={"ticket": "42"})
    got = client.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump() and got.metadata == {"ticket": "42"}


def test_a_conversation_continues_and_lists_its_input_items(client: OpenAI) -> None:
    first = client.responses.create(model="tool-lm", input="Say hello", instructions="Be nice.")
    second = client.responses.create(model="tool-lm", input="And again?", previous_response_id=first.id)
    alone = client.responses.create(model="tool-lm", input="And again?", store=False)
    assert second.usage and alone.usage and first.usage
    # the history (question, reasoning and answer) is in the prompt; the first's instructions are not
    assert second.usage.input_tokens > alone.usage.input_tokens
    items = list(client.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "reasoning", "message", "message"]
    assert items[0].content[0].text == "Say hello" and items[-1].content[0].text == "And again?"  # type: ignore[union-attr]
    assert items[1].id == first.output[0].id and items[2].id == first.output[1].id
    page = client.responses.input_items.list(second.id, limit=2)  # newest first
    assert [i.id for i in page.data] == [items[3].id, items[2].id] and page.has_more
    rest = client.responses.input_items.list(second.id, limit=2, after=page.data[-1].id)
    assert [i.id for i in rest.data] == [items[1].id, items[0].id] and not rest.has_more


def test_store_false_is_not_kept(client: OpenAI) -> None:
    r = client.responses.create(model="tool-lm", input="Say hello", store=False)
    assert r.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="tool-lm", input="hi", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_delete_removes_it_and_later_responses_still_continue(client: OpenAI, url: str) -> None:
    first = client.responses.create(model="tool-lm", input="Say hello")
    second = client.responses.create(model="tool-lm", input="Again?", previous_response_id=first.id)
    assert client.responses.delete(first.id) is None  # the SDK returns nothing
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    third = client.responses.create(model="tool-lm", input="And now?", previous_response_id=second.id)
    assert third.status == "completed"  # each stored response keeps its whole conversation
    again = httpx.delete(f"{url}/responses/{first.id}", timeout=30)
    assert again.status_code == 404 and again.json()["error"]["code"] == "response_not_found"


def test_a_streamed_response_is_stored(client: OpenAI) -> None:
    with client.responses.stream(model="tool-lm", input="Say hello") as stream:
        final = stream.get_final_response()
    got = client.responses.retrieve(final.id)
    assert got.output_text == final.output_text and got.status == "completed"


def test_expired_responses_are_gone(formats_server, client: OpenAI) -> None:  # type: ignore[no-untyped-def]
    settings = formats_server.app.state.mm.settings
    r = client.responses.create(model="tool-lm", input="Say hello")
    old, settings.responses_ttl_s = settings.responses_ttl_s, 0.001
    try:
        gone = client.responses.create(model="tool-lm", input="Say hello")
    finally:
        settings.responses_ttl_s = old
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(gone.id)
    assert client.responses.retrieve(r.id).id == r.id

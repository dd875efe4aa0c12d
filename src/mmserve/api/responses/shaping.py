"""OpenAI shapes of a response: output items, the response object and the streaming events.

Output items, in the order the model produced them: a ``reasoning`` item (the trace, as a
``reasoning_text`` content part; ``summary`` is empty), a ``message`` with one
``output_text`` part, and one ``function_call`` item per tool call.

Streaming (:class:`EventStream`): ``response.created``, ``response.in_progress``, then per item
``response.output_item.added``, its content (``response.content_part.added``,
``response.output_text.delta`` / ``response.reasoning_text.delta`` ..., the ``.done`` events,
``response.content_part.done``; for a call ``response.function_call_arguments.delta`` and
``.done``), ``response.output_item.done``, and last ``response.completed`` (or
``response.incomplete`` when ``max_output_tokens`` cut the answer, ``response.failed``). Every
event has a ``sequence_number``.
"""

from __future__ import annotations

import uuid
from typing import Any

from mmserve.api.chat import shaping as chat_shaping
from mmserve.chatformat.output import ChoiceOutput, OutputEvent, ToolCall
from mmserve.engines.types import TokenLogprob


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def message_item(
    item_id: str, text: str | None, status: str, logprobs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text, logprobs)]
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def call_item(item_id: str, call: ToolCall, status: str = "completed", arguments: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if arguments is None else arguments,
        "status": status,
    }


def _text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def logprob_entries(entries: list[TokenLogprob] | None) -> list[dict[str, Any]]:
    """Tokens' log-probabilities in the shape of ``output_text.logprobs`` (chat's ``logprobs.content``)."""
    shaped = chat_shaping.logprobs(entries)
    return list(shaped["content"]) if shaped else []


def output_items(
    out: ChoiceOutput, incomplete: bool, logprobs: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """A finished choice's output items (a plain response); ``logprobs`` go with the message's text."""
    status = "incomplete" if incomplete else "completed"
    items = []
    reasoning = out.message_reasoning
    if reasoning:
        items.append(reasoning_item(new_id("rs"), reasoning, status))
    text = "".join(out.content)
    if text.strip() or not out.tool_calls:
        items.append(message_item(new_id("msg"), text, status, logprobs))
    items += [call_item(new_id("fc"), call) for call in out.tool_calls]
    return items


class EventStream:
    """Turns a choice's parsed output into Responses streaming events, keeping the items it opens."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response  # the response object, updated as the stream goes
        self.items: list[dict[str, Any]] = []
        self._seq = 0
        self._open: dict[str, Any] | None = None  # the reasoning or message item receiving deltas
        self._text: list[str] = []
        self._blank: list[str] = []  # whitespace before a call: dropped if only calls follow (as chat does)
        self._logprobs: list[dict[str, Any]] = []  # not sent yet: they go with the next output_text.delta
        self._sent_logprobs: list[dict[str, Any]] = []  # those of the open message

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def begin(self) -> list[dict[str, Any]]:
        return [
            self.event("response.created", response=self.response),
            self.event("response.in_progress", response=self.response),
        ]

    def piece(self, ev: OutputEvent, logprobs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The events of one parsed piece; ``logprobs``: entries of tokens generated since the last piece."""
        self._logprobs += logprobs or []
        if ev.kind == "reasoning":
            return self._delta("reasoning", ev.text)
        if ev.kind == "content":
            if self._open is None and not ev.text.strip():
                self._blank.append(ev.text)
                return []
            blank, self._blank = "".join(self._blank), []
            return self._delta("message", blank + ev.text)
        assert ev.call is not None
        events = self._close("completed")
        self._blank = []
        item_id = new_id("fc")
        index = len(self.items)
        self.items.append(call_item(item_id, ev.call))
        added = call_item(item_id, ev.call, "in_progress", arguments="")
        args = ev.call.arguments
        return [
            *events,
            self.event("response.output_item.added", output_index=index, item=added),
            self.event("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=args),
            self.event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=ev.call.name,
                arguments=args,
            ),
            self.event("response.output_item.done", output_index=index, item=self.items[index]),
        ]

    def finish(self, incomplete: bool) -> list[dict[str, Any]]:
        """Close what is open; an answer without text or calls gets an empty message, as a plain one has."""
        events = self._close("incomplete" if incomplete else "completed")
        if not any(item["type"] in ("message", "function_call") for item in self.items):
            events += self._delta("message", "".join(self._blank))
            events += self._close("incomplete" if incomplete else "completed")
        return events

    # ------------------------------------------------------------------ internals

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open is not None and self._open["type"] != kind:
            events += self._close("completed")
        index = len(self.items)
        if self._open is None:
            item_id = new_id("rs" if kind == "reasoning" else "msg")
            if kind == "reasoning":
                self._open, part = reasoning_item(item_id, "", "in_progress"), {"type": "reasoning_text", "text": ""}
            else:
                self._open, part = message_item(item_id, None, "in_progress"), _text_part("")
            events += [
                self.event("response.output_item.added", output_index=index, item=self._open),
                self.event(
                    "response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=part
                ),
            ]
            self._text = []
        if text:
            self._text.append(text)
            fields: dict[str, Any] = {"item_id": self._open["id"], "output_index": index, "content_index": 0}
            if kind == "message":
                sent, self._logprobs = self._logprobs, []
                self._sent_logprobs += sent
                events.append(self.event("response.output_text.delta", **fields, delta=text, logprobs=sent))
            else:
                events.append(self.event("response.reasoning_text.delta", **fields, delta=text))
        return events

    def _close(self, status: str) -> list[dict[str, Any]]:
        item = self._open
        if item is None:
            return []
        self._open = None
        text, index = "".join(self._text), len(self.items)
        fields: dict[str, Any] = {"item_id": item["id"], "output_index": index, "content_index": 0}
        if item["type"] == "message":
            sent, self._sent_logprobs = self._sent_logprobs, []
            done = message_item(item["id"], text, status, sent)
            part = done["content"][0]
            events = [self.event("response.output_text.done", **fields, text=text, logprobs=sent)]
        else:
            done = reasoning_item(item["id"], text, status)
            part = {"type": "reasoning_text", "text": text}
            events = [self.event("response.reasoning_text.done", **fields, text=text)]
        self.items.append(done)
        return [
            *events,
            self.event("response.content_part.done", **fields, part=part),
            self.event("response.output_item.done", output_index=index, item=done),
        ]

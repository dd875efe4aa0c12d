"""Every schemathesis check (the CLI's ``--checks all``) on a fuzzed case's response, failures collected.

Besides "no server error", a response must conform to the app's OpenAPI schema: a documented
status, content type and body, and a schema-valid request accepted, a schema-invalid one refused.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.transport.serialization import Binary, serialize_binary
from urllib3.filepost import encode_multipart_formdata

load_all_checks()
ALL_CHECKS: list[Any] = list(CHECKS.get_all())

# A schema-valid request may still be refused for what no static schema can describe: the
# card of the model it names (its sizes, voices, languages, image count, context, ...) or the
# content of its media (the bytes of an image, an audio file, a fetched URL). Those refusals
# are allowed for positive cases (``positive_data_acceptance``), by status (media: too large,
# unsupported, unfetchable) and, for 400, by code. Any other 400 to a schema-valid request
# means the schema promises what the server refuses: a failure.
CONTENT_STATUSES = {413, 415, 422}
MODEL_OR_CONTENT_CODES = {
    # the named model's card, or a limit the server's settings set
    "model_limit",
    "server_limit",
    "too_many_fields",  # a multipart form's parts (each item of a list is one)
    "too_many_files",
    "field_too_large",
    "model_capability",
    "context_length_exceeded",
    "too_many_images",
    "too_many_videos",
    "too_many_audios",
    "invalid_size",
    "unsupported_size",
    "unsupported_background",
    "invalid_voice",
    "unsupported_language",
    "invalid_duration",
    "invalid_fps",
    "unsupported_dimensions",
    "input_too_long",
    "model_task_mismatch",
    "no_model_fits",
    "reserved_token",
    # what the model's engine cannot do (logprobs, ignore_eos); and combinations of fields the
    # server refuses (best_of other than n, logprobs with echo): the fields the server refuses
    # by design on their own are stated in the schema (enum / type null), so they never get here
    "unsupported_parameter",
    # the content of media, a user's JSON Schema, or text the model's template refuses
    "invalid_image",
    "invalid_data_uri",
    "invalid_base64",
    "image_too_small",
    "image_too_complex",
    "image_aspect_ratio",
    "image_decode_timeout",
    "animated_image",
    "invalid_audio",
    "audio_too_long",
    "audio_decode_timeout",
    "invalid_schema",
    "invalid_unicode",
    "nothing_to_say",
    # what is stored: a list cursor naming no job of the caller
    "unknown_cursor",
    # rules across fields or items that JSON Schema cannot state; names it cannot list
    "invalid_period",
    "invalid_combination",
    "missing_input",
    "unknown_time_zone",
    "duplicate_tool_name",
    "tool_choice_mismatch",
}


def conformance_failures(
    case: schemathesis.Case, response: Any, *, steered: bool = False, headers: dict[str, str] | None = None
) -> list[str]:
    """The checks this response fails, as one line each (empty: it conforms).

    ``headers``: those the request was sent with besides the case's (an API key: ``ignored_auth``
    replays the request without it). ``steered``: the test replaced parts of a positive case with
    valid values (a real model, a real upload); schemathesis re-reads such a body and may call it
    negative, so the check that invalid data is refused does not apply to it.
    """
    checks = [c for c in ALL_CHECKS if not (steered and getattr(c, "__name__", "") == "negative_data_rejection")]
    try:
        case.validate_response(response, checks=checks, headers=headers)
    except FailureGroup as group:
        return [_line(case, response, f) for f in group.exceptions if not _explained(f, response)]
    except Failure as failure:
        return [] if _explained(failure, response) else [_line(case, response, failure)]
    return []


def _explained(failure: Failure, response: Any) -> bool:
    """A refused schema-valid request whose refusal depends on the model or the media content."""
    if type(failure).__name__ != "RejectedPositiveData":
        return False
    if response.status_code in CONTENT_STATUSES:
        return True
    try:
        code = json.loads(response.text)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return False
    return response.status_code == 400 and code in MODEL_OR_CONTENT_CODES


def _line(case: schemathesis.Case, response: Any, failure: Failure) -> str:
    mode = case.meta.generation.mode.value if case.meta is not None else "?"
    if case.meta is not None:
        mode += " " + ",".join(f"{loc.value}:{c.mode.value}" for loc, c in case.meta.components.items())
    message = " ".join(str(failure.message).split())[:200]
    got = " ".join(response.text[:300].split())
    return (
        f"{case.method} {case.path} [{mode}] {failure.title}: {message} || {response.status_code} {got} "
        f"|| query={case.query!r:.200} body={case.body!r:.300}"
    )


def send(case: schemathesis.Case, base_url: str, headers: dict[str, str] | None = None) -> Any:
    """Send the case; multipart file parts go out as files (with a filename), as every HTTP client sends them.

    (schemathesis sends binary parts without a filename, which servers read as text fields.)
    """
    body = case.body
    negative = case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE
    if negative or case.media_type != "multipart/form-data" or not isinstance(body, dict):
        # (a negative case goes out as generated: re-encoding it could repair what it broke)
        return case.call(base_url=base_url, headers=headers, timeout=60)
    parts: list[tuple[str, Any]] = []
    for name, value in body.items():
        if value is None:  # a form has no null: the field is left out
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Binary | bytes):
                parts.append((name, ("upload.bin", serialize_binary(item), "application/octet-stream")))
            else:
                parts.append((name, item if isinstance(item, str) else json.dumps(item)))
    content, content_type = encode_multipart_formdata(parts)
    sent = {k: v for k, v in {**(case.headers or {}), **(headers or {})}.items() if k.lower() != "content-type"}
    return httpx.request(
        case.method,
        base_url + case.formatted_path,
        params=case.query,
        headers={**sent, "Content-Type": content_type},
        content=content,
        timeout=60,
    )

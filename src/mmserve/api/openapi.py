"""A truthful OpenAPI document: every status a route answers, with the error envelope's schema.

FastAPI documents 200 and a 422 "validation error" (``{"detail": [...]}``) on every route that
takes input; mmserve never sends that (a bad field is a 400 in the OpenAI envelope) and does
send 400/401/403/404/408/413/415/422/429/503. One mechanism fixes both, for every route,
including routes added later (on any branch) without a line of their own:

- :func:`install_openapi` replaces ``app.openapi``: FastAPI's 422 validation shapes are
  dropped, and every operation documents what the layers every route shares may answer:
  :data:`EVERY_ROUTE` (the HTTP layer, the body limits and unexpected failures); 401 and 429
  when API keys are required (``Settings.auth``) on the routes that need one; 404 on a route
  with a path parameter (the named resource may not exist); and :data:`MODEL` (403, 404, 503)
  on a route that names a model (a ``model`` body field or a ``model_id`` path parameter: the
  key may not use it, it may not exist, its queue may be full);
- routers declare what their surface adds beyond that with :func:`errors`
  (``responses=errors(415, 422)``), e.g. 415 for an unreadable upload, 422 for an unfetchable
  media URL, 403 for admin-only routes.

Every error is documented with :class:`ErrorEnvelope`, the one shape errors have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

DESCRIPTIONS = {
    400: "Invalid request: `param` names the field and `message` the fix (also: malformed HTTP).",
    401: "Missing or invalid API key.",
    403: "The API key may not do this (e.g. use this model).",
    404: "No such model or resource.",
    408: "The client sent its request too slowly (headers or body).",
    409: "The resource is not in a state that allows this yet.",
    413: "Too large: the request body, a file, an image or the images together.",
    415: "An upload or image in a format the model does not accept.",
    422: "A media URL could not be fetched (the reason is in `message` and `code`).",
    429: "The API key's request or token rate limit; retry after `Retry-After` seconds.",
    500: "The server failed (the message never shows internals).",
    503: "Overloaded (queue full) or the model is unavailable; retry after `Retry-After` seconds.",
}
#: what an image URL starts with (after spaces): http://, https:// or data:, in any case
IMAGE_URL_PATTERN = r"^\s*([hH][tT][tT][pP][sS]?://|[dD][aA][tT][aA]:)"
HTTP_URL_PATTERN = r"^\s*[hH][tT][tT][pP][sS]?://"  # what the SSRF-safe fetcher takes
#: "contains a character that is not whitespace", with whitespace as Python's str.isspace() has
#: it, spelled out: JSON Schema's (ECMAScript's) \s and Python's \s disagree on \x1c-\x1f and \x85
NOT_BLANK = "[^ \t\n\r\f\v\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
#: answered by any route: malformed HTTP or values (400), a slow client (408), a body over
#: the cap (413), an unexpected failure (500)
EVERY_ROUTE = (400, 408, 413, 500)
#: answered by any route that needs an API key when keys are required
WITH_KEYS = (401, 429)
#: answered by routes that run a model: key not allowed on it, unknown, overloaded or unavailable
MODEL = (403, 404, 503)


class ErrorDetail(BaseModel):
    message: str = Field(description="What is wrong and how to fix it.")
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error, server_error, ...")
    param: str | None = Field(description="The request field at fault (`messages[0].content[1].image_url`).")
    code: str | None = Field(description="A stable machine-readable reason (`model_not_found`, `url_refused`, ...).")


class ErrorEnvelope(BaseModel):
    """Every error: OpenAI's envelope."""

    error: ErrorDetail


def schema_is(replacement: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A field's ``json_schema_extra`` that replaces its generated schema (for fields whose
    runtime type is loose because the service checks them by hand, naming the exact field)."""

    def replace(schema: dict[str, Any]) -> None:
        schema.clear()
        schema.update(replacement)

    return replace


def schema_with(extra: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A field's ``json_schema_extra`` that adds ``extra`` to its generated schema."""

    def add(schema: dict[str, Any]) -> None:
        schema.update(extra)

    return add


def json_or_stream(what: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry of a route answering JSON, or server-sent events with ``stream: true``."""
    return {200: {"content": {"application/json": {}, "text/event-stream": {}}, "description": what}}


def not_empty(schema: dict[str, Any]) -> None:
    """A field's ``json_schema_extra``: none of its strings or lists may be empty, nor the
    strings and lists in its lists (what the service refuses with "must not be empty")."""
    for member in schema.get("anyOf", [schema]):
        if member.get("type") == "string":
            member["minLength"] = max(1, member.get("minLength", 0))
        elif member.get("type") == "array":
            member["minItems"] = max(1, member.get("minItems", 0))
            items = member.get("items", {})
            if "anyOf" in items or items.get("type") in ("string", "array"):
                not_empty(items)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: these statuses, documented with the error envelope."""
    return {status: {"model": ErrorEnvelope, "description": DESCRIPTIONS[status]} for status in statuses}


def install_openapi(app: FastAPI, *, keys_required: bool, open_paths: Callable[[str], bool]) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) the truthful document; ``open_paths`` tells
    which paths need no key."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = truthful(schema, keys_required=keys_required, open_paths=open_paths)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def truthful(schema: dict[str, Any], *, keys_required: bool, open_paths: Callable[[str], bool]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in [s for s, r in responses.items() if _is_validation_error(r)]:
                del responses[status]
            extra: set[int] = {*EVERY_ROUTE, *_inferred(path, operation, components)}
            if keys_required and not open_paths(path):
                extra.update(WITH_KEYS)
                operation["security"] = [{"bearer": []}]
            for status in sorted(extra):
                responses.setdefault(str(status), _documented(status))
            operation["responses"] = dict(sorted(responses.items()))
    _exact_bounds(schema)
    if keys_required:
        schema["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A key made by `mmserve keys create`."}
        }
    if not any(_uses(schema.get("paths", {}), name) for name in ("HTTPValidationError", "ValidationError")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


def _inferred(path: str, operation: dict[str, Any], components: dict[str, Any]) -> set[int]:
    """The statuses a route answers by its shape: a path parameter (404), a model it names (:data:`MODEL`)."""
    out: set[int] = set()
    params = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
    if params:
        out.add(404)
    if any(p.get("name") == "model_id" for p in params) or _names_model(operation, components):
        out.update(MODEL)
    return out


def _names_model(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    """Whether a request body (any of its content types) has a ``model`` property."""
    for content in operation.get("requestBody", {}).get("content", {}).values():
        schema = content.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = components.get(ref.rsplit("/", 1)[-1], {})
        if "model" in schema.get("properties", {}):
            return True
    return False


def _exact_bounds(node: Any) -> None:
    """FastAPI's OpenAPI model types ``minimum``/``maximum`` as floats: a bound of an integer field
    comes out as ``9.223372036854775e+18``, which readers take as 9223372036854775000, past the
    real bound. Whole-number bounds are written back as integers (the request models use bounds
    a double holds exactly, see ``api.jsonbody.SEED_MAX``)."""
    if isinstance(node, dict):
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            value = node.get(key)
            if isinstance(value, float) and value.is_integer():
                node[key] = int(value)
        for child in node.values():
            _exact_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _exact_bounds(child)


def _documented(status: int) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }


def _is_validation_error(response: dict[str, Any]) -> bool:
    return "HTTPValidationError" in str(response.get("content", ""))


def _uses(value: Any, name: str) -> bool:
    return f"#/components/schemas/{name}'" in str(value)

"""The OpenAPI document a live server publishes, and its request schemas as validators: for the tests
that check the document says what the server refuses (a client or a fuzzer generated from it must
never find valid what gets a 400)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jsonschema


def published(base_url: str) -> dict[str, Any]:
    """``/openapi.json`` of the server at ``base_url`` (its root, or its ``/v1``)."""
    return dict(httpx.get(f"{base_url.removesuffix('/v1')}/openapi.json", timeout=30).json())


def accepts(document: dict[str, Any], schema: str) -> Callable[[Any], bool]:
    """Whether a body is valid for the component ``schema`` of ``document`` (references resolved in it)."""
    root = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return jsonschema.Draft202012Validator(root).is_valid

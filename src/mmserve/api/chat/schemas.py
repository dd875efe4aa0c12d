"""JSON Schemas sent by clients (response_format, tool parameters): checked before any model runs."""

from __future__ import annotations

from typing import Any

from mmserve.errors import InvalidRequestError

MAX_MESSAGE = 300


def check_schema(schema: dict[str, Any], *, param: str) -> None:
    """A 400 naming ``param`` unless ``schema`` is a valid JSON Schema (of the draft it declares, else 2020-12).

    Whether the schema can also be *enforced* is decided by the grammar compiler in the
    engine (e.g. an unknown ``format``); that is a 400 naming the same field.
    """
    from jsonschema import Draft202012Validator, SchemaError, validators

    if not isinstance(schema.get("$schema", ""), str):  # jsonschema looks the draft up by it and crashes
        raise InvalidRequestError(
            f"'{param}' has a '$schema' that is not a string: give the draft's URI, or leave it out for 2020-12.",
            param=param,
            code="invalid_schema",
        )
    try:
        validators.validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.absolute_path)
        at = f" at '{where}'" if where else ""
        message = e.message if len(e.message) <= MAX_MESSAGE else e.message[:MAX_MESSAGE] + "..."
        raise InvalidRequestError(
            f"'{param}' is not a valid JSON Schema{at}: {message}.", param=param, code="invalid_schema"
        ) from None
    except RecursionError:
        raise InvalidRequestError(f"'{param}' is nested too deeply.", param=param, code="invalid_schema") from None

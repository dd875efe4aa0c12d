"""The base of every request model: numbers are numbers and booleans are booleans, as the OpenAPI schema says.

pydantic's lax mode reads JSON ``true``/``false`` as 1/0 for an int or float field, so
``"seed": true`` was accepted as seed 1 while the schema (``integer``) says it is invalid, and
``"max_tokens": "5"`` as 5. A number field now refuses a boolean, and in JSON a string, with a
400 naming it (as OpenAI's API does).

The other way round, lax mode reads ``0``, ``1.0``, ``"true"`` or ``"off"`` as a boolean, so
``"stream": 0`` or ``"logprobs": "true"`` passed although the schema (``boolean``) refuses them.
A boolean field now takes JSON ``true`` and ``false`` only.

Multipart forms carry every field as text: a form's models are validated with ``context=FORM``,
where ``"5"`` is a number and ``"true"`` is true.
"""

from __future__ import annotations

from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

#: The largest seed a request may send: int64 less its top 1023 values. JSON numbers often
#: travel as doubles (and OpenAPI documents bounds as doubles): 2**63 - 1 as a double is 2**63,
#: out of range; this is the largest double below it, so every reader agrees on the bound.
SEED_MAX = 2**63 - 1024

#: The validation context of a multipart form's fields: text, so numbers and booleans are written as text there.
FORM: dict[str, Any] = {"form": True}


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        numbers, flags = _typed_fields(cls)
        from_json = not (info.context or {}).get("form")
        for name in numbers:
            value = data.get(name)
            if isinstance(value, bool):
                _refuse(cls, name, value, "number_type", "expected a number, not true or false")
            if from_json and isinstance(value, str):
                _refuse(cls, name, value, "number_type", "expected a number, not a string")
        if from_json:
            for name in flags:
                value = data.get(name)
                if value is not None and not isinstance(value, bool):  # null: the field says whether it may be
                    _refuse(cls, name, value, "bool_type", "expected true or false")
        return data


def _refuse(model: type[BaseModel], name: str, value: Any, kind: str, message: str) -> None:
    # raised with the field's location, so that the 400 names it (a ValueError here would not)
    error = PydanticCustomError(kind, message)
    details = InitErrorDetails(type=error, loc=(name,), input=value)
    raise ValidationError.from_exception_data(model.__name__, [details])


@cache
def _typed_fields(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names (and aliases) of ``model``'s number fields (no booleans there), then of its boolean fields."""
    numbers: list[str] = []
    flags: list[str] = []
    for name, field in model.model_fields.items():
        if _only(field.annotation, (int, float)):
            names = numbers
        elif _only(field.annotation, (bool,)):
            names = flags
        else:
            continue
        names.append(name)
        alias = field.validation_alias
        if isinstance(alias, str):
            names.append(alias)
        elif isinstance(alias, AliasChoices):
            names.extend(a for a in alias.choices if isinstance(a, str))
    return tuple(dict.fromkeys(numbers)), tuple(dict.fromkeys(flags))


def _only(annotation: Any, types: tuple[type, ...]) -> bool:
    """Whether a field takes only values of ``types`` (optional or annotated)."""
    if get_origin(annotation) is Annotated:
        return _only(get_args(annotation)[0], types)
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not NoneType]
        return bool(members) and all(_only(a, types) for a in members)
    return annotation in types

"""The base of every request model: numbers are numbers, as the OpenAPI schema says.

pydantic's lax mode reads JSON ``true``/``false`` as 1/0 for an int or float field, so
``"seed": true`` was accepted as seed 1 while the schema (``integer``) says it is invalid. A
number field now refuses a boolean with a 400 naming it. (Numbers written as strings stay
accepted: multipart forms carry every field as text.)
"""

from __future__ import annotations

from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

#: The largest seed a request may send: int64 less its top 1023 values. JSON numbers often
#: travel as doubles (and OpenAPI documents bounds as doubles): 2**63 - 1 as a double is 2**63,
#: out of range; this is the largest double below it, so every reader agrees on the bound.
SEED_MAX = 2**63 - 1024


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _number_fields(cls):
                value = data.get(name)
                if isinstance(value, bool):
                    # raised with the field's location, so that the 400 names it (a ValueError here would not)
                    error = PydanticCustomError("number_type", "expected a number, not true or false")
                    details = InitErrorDetails(type=error, loc=(name,), input=value)
                    raise ValidationError.from_exception_data(cls.__name__, [details])
        return data


@cache
def _number_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The names (and aliases) under which ``model`` takes a number and not a boolean."""
    names: list[str] = []
    for name, field in model.model_fields.items():
        if not _numbers_only(field.annotation):
            continue
        names.append(name)
        alias = field.validation_alias
        if isinstance(alias, str):
            names.append(alias)
        elif isinstance(alias, AliasChoices):
            names.extend(a for a in alias.choices if isinstance(a, str))
    return tuple(dict.fromkeys(names))


def _numbers_only(annotation: Any) -> bool:
    """Whether a field takes numbers (int, float, optional or annotated) and not booleans."""
    if get_origin(annotation) is Annotated:
        return _numbers_only(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        members = [a for a in get_args(annotation) if a is not NoneType]
        return bool(members) and all(_numbers_only(a) for a in members)
    return annotation in (int, float)

"""Pydantic models of POST /v1/embeddings: OpenAI's shape plus image inputs.

``input`` is OpenAI's: a string, a list of strings, a list of token ids (one tokenized input)
or a list of such lists. mmserve also takes, as items of the list, content parts in the chat
shape (``{"type": "text", "text"}``, ``{"type": "image_url", "image_url": {"url"}}``) and, as
Jina's and other multimodal embedding APIs send them, ``{"text": ...}`` / ``{"image": url}``.
Images are embedded by CLIP-style cards (``capabilities.vision``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from mmserve.api.errors import validation_error
from mmserve.api.jsonbody import RequestModel
from mmserve.api.openapi import IMAGE_URL_PATTERN, not_empty
from mmserve.api.unicode import refuse_lone_surrogates
from mmserve.errors import InvalidRequestError


class _Model(RequestModel):
    model_config = ConfigDict(extra="ignore")


class ImageURL(_Model):
    url: str = Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})
    detail: Literal["auto", "low", "high"] = "auto"


# The schemas say how _item_kind reads an item: by its "type"; without one, as an image when it
# has "image", else as text.
class TextItem(_Model):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"anyOf": [{"required": ["type"]}, {"not": {"required": ["image"]}}]}
    )

    type: Literal["text"] = "text"
    text: str = Field(json_schema_extra={"minLength": 1})  # refused by read_inputs, naming the item


class ImageItem(_Model):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["type", "image_url"]})

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _bare_string(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


_IMAGE_TYPE = {"type": {"const": "image"}}


class BareImageItem(_Model):
    """``{"image": "https://... | data:image/..."}`` (Jina, Cohere-style multimodal embedding inputs)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=lambda s: s["properties"].update(_IMAGE_TYPE))

    image: str = Field(json_schema_extra={"pattern": IMAGE_URL_PATTERN})


def _item_kind(v: Any) -> str | None:
    if not isinstance(v, dict):
        return None
    if "type" in v:
        return str(v["type"])
    return "image" if "image" in v else "text"


Part = Annotated[
    Annotated[TextItem, Tag("text")] | Annotated[ImageItem, Tag("image_url")] | Annotated[BareImageItem, Tag("image")],
    Discriminator(
        _item_kind,
        custom_error_type="invalid_input_item",
        custom_error_message="an input item must be a string, a list of token ids, "
        '{"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}}',
    ),
]
InputItem = StrictStr | list[StrictInt] | Part
_PART: TypeAdapter[Any] = TypeAdapter(Part)


class EmbeddingRequest(_Model):
    model: str = Field(min_length=1)
    input: StrictStr | list[StrictInt] | list[InputItem] = Field(
        description="A string, a list of strings, token ids, lists of token ids, or text / image_url items.",
        json_schema_extra=not_empty,
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, description="Cut vectors to this length (cards permitting).")
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        refuse_lone_surrogates(data)  # raised as is (not a ValueError): a 400 naming the exact field
        return data

    @field_validator("input", mode="wrap")
    @classmethod
    def _input(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(v, list) and not v:
            raise InvalidRequestError("'input' must hold at least one item.", param="input")
        try:
            return handler(v)
        except ValidationError as e:  # the union's errors name every member: say which item is wrong and why
            raise _diagnose(v, e) from None


_KINDS = (
    'a string, a list of token ids, {"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}}'
)


def _diagnose(value: Any, error: ValidationError) -> InvalidRequestError:
    """The first bad item of ``input``, named, with what an item may be."""
    if not isinstance(value, list):
        return InvalidRequestError(f"'input' must be a string or a list of items: {_KINDS}.", param="input")
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        return InvalidRequestError("'input' holds a number that is not a token id (an integer).", param="input")
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if isinstance(item, str):
            continue
        if isinstance(item, list):
            if all(isinstance(t, int) and not isinstance(t, bool) for t in item):
                continue
            return InvalidRequestError(f"'{param}' must be a list of token ids (integers).", param=param)
        if isinstance(item, dict):
            try:
                _PART.validate_python(item)
                continue
            except ValidationError as e:
                errors = [{**err, "loc": ("input", i, *err["loc"][1:])} for err in e.errors()]
                return validation_error(errors)
        return InvalidRequestError(f"'{param}' must be {_KINDS}.", param=param)
    return validation_error(error.errors())

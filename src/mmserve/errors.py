"""The one exception tree of mmserve and the OpenAI error envelope it renders to.

Every layer (catalog, media, runtime, engines, services) raises these; only
:mod:`mmserve.api.errors` turns them into HTTP. The envelope is always
``{"error": {"message", "type", "param", "code"}}``. This module imports nothing from mmserve
and no web framework, so the lowest layers can raise without importing upwards.

    MMServeError (500 server_error; message never shows internals)
    ├── InvalidRequestError      400 invalid_request_error  (param names the field)
    │   ├── ModelCapabilityError 400 e.g. images sent to a text-only card
    │   └── ContextLengthError   400 prompt + max_tokens beyond the context
    ├── AuthenticationError      401 authentication_error
    ├── PermissionDeniedError    403 permission_error
    ├── NotFoundError            404 not_found_error
    │   └── ModelNotFoundError   404 model_not_found
    ├── RequestTimeoutError      408 request_timeout        (a client too slow to send its request)
    ├── PayloadTooLargeError     413 request_too_large
    ├── UnsupportedMediaError    415 unsupported_media_type
    ├── MediaFetchError          422 media_fetch_error      (reason: private address, timeout, ...)
    ├── RateLimitError           429 rate_limit_exceeded    (Retry-After)
    ├── OverloadedError          503 overloaded             (Retry-After)
    ├── EngineError              500 engine_error           (message is generic to the client)
    └── EngineUnavailableError   503 model_unavailable      (missing extra, bad weights, not loadable)
        └── UpstreamError        502 upstream_error         (a third-party provider failed; it is named)
            └── UpstreamTimeoutError 504 upstream_timeout

Values a client sent are echoed clipped (:func:`clip`), and every message and ``param`` is
bounded here whatever its source: a 3 MB model name is never sent back whole.
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_CHARS = 2000
MAX_PARAM_CHARS = 300


def clip(value: object, limit: int = 120) -> str:
    """A client's value as it may be echoed: at most ``limit`` characters, saying how long it was."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def _bounded(text: str, limit: int) -> str:
    """``text`` cut in the middle past ``limit`` (a message's end holds the fix: it is kept)."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 4
    return f"{text[:head]} [... {len(text) - head - tail} characters ...] {text[-tail:]}"


class MMServeError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None
    #: Whether ``message`` may be shown to the client as-is.
    public: bool = True
    #: A condition the server expects under load or by configuration (503 overloaded, model
    #: unavailable), not a bug: logged as a one-line warning, never with a traceback.
    expected: bool = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = _bounded(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.param = _bounded(param, MAX_PARAM_CHARS) if param is not None else None
        self.code = code or self.default_code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        message = self.message if self.public else "The server failed to process the request."
        return {"error": {"message": message, "type": self.error_type, "param": self.param, "code": self.code}}


class InvalidRequestError(MMServeError):
    status_code = 400
    error_type = "invalid_request_error"


class ModelCapabilityError(InvalidRequestError):
    default_code = "model_capability"


class ContextLengthError(InvalidRequestError):
    default_code = "context_length_exceeded"


class AuthenticationError(MMServeError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(MMServeError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFoundError(MMServeError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str, *, param: str = "model") -> None:
        super().__init__(
            f"The model '{clip(model)}' does not exist. GET /v1/models lists the models this server serves.",
            param=param,
        )


class RequestTimeoutError(MMServeError):
    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class PayloadTooLargeError(MMServeError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class UnsupportedMediaError(MMServeError):
    status_code = 415
    error_type = "invalid_request_error"
    default_code = "unsupported_media_type"


class MediaFetchError(MMServeError):
    status_code = 422
    error_type = "invalid_request_error"
    default_code = "media_fetch_error"


class RateLimitError(MMServeError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class OverloadedError(MMServeError):
    status_code = 503
    error_type = "server_error"
    default_code = "overloaded"
    expected = True


class EngineError(MMServeError):
    """A model library failed. The client sees a generic message; the log has the cause."""

    status_code = 500
    error_type = "server_error"
    default_code = "engine_error"
    public = False


class EngineUnavailableError(MMServeError):
    status_code = 503
    error_type = "server_error"
    default_code = "model_unavailable"
    expected = True


class UpstreamError(EngineUnavailableError):
    """A third-party provider behind an upstream card failed: unreachable, refused mmserve's key, answered
    5xx or something unreadable. The message names the provider, never its key or its raw answer; routers
    fall back from it like from any unavailable model."""

    status_code = 502
    default_code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    default_code = "upstream_timeout"


def error_body(exc: BaseException) -> dict[str, Any]:
    """The OpenAI envelope for any exception (internal ones become a generic 500)."""
    if isinstance(exc, MMServeError):
        return exc.to_dict()
    return EngineError("internal error").to_dict()


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def is_member_tag(part: Any) -> bool:
    """Whether a location segment is a union member's tag pydantic inserted (``str``, ``list[...]``,
    ``function-after[...]``, ``constrained-str`` for an ``Annotated[str, Field(min_length=1)]``),
    not a key the client sent."""
    return isinstance(part, str) and ("[" in part or part in _TYPE_TAGS or part.startswith("constrained-"))


def format_loc(loc: list[Any] | tuple[Any, ...]) -> str:
    """``["messages", 0, "content", 1]`` -> ``messages[0].content[1]``.

    Pydantic inserts union-member tags (:func:`is_member_tag`) into locations; they mean nothing
    to the client and are dropped.
    A tagged union adds the tag too (``content[1].image_url.image_url.url``): a name repeated
    at once is given once.
    """
    out = ""
    last = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            last = None
            continue
        part = str(part)
        if is_member_tag(part) or part == last:
            continue
        out += f".{part}" if out else part
        last = part
    return out

"""The one exception tree of mmserve and its mapping to the OpenAI error envelope.

Every layer (catalog, media, runtime, engines, services) raises these; only this module
turns them into HTTP. The envelope is always
``{"error": {"message", "type", "param", "code"}}``.

    MMServeError (500 server_error; message never shows internals)
    ├── InvalidRequestError      400 invalid_request_error  (param names the field)
    │   ├── ModelCapabilityError 400 e.g. images sent to a text-only card
    │   └── ContextLengthError   400 prompt + max_tokens beyond the context
    ├── AuthenticationError      401 authentication_error
    ├── PermissionDeniedError    403 permission_error
    ├── NotFoundError            404 not_found_error
    │   └── ModelNotFoundError   404 model_not_found
    ├── PayloadTooLargeError     413 request_too_large
    ├── UnsupportedMediaError    415 unsupported_media_type
    ├── MediaFetchError          422 media_fetch_error      (reason: private address, timeout, ...)
    ├── RateLimitError           429 rate_limit_exceeded    (Retry-After)
    ├── OverloadedError          503 overloaded             (Retry-After)
    └── EngineError              500 engine_error           (message is generic to the client)
        └── EngineUnavailableError 503 model not loadable (missing extra, bad weights)

Importable without FastAPI: the HTTP handlers are installed by :func:`install_handlers`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

log = logging.getLogger("mmserve.errors")
#: FastAPI's HTTPException detail for a body its JSON decoder failed on for a reason other than syntax.
FASTAPI_BODY_ERROR = "There was an error parsing the body"


class MMServeError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None
    #: Whether ``message`` may be shown to the client as-is.
    public: bool = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
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
            f"The model '{model}' does not exist. GET /v1/models lists the models this server serves.",
            param=param,
        )


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


def error_body(exc: BaseException) -> dict[str, Any]:
    """The OpenAI envelope for any exception (internal ones become a generic 500)."""
    if isinstance(exc, MMServeError):
        return exc.to_dict()
    return EngineError("internal error").to_dict()


def install_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    async def on_mmserve(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MMServeError)
        if exc.status_code >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message, exc_info=exc.__cause__ or exc)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _json(validation_error(exc.errors()))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        err: MMServeError
        if exc.status_code == 404:
            err = NotFoundError("No such route. See /docs for the API.")
        elif exc.status_code == 405:
            err = InvalidRequestError("Method not allowed on this route.", code="method_not_allowed")
            err.status_code = 405
        elif exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:  # not JSON FastAPI could decode
            err = InvalidRequestError(
                "The request body is not valid JSON (it must be UTF-8 text nested less than ~1000 levels deep).",
                code="invalid_json",
            )
        elif exc.status_code == 413:
            err = PayloadTooLargeError(
                "The request body is larger than the server's limit (MMSERVE_LIMITS__MAX_REQUEST_BYTES)."
            )
        else:
            err = InvalidRequestError(str(exc.detail))
            err.status_code = exc.status_code
        return JSONResponse(err.to_dict(), status_code=err.status_code, headers=dict(exc.headers or {}))

    async def on_disconnect(_: Request, exc: Exception) -> Response:
        # The client went away (or the body cap answered 413 and cut the body): nobody to answer.
        return Response(status_code=400)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body(exc), status_code=500)

    app.add_exception_handler(MMServeError, on_mmserve)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_unexpected)


def _json(err: MMServeError) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(err.to_dict(), status_code=err.status_code, headers=err.headers)


def validation_error(errors: Any) -> InvalidRequestError:
    """Turn pydantic's error list into one 400 naming the first bad field (``messages[0].content``)."""
    errs = list(errors)
    if not errs:
        return InvalidRequestError("The request is invalid.")
    # A union (e.g. content: str | list[part]) reports one error per member; the deepest
    # location is the one that points at what the client actually got wrong.
    first = max(errs, key=lambda e: len(format_loc(_strip(e.get("loc", ())))))
    param = format_loc(_strip(first.get("loc", ())))
    kind = first.get("type", "")
    if kind == "json_invalid":
        return InvalidRequestError("The request body is not valid JSON.", param=None, code="invalid_json")
    if not param and kind == "missing":
        return InvalidRequestError("The request needs a JSON body.", code="invalid_body")
    if not param and kind in ("model_attributes_type", "model_type", "dict_type"):
        return InvalidRequestError(
            "The request body must be a JSON object, sent with 'Content-Type: application/json'.", code="invalid_body"
        )
    if not param:  # a check of the request as a whole
        msg = f"{_clean_msg(first.get('msg', 'invalid request'))}."
    elif kind == "missing":
        msg = f"'{param}' is required."
    elif kind == "extra_forbidden":
        msg = f"'{param}' is not a recognised field."
    else:
        msg = f"Invalid value for '{param}': {_clean_msg(first.get('msg', 'invalid value'))}."
    if len(errs) > 1:
        msg += f" ({len(errs) - 1} more problem{'s' if len(errs) > 2 else ''} in the request.)"
    return InvalidRequestError(msg, param=param or None, code="invalid_value")


def _strip(loc: Any) -> list[Any]:
    return [p for p in loc if p not in ("body", "query", "path", "header")]


def format_loc(loc: list[Any] | tuple[Any, ...]) -> str:
    """``["messages", 0, "content", 1]`` -> ``messages[0].content[1]``.

    Pydantic inserts union-member tags (``function-after[...]``, ``str``, ``list[...]``) into
    locations; they mean nothing to the client and are dropped.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        if "[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"}:
            continue
        out += f".{part}" if out else part
    return out


def _clean_msg(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.rstrip(".")

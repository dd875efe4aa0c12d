"""The HTTP side of :mod:`mmserve.errors`: exception handlers and pydantic validation errors as envelopes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mmserve.api.jsonerrors import invalid_json, unknown_route
from mmserve.errors import (
    InvalidRequestError,
    MMServeError,
    PayloadTooLargeError,
    error_body,
    format_loc,
    is_member_tag,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

log = logging.getLogger("mmserve.errors")
#: FastAPI's HTTPException detail for a body its JSON decoder failed on for a reason other than syntax.
FASTAPI_BODY_ERROR = "There was an error parsing the body"


def install_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    async def on_mmserve(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MMServeError)
        log_failure(log, exc, "request")
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _json(validation_error(exc.errors(), body=getattr(exc, "body", None)))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        err: MMServeError
        if exc.status_code == 404:
            err = unknown_route(request.method, request.url.path, request.app.openapi().get("paths", {}))
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


def log_failure(logger: logging.Logger, exc: BaseException, what: str) -> None:
    """Log a request (or stream) that failed, at the level its kind deserves.

    Client errors (4xx) are not logged; expected server conditions (503 overloaded, model
    unavailable: ``MMServeError.expected``) are one-line warnings; anything else is an error
    with its traceback (an internal exception, or an engine's failure and its cause).
    """
    if not isinstance(exc, MMServeError):
        logger.error("%s failed", what, exc_info=exc)
    elif exc.expected:
        logger.warning("%s answered %d %s: %s", what, exc.status_code, exc.code, exc.message)
    elif exc.status_code >= 500:
        logger.error("%s failed: %s", what, exc.message, exc_info=exc.__cause__ or exc)


def _json(err: MMServeError) -> JSONResponse:
    from fastapi.responses import JSONResponse

    return JSONResponse(err.to_dict(), status_code=err.status_code, headers=err.headers)


def validation_error(errors: Any, *, body: Any = None) -> InvalidRequestError:
    """Turn pydantic's error list into one 400 naming the first bad field (``messages[0].content``).

    ``body``: the input that was validated, which lets the location drop the tags pydantic
    inserts for discriminated unions (see :func:`untag_loc`); or the request's text, when
    FastAPI kept it (for the position of a JSON syntax error).
    """
    errs = list(errors)
    if not errs:
        return InvalidRequestError("The request is invalid.")

    def loc_of(e: Any) -> list[Any]:
        return untag_loc(_strip(e.get("loc", ())), body)

    # A union (e.g. content: str | list[part]) reports one error per member; the deepest
    # location is the one that points at what the client actually got wrong.
    first = max(errs, key=lambda e: len(format_loc(loc_of(e))))
    param = format_loc(loc_of(first))
    kind = first.get("type", "")
    if kind == "json_invalid":
        loc = first.get("loc", ())
        pos = loc[-1] if loc and isinstance(loc[-1], int) else None
        reason = str((first.get("ctx") or {}).get("error", ""))
        return invalid_json(reason, pos, body if isinstance(body, str) else None)
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


def untag_loc(loc: list[Any], data: Any) -> list[Any]:
    """``loc`` without the tags pydantic inserts for discriminated unions, found by walking ``data``.

    For ``{"type": "image_url", "image_url": {"detail": "ultra"}}`` pydantic reports
    ``image_url, image_url, detail``: the first segment is the union's tag (the value of the
    part's ``type``), not a key. A segment equal to a string value of the object at hand may be
    such a tag; it is dropped only when the location then fits the input and does not fit it
    otherwise (every step but the last is a key or index that exists). Member tags such as
    ``str`` or ``list[...]`` (:func:`~mmserve.errors.is_member_tag`, dropped later by ``format_loc``)
    are kept and not walked.
    """
    if data is None:
        return list(loc)
    found = _fit(list(loc), data, drop_ok=True)
    return found if found is not None else list(loc)


def _fit(loc: list[Any], data: Any, *, drop_ok: bool) -> list[Any] | None:
    """``loc`` (with at most one tag dropped per object) if it fits ``data``, else None."""
    if not loc:
        return []
    part, rest = loc[0], loc[1:]
    if is_member_tag(part):
        tail = _fit(rest, data, drop_ok=drop_ok)
        return None if tail is None else [part, *tail]
    if not rest:  # the last step: its parent must be something that has keys or indices
        return [part] if isinstance(data, dict | list) else None
    if isinstance(data, dict) and isinstance(part, str) and part in data:
        tail = _fit(rest, data[part], drop_ok=True)
        if tail is not None:
            return [part, *tail]
    if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
        tail = _fit(rest, data[part], drop_ok=True)
        if tail is not None:
            return [part, *tail]
    if drop_ok and isinstance(data, dict) and part in {v for v in data.values() if isinstance(v, str)}:
        return _fit(rest, data, drop_ok=False)  # the union's tag: the same object goes on
    return None


def _strip(loc: Any) -> list[Any]:
    return [p for p in loc if p not in ("body", "query", "path", "header")]


def _clean_msg(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.rstrip(".")

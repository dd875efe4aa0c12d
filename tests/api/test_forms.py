"""Starlette's refusals of a multipart form, in mmserve's words (api/forms.py), on a real Starlette form parse."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mmserve.api.forms import form_error


async def _endpoint(request: Request) -> JSONResponse:
    try:
        await request.form(max_files=1, max_fields=3, max_part_size=1024)
    except HTTPException as e:
        err = form_error(str(e.detail), files="one 'file'", file_param="file", max_fields=3, max_field_bytes=1024)
        return JSONResponse(err.to_dict(), status_code=err.status_code)
    return JSONResponse({})


CLIENT = TestClient(Starlette(routes=[Route("/", _endpoint, methods=["POST"])]))


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "words"),
    [
        ({"files": [("file", ("a.wav", b"x")), ("file", ("b.wav", b"y"))]}, 400, "too_many_files", "send one 'file'"),
        ({"files": [("x", (None, str(i))) for i in range(4)]}, 400, "too_many_fields", "at most 3"),
        ({"files": [("x", (None, "a" * 2000))]}, 413, "field_too_large", "larger than 1 KiB"),
        (
            {
                "content": b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
                "headers": {"content-type": "multipart/form-data; boundary=b"},
            },
            400,
            "invalid_multipart",
            "malformed",
        ),
    ],
)
def test_each_refusal_has_its_code_and_names_the_limit(kwargs: dict, status: int, code: str, words: str) -> None:
    r = CLIENT.post("/", **kwargs)
    err = r.json()["error"]
    assert (r.status_code, err["code"]) == (status, code) and words in err["message"], r.text
    assert "Maximum number" not in err["message"]  # not Starlette's sentence

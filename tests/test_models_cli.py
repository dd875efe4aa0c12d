"""`mmserve models --url`: a server that cannot be asked is a one-line error, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmserve.models_cli import models_command
from mmserve.settings import Settings
from tests.helpers.httpserver import TargetServer
from tests.helpers.server import free_port


@pytest.fixture
def not_mmserve() -> Iterator[TargetServer]:
    server = TargetServer().start()
    server.routes["/v1/models"] = (200, {"Content-Type": "text/html"}, b"<html>a web page</html>")
    yield server
    server.stop()


def test_unreachable_or_foreign_servers_are_clear_errors(
    not_mmserve: TargetServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{not_mmserve.port}"):
        assert models_command(Settings(), as_json=False, url=url, key=None) == 1
        err = capsys.readouterr().err
        assert url in err and "Traceback" not in err

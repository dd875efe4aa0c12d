"""A loopback HTTP server that serves fixed routes and counts every request it receives.

It stands in for the web servers that image URLs point at (friendly or hostile). It binds
an IPv4 or IPv6 loopback address (``"::1"``), on a free port or a given one, so that tests
can run targets on 127.0.0.1 and 127.0.0.2 at the same port (DNS-rebinding proofs), over
plain HTTP or TLS (``tls``: a server-side SSL context).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class TargetServer:
    """Routes map a path to (status, headers, body) or to a callable returning that.

    A route whose headers hold ``"X-Test-Delay": "<seconds>"`` waits that long before
    answering; one with ``"X-Test-Stream": "<n>"`` sends its body ``n`` times without a
    Content-Length (streamed until the connection closes).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route | Callable[[], Route]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.requests.append((self.path, dict(self.headers)))
                route = outer.routes.get(self.path)
                if route is None:
                    status, headers, body = 404, {}, b"not found"
                else:
                    status, headers, body = route() if callable(route) else route
                headers = dict(headers)
                delay = float(headers.pop("X-Test-Delay", 0))
                repeat = int(headers.pop("X-Test-Stream", 0))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if repeat:
                        self.send_header("Connection", "close")
                    elif "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for _ in range(repeat or 1):
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (that is often the point of the test)
                if repeat:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        server_cls = _Server6 if ":" in host else _Server
        self.httpd = server_cls((host, port), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self.host = host
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [p for p, _ in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> TargetServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> TargetServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

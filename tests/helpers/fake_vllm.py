"""A stand-in for vLLM's server process, for the supervisor's tests: `python fake_vllm.py --uds PATH [--sick FILE]`.

Like vLLM's API server it listens on a unix socket, answers ``/health``, and has a child
process in its process group (vLLM's EngineCore) that outlives it when it is killed. ``/health``
answers 503 while the ``--sick`` file exists; ``/metrics`` serves two of vLLM's gauges, or 500
while the ``--metrics-broken`` file exists. It prints a line first, as servers do.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socketserver
import subprocess
import sys
from pathlib import Path

METRICS = (
    b'vllm:num_requests_running{engine="0",model_name="fake"} 3.0\n'
    b'vllm:num_requests_waiting{engine="0",model_name="fake"} 2.0\n'
)


class Handler(http.server.BaseHTTPRequestHandler):
    sick: Path | None = None
    metrics_broken: Path | None = None

    def do_GET(self) -> None:
        body = b""
        if self.path == "/health":
            status = 503 if self.sick is not None and self.sick.exists() else 200
        elif self.path == "/metrics":
            broken = self.metrics_broken is not None and self.metrics_broken.exists()
            status, body = (500, b"") if broken else (200, METRICS)
        else:
            status = 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uds", required=True)
    parser.add_argument("--sick")
    parser.add_argument("--metrics-broken", help="/metrics answers 500 while this file exists")
    parser.add_argument("--fail", help="print this and exit 1 instead of serving")
    args = parser.parse_args()
    print(f"fake vLLM starting (pid {os.getpid()})", flush=True)
    if args.fail:
        print(args.fail, flush=True)
        sys.exit(1)
    Handler.sick = Path(args.sick) if args.sick else None
    Handler.metrics_broken = Path(args.metrics_broken) if args.metrics_broken else None
    # the "engine process": a child that does not die with its parent
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with Server(args.uds, Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()

"""A stand-in for vLLM's server process, for the supervisor's tests: `python fake_vllm.py --uds PATH [--sick FILE]`.

Like vLLM's API server it listens on a unix socket, answers ``/health``, and has a child
process in its process group (vLLM's EngineCore) that outlives it when it is killed. ``/health``
answers 503 while the ``--sick`` file exists. It prints a line first, as servers do.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socketserver
import subprocess
import sys
from pathlib import Path


class Handler(http.server.BaseHTTPRequestHandler):
    sick: Path | None = None

    def do_GET(self) -> None:
        status = 503 if self.sick is not None and self.sick.exists() else 200
        self.send_response(status if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uds", required=True)
    parser.add_argument("--sick")
    parser.add_argument("--fail", help="print this and exit 1 instead of serving")
    args = parser.parse_args()
    print(f"fake vLLM starting (pid {os.getpid()})", flush=True)
    if args.fail:
        print(args.fail, flush=True)
        sys.exit(1)
    Handler.sick = Path(args.sick) if args.sick else None
    # the "engine process": a child that does not die with its parent
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with Server(args.uds, Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()

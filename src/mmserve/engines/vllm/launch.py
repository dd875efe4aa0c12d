"""``python -m mmserve.engines.vllm.launch PARENT_PID PROGRAM [ARGS...]``: become PROGRAM, dying with mmserve.

The vLLM server runs three processes (API server, EngineCore, Worker) holding gigabytes. If
mmserve is killed (SIGKILL, OOM), nothing would stop them. This launcher asks Linux to send
the server SIGTERM when the mmserve thread that started it ends (``PR_SET_PDEATHSIG``, which
survives ``exec``), then execs the server in its place, so the server keeps this pid. On
SIGTERM the API server stops its EngineCore and Worker itself. ``subprocess.Popen``'s
``preexec_fn`` could do the same but is unsafe in a process with threads, as mmserve is.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m mmserve.engines.vllm.launch PARENT_PID PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    parent, program = int(argv[0]), argv[1:]
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            print(f"prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        if os.getppid() != parent:  # mmserve died before the request took effect
            return 1
    os.execv(program[0], program)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

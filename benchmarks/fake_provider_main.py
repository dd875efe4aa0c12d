"""Run the loopback fake OpenAI-compatible provider (tests/helpers/fake_provider.py) in its own process.

python benchmarks/fake_provider_main.py --port 9911 --key sk-upstream
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.fake_provider import FakeProvider


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", default="sk-upstream")
    args = p.parse_args()
    provider = FakeProvider(key=args.key)
    provider.requests = _Discard()  # a long benchmark must not accumulate every request body
    uvicorn.run(provider.server.app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


class _Discard(list):  # type: ignore[type-arg]
    def append(self, _item: object) -> None:
        pass


if __name__ == "__main__":
    main()

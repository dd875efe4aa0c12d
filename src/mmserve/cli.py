"""The ``mmserve`` command: serve | models | keys | db | demo | vllm-venv."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from mmserve.catalog.loader import CatalogError, load_catalog
from mmserve.settings import Settings

SETTINGS_FLAGS = ("host", "port", "data_dir", "config", "device", "log_level")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmserve", description="Self-hosted OpenAI-compatible multimodal server.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path, help="where models, artifacts and the database live")
    serve.add_argument("--config", type=Path, help="catalog YAML (default: the demo catalog)")
    serve.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    models = sub.add_parser("models", help="validate a catalog and list its models")
    models.add_argument("--config", type=Path)
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument("--url", help="a running server (e.g. http://127.0.0.1:8000): adds live deployment state")
    models.add_argument("--key", help="API key for --url when the server has auth on")

    demo = sub.add_parser("demo", help="build the demo models into the data directory (no serving)")
    demo.add_argument("--data-dir", type=Path)

    vllm = sub.add_parser("vllm-venv", help="make a virtualenv with vLLM for `engine: vllm` cards (options.python)")
    from mmserve.engines.vllm.venv import add_arguments as vllm_arguments

    vllm_arguments(vllm)

    keys = sub.add_parser("keys", help="create, list and revoke API keys (stored hashed in the database)")
    keys.add_argument("--data-dir", type=Path)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; its secret is printed once")
    create.add_argument("--name", default="")
    create.add_argument("--models", help="comma-separated model ids the key may use (default: all)")
    create.add_argument("--rpm", type=_per_minute, help="requests per minute (0: none)")
    create.add_argument("--tpm", type=_per_minute, help="tokens per minute (0: none)")
    create.add_argument("--admin", action="store_true", help="may read every key's usage")
    create.add_argument(
        "--expires-in", type=_duration, help="lifetime, e.g. 30d, 12h, 90m, 3600s, 2w (default: never expires)"
    )
    listing = keys_sub.add_parser("list", help="list active keys (never their secrets)")
    listing.add_argument("--json", action="store_true")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")

    db = sub.add_parser("db", help="the SQL schema: apply migrations (MMSERVE_DATABASE_URL, or SQLite in the data dir)")
    db.add_argument("--data-dir", type=Path)
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration (also done at each start)")
    db_sub.add_parser("current", help="print the schema's migration revision")

    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k in SETTINGS_FLAGS and v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        _settings_errors(e)
        return 2
    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "models":
            from mmserve.models_cli import models_command

            return models_command(settings, as_json=args.json, url=args.url, key=args.key)
        if args.command == "demo":
            return _demo(settings)
        if args.command == "vllm-venv":
            from mmserve.engines.vllm.venv import run as vllm_venv

            return vllm_venv(args)
        if args.command == "keys":
            from mmserve.keys_cli import keys_command

            return asyncio.run(keys_command(settings, args))
        if args.command == "db":
            return asyncio.run(_db(settings, args.db_command))
    except CatalogError as e:
        Console(stderr=True).print(f"[red]catalog error:[/red] {e}", highlight=False)
        return 2
    return 1


def _settings_errors(error: ValidationError) -> None:
    """One line per bad setting, named as the operator sets it (``MMSERVE_CLUSTER__ADDRESS``), not a traceback."""
    console = Console(stderr=True)
    for item in error.errors():
        name = "MMSERVE_" + "__".join(str(part) for part in item["loc"]).upper()
        message = item["msg"].removeprefix("Value error, ")
        console.print(f"[red]settings error:[/red] {name}: {message}", highlight=False, soft_wrap=True)


def _per_minute(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative: give a count per minute (0 switches the key off)")
    return n


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(value: str) -> float:
    """``30d`` -> seconds (units s, m, h, d, w; a bare number is seconds)."""
    text = value.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a duration: write e.g. 30d, 12h, 90m or 3600s") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"'{value}' must be a positive duration")
    return seconds


async def _db(settings: Settings, command: str) -> int:
    from mmserve.db import Database

    db = Database.from_settings(settings)
    try:
        if command == "upgrade":
            before = await db.revision()
            after = await db.upgrade()
            print(f"schema at {after}" + (f" (was {before})" if before != after else " (up to date)"))
        else:
            print(await db.revision() or "none")
        return 0
    finally:
        await db.dispose()


def _serve(settings: Settings) -> int:
    from mmserve import heap

    heap.pause()  # no full collections while the server imports and loads; the runtime then freezes its heap
    import uvicorn
    from rich.logging import RichHandler

    from mmserve.api.boot import Booting
    from mmserve.api.server import uvicorn_config
    from mmserve.progress import StartupProgress

    # mmserve shows its own start-up progress; the model libraries' bars and advisories are noise here
    for var, value in (
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("DIFFUSERS_VERBOSITY", "error"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(var, value)
    # (diffusers reads no environment variable for its loading bar: its engines switch it off when they
    # load, not here, where importing diffusers, and torch with it, kept the server from listening for seconds)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(show_path=False)],
    )
    # httpx logs every request it sends at INFO: one line per proxied chat request (vLLM, upstream
    # providers) and per health check. Rendered by rich, that was a fifth of the CPU mmserve spent
    # on a request to vLLM (py-spy, benchmarks/engines.py); the access log already has the request.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    catalog = load_catalog(settings.config)  # a bad card fails here, before anything starts
    progress = StartupProgress(enabled=settings.progress)
    apps: list[Any] = []  # the FastAPI app, once built

    def build() -> Any:
        """The app: imported and built in a thread while the server already answers the probes (api/boot.py)."""
        from mmserve.api.app import create_app

        apps.append(create_app(settings, catalog, progress=progress))
        return apps[0]

    def failed() -> None:
        server.should_exit = True

    # what the runtime will load at start (Deployment.min_loaded), shown as loading until the app reports
    kept = {c.id for c in catalog if c.deployment.mode == "dedicated" or c.deployment.min_replicas > 0}
    if not settings.load_on_start:
        kept = set()
    booting = Booting(
        build,
        models={c.id: "loading" if c.id in kept else "idle" for c in catalog},
        auth=settings.auth,
        on_failure=failed,
    )
    server = uvicorn.Server(uvicorn_config(booting, settings))
    original_startup = server.startup
    began = time.monotonic()
    announcer: list[asyncio.Task[None]] = []  # held: the loop keeps only weak references to tasks

    async def announce_ready() -> None:
        """Models load after the server listens (/health answers meanwhile): say when /ready turns 200."""
        await booting.wait_started()
        if not apps or booting.failed:
            return
        runtime = apps[0].state.mm.runtime
        await runtime.wait_started()
        progress.done()
        missing = runtime.not_ready()
        log = logging.getLogger("mmserve")
        if missing:
            log.warning("started without %s (see above); /ready answers 503", ", ".join(missing))
        else:
            log.info("ready in %.1f s", time.monotonic() - began)

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets)
        announcer.append(asyncio.create_task(announce_ready()))

    original_shutdown = server.shutdown

    async def shutdown(sockets: Any = None) -> None:
        heap.ending()  # the process exits after the shutdown: the models' unloads need not collect the heap
        await original_shutdown(sockets)

    server.startup = startup  # type: ignore[method-assign]
    server.shutdown = shutdown  # type: ignore[method-assign]
    # Ctrl-C: uvicorn shuts down cleanly, then raises the signal again for its default action, which
    # in Python is a KeyboardInterrupt (a traceback after the shutdown); uvicorn.run catches it too
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 1 if booting.failed else 0


def _demo(settings: Settings) -> int:
    from mmserve.catalog.builders import BUILDERS, build_demo_model
    from mmserve.progress import StartupProgress

    progress = StartupProgress()
    for name in BUILDERS:
        build_demo_model(name, settings.models_dir, progress=progress)
    progress.done()
    print(f"demo models ready in {settings.models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`mmserve keys create|list|revoke`: API keys in the server's database (the same data dir or URL)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from mmserve.control.keys import KeyStore
from mmserve.db import Database
from mmserve.settings import Settings


async def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    db = Database.from_settings(settings)
    await db.upgrade()
    store = KeyStore(db)
    redis = None
    if settings.redis_url:  # a revocation reaches every gateway at once, not after their key caches expire
        from mmserve.control.redis_state import RedisState

        redis = RedisState(settings.redis_url, prefix=settings.redis_prefix)
        await redis.start(listen=False)
        store.on_revoke.append(redis.publish_revoked)
    try:
        if args.keys_command == "create":
            models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            key, secret = await store.create(
                args.name,
                models=models,
                requests_per_min=args.rpm,
                tokens_per_min=args.tpm,
                admin=args.admin,
                expires_in_s=args.expires_in,
            )
            print(
                json.dumps(
                    {
                        "id": key.id,
                        "key": secret,
                        "name": key.name,
                        "models": models,
                        "requests_per_min": key.requests_per_min,
                        "tokens_per_min": key.tokens_per_min,
                        "admin": key.admin,
                        "expires_at": key.expires_at,
                    }
                )
            )
            Console(stderr=True).print("Store the key now: only its hash is kept.", highlight=False)
            return 0
        if args.keys_command == "list":
            found = await store.list()
            if args.json:
                print(json.dumps([{**asdict(k), "prefix": k.prefix + "…"} for k in found], indent=2))
                return 0
            table = Table("id", "prefix", "name", "models", "rpm", "tpm", "admin", "created", "expires")
            for col in table.columns[:2]:
                col.no_wrap = True
            for k in found:
                table.add_row(
                    k.id,
                    k.prefix + "…",
                    k.name,
                    ",".join(k.models) if k.models else "all",
                    str(k.requests_per_min or "-"),
                    str(k.tokens_per_min or "-"),
                    "yes" if k.admin else "",
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created_at)),
                    _expiry(k.expires_at),
                )
            Console().print(table)
            return 0
        revoked = await store.revoke(args.key)
        if revoked is None:
            Console(stderr=True).print(f"No single active key matches '{args.key}'.", highlight=False)
            return 1
        print(f"revoked {revoked.id} ({revoked.prefix}…)")
        return 0
    finally:
        if redis is not None:
            await redis.stop()
        await db.dispose()


def _expiry(at: float | None) -> str:
    if at is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
    return f"{stamp} (expired)" if at <= time.time() else stamp

"""Alembic migrations: the migrated schema is the models', on SQLite and PostgreSQL; old databases are adopted."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import mmserve.api.responses.store
import mmserve.control.keys
import mmserve.control.usage
import mmserve.jobs.store  # noqa: F401 - registers the tables on Base
from mmserve.control.keys import KeyStore
from mmserve.db import Base, Database

HEAD = "0004"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("pg_url"))


def _schema_diff(conn) -> list:  # type: ignore[no-untyped-def]
    return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


async def test_migrated_schema_is_the_models_schema(url: str) -> None:
    db = Database(url)
    try:
        assert await db.revision() is None
        assert await db.upgrade() == HEAD
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
        assert await db.upgrade() == HEAD  # idempotent
    finally:
        await db.dispose()


async def test_a_database_made_before_migrations_is_adopted_and_keeps_its_rows(url: str) -> None:
    """As ``create_all`` left it: the baseline tables, no ``alembic_version``. Upgrading adds the rest."""
    db = Database(url)
    try:
        await db.upgrade("0001")
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.execute(
                text(
                    "INSERT INTO api_keys (id, hash, prefix, name, admin, created_at) "
                    "VALUES ('key_old', 'h', 'mms-old', 'old', false, 1.0)"
                )
            )
        assert await db.revision() is None
        assert await db.upgrade() == HEAD
        keys = await KeyStore(db).list()
        assert [(k.id, k.expires_at) for k in keys] == [("key_old", None)]
    finally:
        await db.dispose()


async def test_servers_starting_together_on_postgres_migrate_once(pg_url: str) -> None:
    """Four upgrades at once (four servers starting): the advisory lock lets one migrate, the others find it done."""
    dbs = [Database(pg_url) for _ in range(4)]
    try:
        assert await asyncio.gather(*(d.upgrade() for d in dbs)) == [HEAD] * 4
    finally:
        for d in dbs:
            await d.dispose()


def test_cli_db_upgrade_and_current(tmp_path: Path) -> None:
    def run(*args: str) -> str:
        cmd = [sys.executable, "-m", "mmserve.cli", "db", "--data-dir", str(tmp_path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout

    assert run("current").strip() == "none"
    assert run("upgrade").strip() == f"schema at {HEAD} (was None)"
    assert run("upgrade").strip() == f"schema at {HEAD} (up to date)"
    assert run("current").strip() == HEAD

"""The SQL database shared by durable features (video jobs now; API keys and usage later).

SQLAlchemy 2.x with the asyncio extension: SQLite in the data directory by default
(``sqlite+aiosqlite``), PostgreSQL by URL (``postgresql://...`` runs on asyncpg, or
``postgresql+psycopg://...`` on psycopg 3; both come with ``mmserve[postgres]``).

Why the async drivers rather than sync sessions in threads: every query is awaited on the
event loop without occupying the worker threads that run models and decode media, and
aiosqlite already runs each SQLite connection on its own thread, so a slow disk never
blocks the loop. Transactions are kept to one statement or a few, so SQLite's single
writer is held for microseconds.

SQLite is made safe for concurrent access (several sessions in this process, a CLI next to
the server, a restarted server while the old one is dying) with WAL journaling (readers
never block the writer), a busy timeout (a writer waits for the lock instead of failing),
``synchronous=NORMAL`` (durable at each WAL checkpoint, the recommended pairing with WAL) and
foreign keys on.

Tables are declared on :class:`Base` in their feature's module (``mmserve/jobs/store.py``,
``control/keys.py``, ``control/usage.py``, ``api/responses/store.py``); the schema is made and changed by the Alembic
migrations of :mod:`mmserve.migrations`, applied by :meth:`Database.upgrade` (``mmserve db
upgrade``, and at every start). On PostgreSQL, where several servers may start at once, the
upgrade runs under a transaction-scoped advisory lock: one server migrates, the others wait
and then find nothing to do. PostgreSQL's DDL is transactional, so a failed migration leaves
the schema as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from mmserve.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of schema upgrades ("mmserve" read as a number): any constant, shared by every server
UPGRADE_LOCK = 0x6D6D7365727665


class Base(DeclarativeBase):
    """The declarative base of every mmserve table."""


def database_url(settings: Settings) -> str:
    """The configured URL, or SQLite at ``<data_dir>/mmserve.db``."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite+aiosqlite:///{(settings.data_dir / 'mmserve.db').resolve()}"


def async_url(url: str) -> URL:
    """Pick the asyncio driver for a plain URL (``sqlite://`` -> aiosqlite, ``postgresql://`` -> asyncpg)."""
    parsed = make_url(url)
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    elif parsed.drivername == "postgresql+psycopg2":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 has an async mode; psycopg2 has not
    return parsed


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(database_url(settings))

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    async def upgrade(self, revision: str = "head") -> str | None:
        """Apply the migrations up to ``revision`` (idempotent); returns the schema's revision after."""
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            if self.url.get_backend_name() == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
            return await conn.run_sync(_upgrade, revision)

    async def revision(self) -> str | None:
        """The schema's current migration (None: a database no migration ran on)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    rev: str | None = MigrationContext.configure(connection).get_current_revision()
    return rev


def _upgrade(connection: Connection, revision: str) -> str | None:
    from alembic import command

    command.upgrade(_config(connection), revision)
    return _current(connection)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()

"""Engine, sessions and migrations for the URL a user writes.

`sqlite:///crm.db` and `postgresql://user@host/db` are accepted as written; the
async driver is picked here. SQLite runs in WAL mode with foreign keys on, and
every transaction takes the write lock up front (`BEGIN IMMEDIATE`) so two
writers queue on `busy_timeout` instead of failing mid-transaction.

The SQLite file is created readable by its owner alone (0600; SQLite gives its
-wal and -shm files the same mode), and `secure_delete` overwrites what is
deleted, so `erase_traces()` after an erasure (a checkpoint that empties the
WAL) leaves no copy of the erased values in any of the files.
"""
from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}


def async_url(url: str) -> URL:
    """The URL with the async driver this project uses for its dialect."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r} (try sqlite:///crm.db)")
    parsed = make_url(f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")
    return parsed


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        pragmas = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL",
                   "mmap_size=268435456",  # reads through the memory map: whole-book digests scan faster
                   "secure_delete=ON")  # deleted values are overwritten, not left in free space
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _create_private(self.url.database)
        # hide_parameters: a failed statement's error (and its traceback in the log) never shows the values
        self.engine = create_async_engine(self.url, echo=echo, hide_parameters=True)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def erase_traces(self) -> None:
        """After personal data was erased: on SQLite, copy the WAL into the database file (whose deleted
        cells `secure_delete` zeroed) and truncate it, so no file holds the erased values any more.
        PostgreSQL keeps dead rows until VACUUM and its own WAL as the server is set up to."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:  # outside a transaction, which would hold the WAL
                sqlite = (await conn.get_raw_connection()).driver_connection
                async with sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                    busy, _, _ = await cursor.fetchone()
            if busy:
                log.warning("the WAL could not be emptied after an erasure (a reader held it); the next "
                            "checkpoint will")

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision` (what `crm-bot db upgrade` runs)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_alembic, "upgrade", revision)

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_alembic, "downgrade", revision)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _create_private(path: str | None) -> None:
    """Create the SQLite file with mode 0600 before SQLite would create it with the umask's (0644 mostly)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        pass  # there already, or in a folder that does not exist (SQLite says so when it connects)


async def commit_without_waiting_for_the_disk(session: AsyncSession) -> None:
    """For a mark a message's request waits on: on PostgreSQL this transaction's commit does not
    wait for the disk (`synchronous_commit` off, for it alone), keeping that wait to a round trip.

    PostgreSQL finishes a commit whose client was killed meanwhile, so a kill of the bot loses
    nothing; a crash of the database could lose the mark, and the message would go again."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _run_alembic(connection: Connection, verb: str, revision: str) -> None:
    getattr(command, verb)(alembic_config(connection), revision)

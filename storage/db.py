"""Engine, sessions and migrations for the URL a user writes.

`sqlite:///crm.db` and `postgresql://user@host/db` are accepted as written; the
async driver is picked here. SQLite runs in WAL mode with foreign keys on, and
every transaction takes the write lock up front (`BEGIN IMMEDIATE`) so two
writers queue on `busy_timeout` instead of failing mid-transaction. Within the
process, SQLite transactions queue in turn on one lock (first come, first
served, every platform and the scheduler alike), so a long job that commits in
batches lets a waiting command in between two of them rather than racing it
for SQLite's lock. On a SQLite file the core's commands run on a database thread
of their own (`on_thread`, storage.db_thread), whose engine calls sqlite3 there
directly; the adapters' loop keeps an aiosqlite engine for its own transactions
(a lease, an inbox row, the scheduler's), and both take turns on that one lock.

The SQLite file is created readable by its owner alone (0600; SQLite gives its
-wal and -shm files the same mode), and `secure_delete` overwrites what is
deleted, so `erase_traces()` after an erasure (a checkpoint that empties the
WAL) leaves no copy of the erased values in any of the files.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterator, TypeVar

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import (AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker,
                                    create_async_engine)
from sqlalchemy.orm import Session

from storage.db_thread import DatabaseThread, TurnLock
from storage.prepared import Prepared
from storage.search_changes import AnnouncingSession
from storage.sqlite_inline import InlineDBAPI, sqlite3_of
from storage.sqlite_one_hop import OneHopConnection, OneHopDBAPI

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
T = TypeVar("T")

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}


class DatabaseUnavailable(ValueError):
    """The database a URL names can't be used, for a `reason` a person can act on (the CLI words it):

    - `not_a_url`, `unsupported` (a database other than SQLite or PostgreSQL);
    - `cannot_open` (SQLite: the folder is missing or not writable), `not_sqlite` (not a SQLite file);
    - `no_database` (PostgreSQL answers but has no database of that name), `login` (role or
      password refused), `refused` (nothing listens at host:port), `unknown_host`, `timeout`,
      `unreachable` (any other network failure).
    """

    def __init__(self, reason: str, url: URL | str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail
        self.url = url.render_as_string(hide_password=True) if isinstance(url, URL) else url
        parsed = url if isinstance(url, URL) else None
        self.scheme = url.partition("://")[0] if isinstance(url, str) else url.get_backend_name()
        self.database = (parsed.database or "") if parsed is not None else ""
        self.host = (parsed.host or "localhost") if parsed is not None else ""
        self.port = (parsed.port or 5432) if parsed is not None else ""


def async_url(url: str) -> URL:
    """The URL with the async driver this project uses for its dialect."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseUnavailable("not_a_url", url)
    try:
        parsed = make_url(f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}")
    except ArgumentError as problem:
        raise DatabaseUnavailable("not_a_url", url, str(problem)) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUnavailable("unsupported", scheme)
    return parsed


def _causes(problem: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`), and what caused each, once each."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [problem]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]


#: PostgreSQL's SQLSTATE codes for the connection problems a person can fix.
_SQLSTATES = {"3D000": "no_database", "28P01": "login", "28000": "login"}


def unavailable_reason(problem: BaseException) -> tuple[str, str] | None:
    """(reason, detail) when `problem` says the database can't be reached or opened, else None
    (a failing migration or query is a bug to show as it is)."""
    for cause in _causes(problem):
        detail = str(cause).strip()
        state = getattr(cause, "sqlstate", None)
        if state in _SQLSTATES:
            return _SQLSTATES[state], detail
        if isinstance(cause, sqlite3.OperationalError) and "unable to open" in detail:
            return "cannot_open", detail
        if isinstance(cause, sqlite3.DatabaseError) and "not a database" in detail:
            return "not_sqlite", detail
        if isinstance(cause, ConnectionRefusedError):
            return "refused", detail
        if isinstance(cause, socket.gaierror):
            return "unknown_host", detail
        if isinstance(cause, (TimeoutError, asyncio.TimeoutError)):
            return "timeout", detail
        if isinstance(cause, OSError) and not isinstance(cause, sqlite3.Error):
            return "unreachable", detail
    return None


_BEGIN_IMMEDIATE = Prepared(text("BEGIN IMMEDIATE"))


def _sqlite_pragmas(engine: AsyncEngine, *, write_lock: bool = True) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        # no memory map (SQLite's default): every page of the file a process has touched through one
        # stays in its resident memory (a 100,000-row import: 222 MB peak RSS instead of 155), to save a
        # digest 10% of its 0.25 s
        pragmas = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL",
                   "mmap_size=0", "secure_delete=ON")  # deleted values are overwritten, not left in free space
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    if not write_lock:
        return  # no BEGIN at all: each statement is its own transaction, a read takes no lock

    @event.listens_for(engine.sync_engine, "reset")
    def on_reset(dbapi_connection: OneHopConnection, _record, state) -> None:  # type: ignore[no-untyped-def]
        """Back to the pool: roll back only a transaction SQLite still holds open. The pool's own
        reset (off for this engine) rolls back every time: one more hand-off to SQLite's thread
        after each committed transaction, two per command."""
        if state.asyncio_safe and dbapi_connection.in_transaction:
            dbapi_connection.rollback()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        _BEGIN_IMMEDIATE.run_sync(conn)


class Database:
    """One engine and its session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            _create_private(self.url.database)
        try:
            # hide_parameters: a failed statement's error (and its traceback in the log) never shows the values
            self.engine = create_async_engine(
                self.url, echo=echo, hide_parameters=True,
                **({"module": OneHopDBAPI(), "pool_reset_on_return": None} if self.is_sqlite else {}))
        except (NoSuchModuleError, ImportError) as problem:  # a driver named in the URL that isn't installed
            raise DatabaseUnavailable("unsupported", self.url.drivername, str(problem)) from None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        #: For a read that must not wait behind a writer (Slack's authorize, before its 3-second ack):
        #: on SQLite an engine whose statements run on their own, without the write lock (in WAL mode a
        #: reader never waits); on PostgreSQL, where reads never wait, and for an in-memory SQLite
        #: database (another engine would open another, empty one), the engine itself.
        self.reader = self.engine
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            self.reader = create_async_engine(self.url, echo=echo, hide_parameters=True)
            _sqlite_pragmas(self.reader, write_lock=False)
        # on PostgreSQL other processes may share the database: customer writes announce themselves
        # (storage.search_changes) so their search indexes catch up at once
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False,
                                           sync_session_class=Session if self.is_sqlite else AnnouncingSession)
        #: SQLite has one writer: its transactions take turns here (FIFO) rather than in its busy-wait,
        #: on the adapters' loop and the database thread alike.
        self._one_writer = TurnLock() if self.is_sqlite else None
        #: A SQLite file's commands run on a thread of their own (`on_thread`, storage.db_thread), on an
        #: engine calling sqlite3 there directly; started with the first command.
        self._threaded = self.reader is not self.engine
        self._thread: DatabaseThread | None = None
        self.command_engine = self.engine
        #: The database thread's one connection, kept open (`_kept_here`).
        self._kept: AsyncConnection | None = None
        self._thread_sessions = async_sessionmaker(expire_on_commit=False)  # bound to `_kept` as opened
        if self._threaded:
            self.command_engine = create_async_engine(self.url, echo=echo, hide_parameters=True,
                                                      module=InlineDBAPI(), pool_reset_on_return=None)
            _sqlite_pragmas(self.command_engine)

    async def on_thread(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`await function(*args)` where commands run: on a SQLite file's database thread (one hand-off
        there and back for all the work), elsewhere right here. What it opens with `transaction()`
        runs on that thread's engine; anything it calls back on the caller's loop must be handed back."""
        if not self._threaded:
            return await function(*args)
        if self._thread is None:
            self._thread = DatabaseThread(f"sqlite {Path(self.url.database or '').name}")
        if self._thread.is_current():
            return await function(*args)
        return await self._thread.run(function, *args)

    async def _kept_here(self) -> AsyncConnection | None:
        """On the database thread, its one connection, kept open: a pool's checkout and return cost
        ≈ 150 µs a transaction, and the thread's transactions take turns on the write lock anyway.
        None anywhere else (the adapters' loop takes its connections from its pool).

        Like the pool's reset (`_sqlite_pragmas`), it rolls back a transaction SQLite still holds
        open behind SQLAlchemy's back before lending the connection again."""
        if self._thread is None or not self._thread.is_current():
            return None
        if self._kept is None or self._kept.closed or self._kept.invalidated:
            self._kept = await self.command_engine.connect()
        elif not self._kept.in_transaction():
            sqlite = sqlite3_of(self._kept.sync_connection.connection.driver_connection)
            if sqlite is not None and sqlite.in_transaction:
                sqlite.rollback()
        return self._kept

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        Never open one inside another in the same task: on SQLite the second waits for the first."""
        async with self._one_writer or contextlib.nullcontext():
            kept = await self._kept_here()
            async with self.sessions() if kept is None else self._thread_sessions(bind=kept) as session, \
                    session.begin():
                yield session

    @asynccontextmanager
    async def plain_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, for a statement or two that need no ORM session (the
        answer's mark): what the session would add is its own set-up, commit and clean-up."""
        async with self._one_writer or contextlib.nullcontext():
            kept = await self._kept_here()
            if kept is None:
                async with self.engine.begin() as connection:
                    yield connection
            else:
                async with kept.begin():
                    yield kept

    async def erase_traces(self) -> None:
        """After personal data was erased: on SQLite, copy the WAL into the database file (whose deleted
        cells `secure_delete` zeroed) and truncate it, so no file holds the erased values any more.
        PostgreSQL keeps dead rows until VACUUM and its own WAL as the server is set up to."""
        if not self.is_sqlite:
            return
        async with self._one_writer or contextlib.nullcontext():  # between transactions, which hold the WAL
            kept = await self._kept_here()
            async with contextlib.nullcontext(kept) if kept is not None else self.engine.connect() as conn:
                busy = await _checkpoint((await conn.get_raw_connection()).driver_connection)
        if busy:
            log.warning("the WAL could not be emptied after an erasure (a reader held it); the next "
                        "checkpoint will")

    async def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Apply Alembic migrations up to `revision` (what `crm-bot db upgrade` runs, and every CLI
        verb first); the revisions before and after. A database that can't be reached or opened
        raises `DatabaseUnavailable`.

        On PostgreSQL the upgrade holds an advisory lock (`MIGRATION_LOCK`) to its commit, so of
        several processes starting at once one migrates and the others wait, then find it done."""
        try:
            if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
                await asyncio.to_thread(_open_sqlite, self.url.database)
            if revision == "head":
                async with self.reader.connect() as conn:
                    current = await conn.run_sync(_current_revision)
                if current == HEAD:  # every start after the first: Alembic is not even imported
                    return current, current
            async with self.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE lets one writer in at a time
                return await conn.run_sync(_upgrade, revision)
        except (DBAPIError, OSError, sqlite3.Error, asyncio.TimeoutError) as problem:
            found = unavailable_reason(problem)
            if found is None:
                raise
            raise DatabaseUnavailable(found[0], self.url, found[1]) from None

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_run_alembic, "downgrade", revision)

    async def dispose(self) -> None:
        if self._thread is not None:
            await self._thread.stop(self._close_on_thread)
            self._thread = None
        await self.engine.dispose()
        if self.reader is not self.engine:
            await self.reader.dispose()

    async def _close_on_thread(self) -> None:
        if self._kept is not None:
            await self._kept.close()
            self._kept = None
        await self.command_engine.dispose()


async def _checkpoint(sqlite: Any) -> int:
    """`PRAGMA wal_checkpoint(TRUNCATE)` on a driver connection of either engine; 1 if a reader held
    the WAL. The database thread's is sqlite3's own (storage.sqlite_inline), the loop's aiosqlite's."""
    if isinstance(sqlite, aiosqlite.Connection):
        async with sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
            busy, _, _ = await cursor.fetchone()
        return busy
    busy, _, _ = sqlite._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy


def _create_private(path: str | None) -> None:
    """Create the SQLite file with mode 0600 before SQLite would create it with the umask's (0644 mostly)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        pass  # there already, or in a folder that does not exist (SQLite says so when it connects)


def _open_sqlite(path: str) -> None:
    """Open the file (created if missing) and read it once, so a missing folder or a file that isn't
    SQLite is found before aiosqlite's worker thread, which can outlive the event loop when its
    first connection fails."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        connection.close()


_NOT_WAITING_FOR_THE_DISK = Prepared(text("SET LOCAL synchronous_commit TO OFF"))


async def commit_without_waiting_for_the_disk(session: AsyncSession | AsyncConnection) -> None:
    """For a mark a message's request waits on: on PostgreSQL this transaction's commit does not
    wait for the disk (`synchronous_commit` off, for it alone), keeping that wait to a round trip.

    PostgreSQL finishes a commit whose client was killed meanwhile, so a kill of the bot loses
    nothing; a crash of the database could lose the mark, and the message would go again."""
    bind = session.get_bind() if isinstance(session, AsyncSession) else session
    if bind.dialect.name == "postgresql":
        await _NOT_WAITING_FOR_THE_DISK.run(session)


#: The newest migration's revision: each is named after its file's number (0001_customer_book.py is
#: "0001"), which tests/test_migrations.py checks against Alembic's own idea of the head.
HEAD = max(path.name.partition("_")[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def _current_revision(connection: Connection) -> str | None:
    """The database's revision, read without Alembic (None: never migrated)."""
    if not sqlalchemy_inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _run_alembic(connection: Connection, verb: str, revision: str) -> None:
    from alembic import command

    getattr(command, verb)(alembic_config(connection), revision)


#: The advisory lock migrations run under on PostgreSQL: processes starting together migrate in turn.
MIGRATION_LOCK = 0x63726D2D6D696772  # "crm-migr"


def _upgrade(connection: Connection, revision: str) -> tuple[str | None, str | None]:
    if connection.dialect.name == "postgresql":  # held until this transaction ends; the next finds it done
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    before = _current_revision(connection)
    _run_alembic(connection, "upgrade", revision)
    return before, _current_revision(connection)

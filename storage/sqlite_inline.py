"""SQLite for the database thread: SQLAlchemy's async engine over sqlite3 calls made where they are asked.

aiosqlite moves every call to a worker thread of its own and back (a hand-off
through two queues and the event loop, ≈ 80 µs, more than most statements of
this project take in SQLite). On the database thread (storage.db_thread) nothing
else waits on the thread's loop while a statement runs, so the hand-off buys
nothing: here the adapter SQLAlchemy's aiosqlite dialect drives runs each
statement, commit and rollback at once on the calling thread, with no
greenlet switch and no trip through the loop. The dialect, its SQL and its
errors stay aiosqlite's (sqlite3's exception classes, which aiosqlite
re-exports); only where the call runs changes.

An engine built on this module must only ever be used from one thread: the
database thread that opened it.
"""
from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi, AsyncAdapt_aiosqlite_ss_cursor

from storage.sqlite_one_hop import OneHopConnection, OneHopCursor, run_statement


class _Handle:
    """What the adapter keeps as its driver connection: the sqlite3 connection itself (`_conn`, as
    aiosqlite names it; `_connection` is what SQLAlchemy checks before a commit or rollback)."""

    __slots__ = ("_conn", "_connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = self._connection = connection


def sqlite3_of(driver_connection: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection behind a database-thread engine's connection; None for any other."""
    return driver_connection._conn if isinstance(driver_connection, _Handle) else None


class InlineCursor(OneHopCursor):
    """Runs the statement where it is awaited: the await SQLAlchemy requires of an async driver
    (one greenlet switch there and back) is the only trace of asyncio left."""

    __slots__ = ()

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        self._description, self._rowcount, self._lastrowid, rows = run_statement(
            self._connection._conn, operation, parameters, many)
        self._rows = collections.deque(rows)


class _StreamedCursor:
    """A sqlite3 cursor behind the awaitable face SQLAlchemy's server-side cursor expects (a result
    `stream()`ed, an export's rows): each call is made at once."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:  # description, rowcount, lastrowid, arraysize
        return getattr(self._cursor, name)

    async def __aenter__(self) -> _StreamedCursor:
        return self

    async def execute(self, operation: Any, parameters: Any = ()) -> None:
        self._cursor.execute(operation, parameters)

    async def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._cursor.executemany(operation, seq_of_parameters)

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class InlineStreamingCursor(AsyncAdapt_aiosqlite_ss_cursor):
    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> _StreamedCursor:
        return _StreamedCursor(connection._conn.cursor())


class InlineConnection(OneHopConnection):
    __slots__ = ()
    _cursor_cls = InlineCursor
    _ss_cursor_cls = InlineStreamingCursor

    @property
    def isolation_level(self) -> str | None:
        return self._connection._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection._conn.isolation_level = value

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._connection._conn.create_function(*args, **kw)

    def commit(self) -> None:
        self._call(self._connection._conn.commit)

    def rollback(self) -> None:
        self._call(self._connection._conn.rollback)

    def close(self) -> None:
        self._call(self._connection._conn.close)

    def terminate(self) -> None:
        self.close()

    def _call(self, method: Any) -> None:
        try:
            method()
        except Exception as error:
            self._handle_exception(error)


class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """What `create_async_engine(..., module=InlineDBAPI())` gives the aiosqlite dialect as its DBAPI."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> InlineConnection:
        kw["check_same_thread"] = False  # one thread uses it; a pool's clean-up may close it elsewhere
        return InlineConnection(self, _Handle(sqlite3.connect(*arg, **kw)))

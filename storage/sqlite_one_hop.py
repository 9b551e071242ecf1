"""aiosqlite as SQLAlchemy drives it, with one hand-off to SQLite's thread per statement instead of four.

aiosqlite runs SQLite on a worker thread of its own, and every call to it is a
hand-off through a queue and back to the event loop (≈ 80 µs on this kind of
machine, more than SQLite takes for a statement of this project). SQLAlchemy's
adapter makes four such calls per statement: open a cursor, execute, fetch the
rows, close the cursor. The cursor here sends one function that does all four
on the worker thread and keeps what they returned (rows, description, row
count, last row id): one hand-off per statement, not four. Transactions, errors
and the event loop stay as aiosqlite has them: the loop never waits on SQLite.
This is the adapters' loop's engine (leases, inbox rows, the scheduler); the
commands run on the database thread without any (storage.sqlite_inline).

It uses `aiosqlite.Connection._execute` (how aiosqlite's own cursor queues its
calls); pyproject.toml pins the aiosqlite versions it was checked against.
"""
from __future__ import annotations

import collections
import sqlite3
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_


def run_statement(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[Any, ...]:
    """On SQLite's thread: a cursor's whole life for one statement."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement, fetch and close are one call to SQLite's thread."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def _make_new_cursor(self, connection: Any) -> None:
        """No cursor up front: each statement opens and closes its own on SQLite's thread."""
        self._description, self._rowcount, self._lastrowid = None, -1, None

    def _aenter_cursor(self, cursor: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            self._description, self._rowcount, self._lastrowid, rows = await connection._execute(
                run_statement, connection._conn, operation, parameters, many)
            self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        """Nothing to close: the rows were fetched and the cursor closed with the statement."""


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor

    @property
    def in_transaction(self) -> bool:
        """Whether SQLite holds a transaction open on this connection, read without a hand-off
        (sqlite3_get_autocommit; asked while no statement runs on SQLite's thread)."""
        return self._connection._conn.in_transaction


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """What `create_async_engine(..., module=OneHopDBAPI())` gives the aiosqlite dialect as its DBAPI."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        connection = self.aiosqlite.connect(*arg, **kw)
        if isinstance(connection, Thread):  # aiosqlite before 0.22: the connection is its thread
            connection.daemon = True
        else:
            connection._thread.daemon = True
        return OneHopConnection(self, await_(connection))

"""Core statements built once and, on the database thread, run by sqlite3 itself.

SQLAlchemy's execution of a statement it has already compiled and cached
still costs ≈ 100 µs on this kind of machine (the execution context, its
parameters, the result's metadata and rows, the events, two greenlet
switches); SQLite then takes 5–30 µs for a statement of the hot path. A
`Prepared` statement is compiled once per dialect, and on the database
thread's SQLite connection (storage.sqlite_inline) it binds its values with
the types' own processors, runs on the sqlite3 connection under the
transaction SQLAlchemy began, and reads its rows back through the types'
result processors: the same SQL, values and rows as `connection.execute`,
≈ 10 µs around SQLite's own time. The engine's `before_cursor_execute` and
`after_cursor_execute` listeners still see each statement, and sqlite3's
errors come back as SQLAlchemy's (an `IntegrityError` is one), their values
hidden as the engine hides them. On PostgreSQL it runs on asyncpg itself the
same way: SQLAlchemy's asyncpg adapter's transaction (begun as its cursor
begins it) and its cache of prepared statements, asyncpg's errors handled as
the engine handles them (a lost connection is invalidated), ≈ 100 µs a
statement less than `connection.execute`. Elsewhere (the adapters' loop,
in-memory SQLite) it is `connection.execute` of the statement.

A statement whose SQL is not fixed once compiled (an expanding IN list) always
goes through `connection.execute`.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, NamedTuple

from sqlalchemy import exc
from sqlalchemy.engine import Connection, CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeEngine
from sqlalchemy.util.concurrency import await_

from storage.sqlite_inline import sqlite3_of

_MISSING = object()


class Rows(NamedTuple):
    """A statement's rows as tuples, and its column names."""

    keys: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:  # type: ignore[override]
        return iter(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.keys, row)) for row in self.rows]


@dataclass(frozen=True)
class _Compiled:
    sql: str | None  # None: not fixed once compiled, run by SQLAlchemy
    #: per position: name, default, bind processor; or, for a literal of the statement (an anonymous
    #: parameter no caller can name), None and its value, processed once
    binds: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    keys: tuple[str, ...]
    results: tuple[Callable[[Any], Any] | None, ...] | None  # None: no processor for any column
    types: tuple[TypeEngine[Any], ...]  # per column


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if compiled.literal_execute_params or compiled.post_compile_params:
        return _Compiled(None, (), (), None, ())
    processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup or ():
        bind, processor = compiled.binds[name], processors.get(name)
        if bind.unique and bind.callable is None:
            binds.append((None, bind.value if processor is None else processor(bind.value), None))
        else:
            binds.append((bind.key, _MISSING if bind.required else bind.effective_value, processor))
    columns = compiled._result_columns
    # asyncpg's processors depend on the server's name for each column's type: `_on_asyncpg` asks it
    results = () if dialect.driver == "asyncpg" else tuple(
        column.type._cached_result_processor(dialect, None) for column in columns)
    return _Compiled(compiled.string, tuple(binds), tuple(column.keyname for column in columns),
                     results if any(results) else None, tuple(column.type for column in columns))


class Prepared:
    """One Core statement, compiled once per dialect; `await run(connection, values)` its rows."""

    __slots__ = ("statement", "_compiled", "_asyncpg_results")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        #: the result processors on asyncpg, which depend on the columns' types as the server names them
        self._asyncpg_results: tuple[Callable[[Any], Any] | None, ...] | None = None

    async def run(self, connection: AsyncConnection | AsyncSession, values: Mapping[str, Any] | None = None) -> Rows:
        """The statement's rows (none for a statement that returns none), in the connection's or the
        session's transaction. A session's pending changes are flushed first, as its `execute` would;
        its ORM events (`do_orm_execute`) do not see the statement."""
        if isinstance(connection, AsyncSession):
            connection = await _connection_of(connection)
        sync = connection.sync_connection
        assert sync is not None
        compiled = self._of(sync.dialect)
        if compiled.sql is not None:
            if sync.dialect.driver == "asyncpg":
                return await _on_asyncpg(self, compiled, sync, _bound(compiled, values or {}))
            native = sqlite3_of(sync.connection.driver_connection)
            if native is not None:
                return _on_sqlite(compiled, sync, native, values or {})
        return _rows(await connection.execute(self.statement, values or {}))

    def run_sync(self, connection: Connection, values: Mapping[str, Any] | list[Mapping[str, Any]] | None = None
                 ) -> Rows:
        """The same on a sync connection (in an engine's or a session's event: the BEGIN of every
        transaction, the audit entries before a commit); a list of values runs it once for each (no
        rows back)."""
        compiled = self._of(connection.dialect)
        if compiled.sql is not None and connection.dialect.driver == "asyncpg":
            if isinstance(values, list):
                return await_(_on_asyncpg(self, compiled, connection, [_bound(compiled, each) for each in values]))
            return await_(_on_asyncpg(self, compiled, connection, _bound(compiled, values or {})))
        native = sqlite3_of(connection.connection.driver_connection)
        if native is None or compiled.sql is None:
            return _rows(connection.execute(self.statement, values or {}))
        if isinstance(values, list):
            _send(compiled, connection, native.executemany, [_bound(compiled, each) for each in values], many=True)
            return Rows((), [])
        return _on_sqlite(compiled, connection, native, values or {})

    def _of(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return compiled


async def _connection_of(session: AsyncSession) -> AsyncConnection:
    """The session's connection, its pending changes flushed first. Kept in `session.info` for the
    transaction it belongs to: asking the session again costs ≈ 25 µs (a greenlet's round trip), six
    times a /log."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        await session.flush()
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_CONNECTION)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1]
    connection = await session.connection()
    session.info[_CONNECTION] = (session.sync_session.get_transaction(), connection)
    return connection


_CONNECTION = "storage.prepared connection"


def _rows(result: CursorResult[Any]) -> Rows:
    return Rows(tuple(result.keys()), [tuple(row) for row in result]) if result.returns_rows else Rows((), [])


def _on_sqlite(compiled: _Compiled, sync: Connection, native: sqlite3.Connection, values: Mapping[str, Any]) -> Rows:
    """Bind as SQLAlchemy would, run on sqlite3 in the transaction SQLAlchemy began, read back as it would."""
    rows = _send(compiled, sync, native.execute, _bound(compiled, values), many=False).fetchall()
    if compiled.results is not None and rows:
        processors = compiled.results
        rows = [tuple(value if processor is None else processor(value) for processor, value in zip(processors, row))
                for row in rows]
    return Rows(compiled.keys, rows)


async def _on_asyncpg(prepared: Prepared, compiled: _Compiled, sync: Connection,
                      parameters: tuple[Any, ...] | list[tuple[Any, ...]]) -> Rows:
    """Run bound values (a list: once for each, no rows back) on asyncpg in the transaction SQLAlchemy's
    adapter keeps, as its cursor would (its lock, its lazy BEGIN, its prepared statements), errors and
    rows as it would take them."""
    adapted = sync.connection.dbapi_connection
    many = isinstance(parameters, list)
    events = sync._has_events or sync.engine._has_events
    if events:
        sync.dispatch.before_cursor_execute(sync, None, compiled.sql, parameters, None, many)
    try:
        async with adapted._execute_mutex:
            if adapted._transaction is None:
                await adapted._start_transaction()
            statement, attributes = await adapted._prepare(compiled.sql, sync.dialect._invalidate_schema_cache_asof)
            records = await statement.executemany(parameters) if many else await statement.fetch(*parameters)
    except BaseException as error:  # a cancelled statement too: its connection's state is unknown
        try:
            adapted._handle_exception(error)  # asyncpg's error as the DBAPI's
        except BaseException as translated:
            sync._handle_dbapi_exception(translated, compiled.sql, parameters, None, None)
    if events:
        sync.dispatch.after_cursor_execute(sync, None, compiled.sql, parameters, None, many)
    if not records:
        return Rows(compiled.keys, [])
    processors = prepared._asyncpg_results
    if processors is None:
        processors = prepared._asyncpg_results = tuple(
            kind._cached_result_processor(sync.dialect, attribute.type.oid)
            for kind, attribute in zip(compiled.types, attributes))
    if any(processors):
        return Rows(compiled.keys, [tuple(value if processor is None else processor(value)
                                          for processor, value in zip(processors, record)) for record in records])
    return Rows(compiled.keys, [tuple(record) for record in records])


def _bound(compiled: _Compiled, values: Mapping[str, Any]) -> tuple[Any, ...]:
    given = []
    for name, default, processor in compiled.binds:
        if name is None:
            given.append(default)
            continue
        value = values.get(name, default)
        if value is _MISSING:
            raise exc.ArgumentError(f"A value is required for bind parameter {name!r}")
        given.append(value if processor is None else processor(value))
    return tuple(given)


def _send(compiled: _Compiled, sync: Connection, execute: Callable[[str, Any], sqlite3.Cursor], parameters: Any, *,
          many: bool) -> sqlite3.Cursor:
    """sqlite3's execute or executemany, between the engine's cursor events, its errors SQLAlchemy's."""
    events = sync._has_events or sync.engine._has_events
    if events:
        sync.dispatch.before_cursor_execute(sync, None, compiled.sql, parameters, None, many)
    try:
        cursor = execute(compiled.sql, parameters)
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(compiled.sql, parameters, error, sqlite3.Error, hide_parameters=True,
                                      dialect=sync.dialect, ismulti=many) from error
    if events:
        sync.dispatch.after_cursor_execute(sync, None, compiled.sql, parameters, None, many)
    return cursor

"""Customer writes of one process reach the search indexes of the others (PostgreSQL LISTEN/NOTIFY).

Each process keeps its own fuzzy-search index (storage.search). On PostgreSQL,
every transaction that writes a customer row sends `NOTIFY crm_customers` in
that same transaction (`AnnouncingSession`), so the notice goes out exactly
when the write is visible and never for a write that rolled back. Every
process listens on a connection of its own (`ChangeListener`): a notice marks
that workspace's index stale (a removed customer leaves it at once), and the
next search reads what changed. Before a search, `caught_up()` makes one round
trip on the listening connection, so every notice sent before that search began
has arrived: a customer added through process A is found through process B on
the very next command. SQLite has one process: nothing here is used.

Payloads: `"<workspace>"` (something changed, read it), `"<workspace> -<customer>"`
(that customer is gone), `"*"` (a bulk statement: every workspace may have changed).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Callable

import asyncpg
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.dml import Update, UpdateBase

from storage.leases import driver_dsn
from storage.models import Customer
from storage.prepared import Prepared

if TYPE_CHECKING:
    from storage.search import CustomerSearch

log = logging.getLogger(__name__)
CHANNEL = "crm_customers"
#: How the listening connections show in pg_stat_activity.
APPLICATION_NAME = "crm-bot change listener"
ALL = "*"
_NOTIFY = Prepared(text("SELECT pg_notify(:channel, :payload)"))


#: The columns the search index reads (an UPDATE of others, like the derived scores, leaves it as it is).
INDEXED = frozenset({"name", "company", "deleted_at", "workspace_id"})


class AnnouncingSession(Session):
    """The session class on PostgreSQL: a flush that touched customers NOTIFYs their workspaces."""


@event.listens_for(AnnouncingSession, "after_flush")
def _announce_flushed(session: Session, _flush_context: Any) -> None:
    payloads: set[str] = set()
    for row in session.new:
        if isinstance(row, Customer):
            payloads.add(str(row.workspace_id))
    for row in session.dirty:
        if isinstance(row, Customer) and _indexed_changed(row):
            payloads.add(str(row.workspace_id))
    for row in session.deleted:
        if isinstance(row, Customer):
            payloads.add(f"{row.workspace_id} -{row.id}")
    for payload in sorted(payloads):
        _NOTIFY.run_sync(session.connection(), {"channel": CHANNEL, "payload": payload})


async def announce_added(session: AsyncSession, workspace_id: int) -> None:
    """A customer of this workspace was written by a Core INSERT (storage.rows.insert_held), which no
    flush announces: on PostgreSQL, NOTIFY as the flush would have."""
    if isinstance(session.sync_session, AnnouncingSession):
        await _NOTIFY.run(session, {"channel": CHANNEL, "payload": str(workspace_id)})


def _indexed_changed(row: Customer) -> bool:
    """Did this flush change what the index reads (a call logged or a score recomputed does not)?"""
    attributes = inspect(row).attrs
    return any(attributes[name].history.has_changes() for name in INDEXED)


@event.listens_for(AnnouncingSession, "do_orm_execute")
def _announce_bulk(state: ORMExecuteState) -> None:
    """An INSERT or DELETE statement on customers (an import), or an UPDATE of what the index holds,
    names no rows: say every workspace may have changed."""
    if _may_change_the_index(state):
        _NOTIFY.run_sync(state.session.connection(), {"channel": CHANNEL, "payload": ALL})


def _may_change_the_index(state: ORMExecuteState) -> bool:
    statement = state.statement
    table = getattr(statement, "table", None)  # update(Customer) holds an annotated copy of the table
    if not isinstance(statement, UpdateBase) or getattr(table, "name", None) != Customer.__tablename__:
        return False
    if not isinstance(statement, Update):
        return True  # INSERT, DELETE
    written = {getattr(column, "key", column) for column in (statement._values or {})}  # .values(...)
    rows = state.parameters if isinstance(state.parameters, list) else [state.parameters or {}]
    written |= set(rows[0]) if rows else set()  # executemany: the keys of its rows
    return bool(written & INDEXED)


async def follow(url: URL, search: CustomerSearch) -> ChangeListener:
    """Start listening for `search`: notices mark its workspaces changed, and each of its searches
    first catches up with the notices sent so far."""
    listener = ChangeListener(url, search.changed)
    await listener.start()
    search.catch_up = listener.caught_up
    return listener


def parse(payload: str) -> tuple[int | None, int | None]:
    """(workspace or None for all, removed customer or None)."""
    if payload == ALL:
        return None, None
    workspace, _, removed = payload.partition(" -")
    return int(workspace), int(removed) if removed else None


class ChangeListener:
    """LISTEN on a dedicated connection; `on_change(workspace, removed)` for each notice (workspace
    None: all of them). While the connection is down (it reconnects every `RETRY` seconds) notices
    are missed, so on reconnecting every workspace counts as changed."""

    RETRY = 1.0

    def __init__(self, url: URL, on_change: Callable[[int | None, int | None], None]) -> None:
        self.dsn = driver_dsn(url)
        self.on_change = on_change
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._lost = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Listen now (so the first command is covered), and keep listening in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._stay_connected(), name="customer change listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    async def caught_up(self) -> None:
        """One round trip on the listening connection: every notice sent before it has been applied
        (PostgreSQL sends them ahead of the answer; asyncpg runs their callbacks first)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return  # the 5-second sync in storage.search covers the gap
        try:
            async with self._lock:
                await conn.fetchval("SELECT 1")
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
            self._lost.set()

    async def _connect(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME})
            await conn.add_listener(CHANNEL, self._notified)
        except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as problem:
            log.warning("cannot listen for customer changes (%s); again in %.0f s", type(problem).__name__,
                        self.RETRY)
            return
        self._lost.clear()
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._conn = conn
        self.on_change(None, None)  # whatever happened while not listening

    async def _stay_connected(self) -> None:
        while True:
            if self.listening:
                await self._lost.wait()
                log.warning("the customer change listener lost its connection; reconnecting")
                self._conn = None
            await asyncio.sleep(self.RETRY)
            await self._connect()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            workspace, removed = parse(payload)
        except ValueError:
            log.warning("a customer change notice that is not ours: %r", payload[:40])
            return
        self.on_change(workspace, removed)

"""storage.prepared: the hot path's Core statements, run by sqlite3 itself on the database thread, by asyncpg
itself on PostgreSQL, and by SQLAlchemy everywhere else, with the same values, rows and errors each way."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.db import Database
from storage.models import ProcessedUpdate
from storage.prepared import Prepared
from tests.chat import Chat

NOW = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=timezone.utc)
_INSERT = Prepared(insert(ProcessedUpdate).values(key=bindparam("key"), processed_at=bindparam("at"),
                                                  unanswered=bindparam("kept")))
_READ = Prepared(select(ProcessedUpdate.key, ProcessedUpdate.processed_at, ProcessedUpdate.unanswered)
                 .where(ProcessedUpdate.key == bindparam("key")))
_AMONG = Prepared(select(ProcessedUpdate.key).where(ProcessedUpdate.key.in_(bindparam("keys", expanding=True)))
                  .order_by(ProcessedUpdate.key))


async def _written_and_read(db: Database) -> tuple[Any, Any, Any]:
    async with db.plain_transaction() as connection:
        await _INSERT.run(connection, {"key": "k-1", "at": NOW, "kept": None})
        await _INSERT.run(connection, {"key": "k-2", "at": NOW, "kept": "[]"})
    async with db.plain_transaction() as connection:
        by_sqlalchemy = (await connection.execute(_READ.statement, {"key": "k-1"})).all()
        return by_sqlalchemy, await _READ.run(connection, {"key": "k-1"}), await _AMONG.run(connection, {"keys": ["k-2", "k-1"]})


async def test_its_values_and_rows_are_sqlalchemys_on_the_database_thread_and_off_it(db: Database) -> None:
    """Bound through the column types (an aware time stored as naive UTC) and read back through them
    (aware UTC again), on the adapters' loop, on the database thread, and on PostgreSQL; an IN list,
    whose SQL is written afresh per run, goes through SQLAlchemy."""
    on_loop = await _written_and_read(db)
    async with db.plain_transaction() as connection:
        await connection.execute(ProcessedUpdate.__table__.delete())
    on_thread = await db.on_thread(_written_and_read, db)
    for by_sqlalchemy, prepared, among in (on_loop, on_thread):
        assert [tuple(row) for row in by_sqlalchemy] == prepared.rows == [("k-1", NOW, None)]
        assert prepared.dicts() == [{"key": "k-1", "processed_at": NOW, "unanswered": None}]
        assert among.rows == [("k-1",), ("k-2",)]


async def test_a_constraint_it_breaks_on_the_database_thread_or_asyncpg_is_sqlalchemys_integrity_error_without_the_values(
        db: Database) -> None:
    """A redelivered update's key breaks the primary key: the core tells that from any other failure by
    SQLAlchemy's IntegrityError, and the engine hides a failed statement's values from its message."""
    async def twice() -> None:
        async with db.plain_transaction() as connection:
            await _INSERT.run(connection, {"key": "secret-key-1", "at": NOW, "kept": None})
            await _INSERT.run(connection, {"key": "secret-key-1", "at": NOW, "kept": None})

    with pytest.raises(IntegrityError) as raised:
        await db.on_thread(twice)
    assert ("UNIQUE constraint failed" if db.is_sqlite else "duplicate key value violates unique constraint") \
        in str(raised.value)
    assert "secret-key-1" not in str(raised.value)
    async with db.plain_transaction() as connection:  # the failed transaction was rolled back
        assert (await _READ.run(connection, {"key": "secret-key-1"})).rows == []


async def test_a_logs_writes_are_run_by_the_driver_itself_and_still_seen_by_the_engines_listeners(
        alice: Chat, db: Database) -> None:
    """SQLAlchemy's execution of a statement it has cached costs ~100 µs more than the driver's own: a
    /log's INSERTs, counter, refresh and mark do not go through it (no `before_execute`) on the database
    thread's sqlite3 or on asyncpg, yet the engine's `before_cursor_execute` listeners (statement counts,
    echo) see every one of them."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first", update_key="warm-up")
    through_sqlalchemy: list[str] = []
    to_driver: list[str] = []

    def executed(_conn: Any, statement: Any, *_: Any) -> None:
        through_sqlalchemy.append(str(statement.compile(dialect=db.command_engine.dialect))
                                  if hasattr(statement, "compile") else str(statement))

    def sent(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        to_driver.append(statement)

    engine = db.command_engine.sync_engine
    event.listen(engine, "before_execute", executed)
    event.listen(engine, "before_cursor_execute", sent)
    try:
        await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
        await alice.core.answered("u-1")  # what an adapter that reports its answers sends as they leave
    finally:
        event.remove(engine, "before_execute", executed)
        event.remove(engine, "before_cursor_execute", sent)
    assert "Logged for #1 李伟" in alice.text and "Next follow-up" in alice.text
    native = [" ".join(s.split()[:3]) for s in to_driver if s not in through_sqlalchemy]
    for statement in ("INSERT INTO interactions", "UPDATE workspaces SET", "INSERT INTO reminders", "UPDATE customers SET",
                      "DELETE FROM customer_tags", "INSERT INTO customer_tags", "INSERT INTO processed_updates",
                      "UPDATE processed_updates SET"):
        assert statement in native, (statement, native)


async def test_run_with_a_session_sees_what_the_session_has_not_written_yet(db: Database) -> None:
    """As `session.execute` would, it flushes the session's pending objects first: a read in the same
    transaction finds a row only just added."""

    async def add_then_read() -> Any:
        async with db.transaction() as session:
            session.add(ProcessedUpdate(key="pending", processed_at=NOW))
            return await _READ.run(session, {"key": "pending"})

    assert (await db.on_thread(add_then_read)).rows == [("pending", NOW, None)]


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
async def test_on_asyncpg_it_runs_in_sqlalchemys_transaction_and_a_lost_connection_is_invalidated(db: Database) -> None:
    """Run first in a transaction, it begins it as SQLAlchemy's cursor would (a rollback undoes it); when
    the server drops the connection it raises SQLAlchemy's error saying so, and the next transaction
    gets a working connection rather than the dead one back from the pool."""
    with pytest.raises(RuntimeError):
        async with db.plain_transaction() as connection:
            await _INSERT.run(connection, {"key": "undone", "at": NOW, "kept": None})
            raise RuntimeError("the command failed")
    async with db.plain_transaction() as connection:
        assert (await _READ.run(connection, {"key": "undone"})).rows == []
    with pytest.raises(DBAPIError) as raised:
        async with db.plain_transaction() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            async with db.engine.connect() as other:
                assert await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await _READ.run(connection, {"key": "undone"})
    assert raised.value.connection_invalidated and raised.value.statement == _READ._of(db.engine.dialect).sql
    async with db.plain_transaction() as connection:
        await _INSERT.run(connection, {"key": "after", "at": NOW, "kept": None})
    async with db.plain_transaction() as connection:
        assert (await _READ.run(connection, {"key": "after"})).rows == [("after", NOW, None)]

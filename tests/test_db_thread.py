"""Issue 13: a SQLite file's commands run on the database thread (storage.db_thread), one hand-off
each; transactions there and on the adapters' loop take turns first come, first served."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, select

from handlers.messages import Attachment, Reply
from storage.db import Database
from storage.db_thread import DatabaseThread, TurnLock
from storage.models import Customer, ProcessedUpdate
from tests.chat import Chat


async def _nothing() -> None:
    """What a thread with nothing of its own to close runs last."""


async def test_turns_go_first_come_first_served_to_coroutines_of_any_loop() -> None:
    lock, order = TurnLock(), []
    other = DatabaseThread("test other loop")

    async def take(name: str) -> None:
        async with lock:
            order.append(name)

    try:
        async with lock:
            waiting = [asyncio.ensure_future(other.run(take, "other loop, first"))]
            while not lock._waiting:
                await asyncio.sleep(0.001)
            waiting.append(asyncio.ensure_future(take("this loop, second")))
            await asyncio.sleep(0.01)
            waiting.append(asyncio.ensure_future(other.run(take, "other loop, third")))
            while len(lock._waiting) < 3:
                await asyncio.sleep(0.001)
            assert order == []  # all wait while it is held
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert order == ["other loop, first", "this loop, second", "other loop, third"]
    finally:
        await other.stop(_nothing)


async def test_a_waiter_cancelled_before_its_turn_passes_the_turn_on() -> None:
    lock, order = TurnLock(), []

    async def take(name: str) -> None:
        async with lock:
            order.append(name)

    async with lock:
        gone = asyncio.ensure_future(take("cancelled"))
        after = asyncio.ensure_future(take("after"))
        await asyncio.sleep(0.01)
        gone.cancel()
    await asyncio.wait_for(after, 5)
    assert order == ["after"] and gone.cancelled()
    async with lock:  # and it is free again
        order.append("free")
    assert order == ["after", "free"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_command_runs_on_the_database_thread_and_its_progress_comes_back_to_the_adapters_loop(
    alice: Chat, db: Database
) -> None:
    """The command's statements run on the database thread; an import's progress messages, which the
    adapter sends with its own loop's HTTP client, are sent from the adapter's loop."""
    await alice.say("/help")
    ran_on: set[str] = set()
    record = lambda *_: ran_on.add(threading.current_thread().name)  # noqa: E731
    event.listen(db.command_engine.sync_engine, "before_cursor_execute", record)
    adapters_loop, progress_on = asyncio.get_running_loop(), []

    async def progress(reply: Reply) -> None:
        progress_on.append((asyncio.get_running_loop() is adapters_loop, threading.current_thread().name))

    rows = "".join(f"p{i},1390000{i:04d}\n" for i in range(1500))
    try:
        await alice.send(alice.request(text="/import", file=Attachment("b.csv", f"name,phone\n{rows}".encode()),
                                       progress=progress))
    finally:
        event.remove(db.command_engine.sync_engine, "before_cursor_execute", record)
    assert "Added: 1,500" in alice.text
    assert ran_on and all(name.startswith("sqlite ") for name in ran_on), ran_on
    assert progress_on and all(on_adapters_loop for on_adapters_loop, _ in progress_on), progress_on
    async with db.transaction() as session:  # the adapters' loop reads what the thread wrote
        assert await session.scalar(select(func.count()).select_from(Customer)) == 1500


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_command_cancelled_by_its_adapter_is_cancelled_on_the_database_thread(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter that gives up on a command (shutting down) cancels it where it runs: its transaction
    rolls back and the next command gets the write lock at once."""
    await alice.say("/add 李伟 company=Acme")
    started, cancelled = asyncio.Event(), []
    loop = asyncio.get_running_loop()
    from handlers import interactions

    original = interactions.save_log

    async def slow(*args: Any, **kwargs: Any) -> Any:
        loop.call_soon_threadsafe(started.set)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(threading.current_thread().name)
            raise
        return await original(*args, **kwargs)

    monkeypatch.setattr(interactions, "save_log", slow)
    command = asyncio.ensure_future(alice.say("/log 李伟 call: stuck"))
    await asyncio.wait_for(started.wait(), 5)
    command.cancel()
    with pytest.raises(asyncio.CancelledError):
        await command
    monkeypatch.setattr(interactions, "save_log", original)
    await asyncio.wait_for(alice.say("/log 李伟 call: the next one"), 5)
    assert "Logged for #1 李伟" in alice.text
    assert cancelled and cancelled[0].startswith("sqlite ")


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_neither_engine_reads_the_book_through_a_memory_map(alice: Chat, db: Database) -> None:
    """Every page read through SQLite's memory map stays in the process's resident memory: a
    100,000-row import peaked at 222 MB RSS with a 256 MB map (SPEC: 200), 155 MB without."""
    await alice.say("/help")

    async def mmap_size(engine: Any) -> int:
        async with engine.connect() as conn:
            return (await conn.exec_driver_sql("PRAGMA mmap_size")).scalar()

    assert await db.on_thread(mmap_size, db.command_engine) == 0
    assert await mmap_size(db.engine) == 0 and await mmap_size(db.reader) == 0


async def test_closing_the_database_cancels_the_commands_still_running_on_its_thread(tmp_path: Any) -> None:
    """A shutdown does not leave an adapter waiting for ever on a command the thread will never finish."""
    db = Database(f"sqlite:///{tmp_path / 'crm.db'}")
    await db.upgrade()
    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def stuck() -> None:
        async with db.transaction():
            loop.call_soon_threadsafe(started.set)
            await asyncio.sleep(30)

    command = asyncio.ensure_future(db.on_thread(stuck))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(db.dispose(), 5)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(command, 5)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_the_database_thread_keeps_one_connection_instead_of_taking_one_from_the_pool_per_transaction(
        alice: Chat, db: Database) -> None:
    """A pool's checkout and return cost ~150 µs a transaction (its events, its reset), two per command;
    the thread's transactions take turns anyway, so it keeps one connection open for all of them."""
    await alice.say("/add 李伟 company=Acme")
    taken: list[Any] = []
    event.listen(db.command_engine.sync_engine.pool, "checkout", lambda *args: taken.append(args))
    await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
    await alice.core.answered("u-1")
    assert "Logged for #1 李伟" in alice.text and taken == []


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_transaction_sqlite_still_holds_on_the_kept_connection_is_rolled_back_before_the_next(
        db: Database) -> None:
    """What the pool's reset did for a connection coming back, the kept connection does before it is
    lent again: a transaction begun behind SQLAlchemy's back would hold the write lock for ever."""

    async def behind_its_back() -> None:
        async with db.transaction() as session:  # opens the kept connection
            await session.scalar(select(func.count()).select_from(Customer))
        kept = db._kept
        assert kept is not None
        sqlite = (await kept.get_raw_connection()).driver_connection._conn
        sqlite.execute("BEGIN IMMEDIATE")
        sqlite.execute("INSERT INTO processed_updates (key, processed_at) VALUES ('behind its back', '2026-12-03')")
        async with db.transaction() as session:
            session.add(ProcessedUpdate(key="after", processed_at=datetime(2026, 12, 3, tzinfo=timezone.utc)))
        assert db._kept is kept

    await db.on_thread(behind_its_back)
    async with db.transaction() as session:
        keys = set(await session.scalars(select(ProcessedUpdate.key)))
    assert keys == {"after"}


async def test_work_handed_to_the_thread_gives_back_its_result_or_its_exception() -> None:
    """storage.db_thread.run_on: the value, or the exception itself, comes back to the caller's loop."""
    thread = DatabaseThread("handed")

    async def where() -> str:
        return threading.current_thread().name

    async def fails() -> None:
        raise KeyError("on the thread")

    async def nothing() -> None:
        return None

    try:
        assert await thread.run(where) == "handed"
        with pytest.raises(KeyError, match="on the thread"):
            await thread.run(fails)
    finally:
        await thread.stop(nothing)

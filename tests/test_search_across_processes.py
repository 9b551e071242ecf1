"""Read-your-writes across processes (storage.search_changes): two cores, each with its own engine,
search index and change listener, on one PostgreSQL database, as two `crm-bot run` processes would be.

The indexes keep their production sync interval (5 s), so only the change notices can make a write
through one core visible through the other on the very next command.
"""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest

from handlers.context import Services
from handlers.core import Core
from storage import search_changes
from storage.db import Database
from handlers.messages import Attachment
from storage.search import CustomerSearch
from tests.chat import Chat
from tests.conftest import PG_DSN, PG_TEMPLATE, _pg_admin


def real_clock() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def pg_url(pg_template: str):
    """A PostgreSQL database of the real schema, shared by the two cores of a test."""
    if pg_template:
        pytest.skip(pg_template)
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    admin = await _pg_admin()
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{PG_TEMPLATE}"')
    yield f"{PG_DSN}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


class Process:
    """What one `crm-bot run` holds: an engine, a core and its own search index, following changes."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.search = CustomerSearch(real_clock)  # the 5 s sync of production
        self.core = Core(self.db, Services(clock=real_clock, search=self.search, default_timezone="Asia/Shanghai",
                                           default_locale="en"))
        self.listener: search_changes.ChangeListener | None = None

    async def __aenter__(self) -> "Process":
        self.listener = await search_changes.follow(self.db.url, self.search)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.listener is not None
        await self.listener.stop()
        await self.db.dispose()

    def chat(self, user_id: str, name: str) -> Chat:
        return Chat(self.core, user_id=user_id, name=name, language="en")


@pytest.fixture
async def two(pg_url: str):
    async with Process(pg_url) as a, Process(pg_url) as b:
        admin_a = a.chat("alice", "Alice")
        await admin_a.say("/start")
        yield admin_a, b.chat("alice", "Alice"), (a, b)


async def test_a_customer_added_through_one_process_is_found_by_initials_through_the_other(two) -> None:
    through_a, through_b, _ = two
    await through_b.say("/find oynn")  # B's index is loaded (and would wait 5 s before syncing again)
    assert "No customers match" in through_b.text
    await through_a.say("/add 欧阳娜娜 13800138000")
    await through_b.say("/find oynn")
    assert "欧阳娜娜" in through_b.text


async def test_rename_merge_and_forget_through_one_process_show_at_once_through_the_other(two) -> None:
    through_a, through_b, _ = two
    await through_a.say("/add 张伟 13800138001")
    await through_a.say("/add Wendy Wang 13800138002")
    await through_a.say("/add Zhang Wei 13800138003 company=Acme")
    await through_b.say("/find zw")
    assert "张伟" in through_b.text

    await through_a.say("/edit 张伟 name=欧阳娜娜")
    await through_b.say("/find oynn")
    assert "欧阳娜娜" in through_b.text
    await through_b.say("/find wendy")
    assert "Wendy Wang" in through_b.text

    await through_a.say("/merge #3 #2")
    await through_a.press("Merge")
    await through_b.say("/find wendy")
    assert "Wendy Wang" not in through_b.text

    await through_a.say("/forget #1")
    await through_a.press("Erase for good")
    await through_b.say("/find oynn")
    assert "No customers match" in through_b.text


async def test_a_listener_that_lost_its_connection_reconnects_and_catches_up(two, pg_url: str) -> None:
    through_a, through_b, (_, b) = two
    await through_b.say("/find oynn")
    admin = await _pg_admin()
    try:  # PostgreSQL ends B's listening connection, as a restart of the server would
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 "
                            "AND datname = $2", search_changes.APPLICATION_NAME, pg_url.rsplit("/", 1)[1])
    finally:
        await admin.close()
    await through_a.say("/add 欧阳娜娜 13800138000")  # written while B is not listening
    assert b.listener is not None
    for _ in range(50):
        if b.listener.listening:
            break
        await asyncio.sleep(0.1)
    assert b.listener.listening
    await through_b.say("/find oynn")
    assert "欧阳娜娜" in through_b.text


async def test_customers_imported_through_one_process_are_found_through_the_other(two) -> None:
    through_a, through_b, _ = two
    await through_b.say("/find oynn")
    await through_a.say("/import", file=Attachment("book.csv", "name,phone\n欧阳娜娜,13800138000\n".encode(), "text/csv"))
    assert "1" in through_a.text
    await through_b.say("/find oynn")
    assert "欧阳娜娜" in through_b.text


async def test_only_writes_the_index_reads_send_a_notice(two, pg_url: str) -> None:
    """A logged call or recomputed scores change no name: the other processes are not made to sync."""
    through_a, _, _ = two
    notices: list[str] = []
    listening = await asyncpg.connect(pg_url)
    await listening.add_listener(search_changes.CHANNEL, lambda *args: notices.append(args[-1]))
    try:
        await through_a.say("/add Li Wei 13800138000")
        await listening.fetchval("SELECT 1")  # the notices sent so far have arrived
        assert notices, "an added customer is announced"
        notices.clear()
        await through_a.say("/log #1 call: asked for a quote")
        await through_a.say("/edit #1 title=CEO")
        await listening.fetchval("SELECT 1")
        assert notices == []
        await through_a.say("/edit #1 company=Acme")
        await listening.fetchval("SELECT 1")
        assert len(notices) == 1 and notices[0] != search_changes.ALL
    finally:
        await listening.close()

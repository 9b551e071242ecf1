"""Several processes on one PostgreSQL, one Telegram bot by long polling (storage.leases): one of
them polls at a time; when it loses its database connection another takes over within seconds,
and nothing is lost or applied twice. The stand-in ends a displaced poll with 409 as Telegram does,
so pollers fighting would show in its record."""
from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from bot.telegram import TelegramPlatform
from storage import leases
from storage.db import Database
from storage.models import Workspace
from tests.conftest import _pg_admin
from tests.e2e.conftest import TelegramRig
from tests.e2e.telegram_api import Person, TelegramStandIn

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
PEOPLE = [Person(5_200_000_000 + n, f"Rep{n}", "en") for n in range(6)]


def conflicts(api: TelegramStandIn) -> list[str]:
    return [c.error.description for c in api.calls if c.error is not None and c.error.code == 409]


async def holder(platforms: list[TelegramPlatform], timeout: float = 10) -> TelegramPlatform:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holding = [p for p in platforms if p.lease is not None and p.lease.holding]
        if holding:
            assert len(holding) == 1
            return holding[0]
        await asyncio.sleep(0.05)
    raise AssertionError("nobody took the polling lease")


async def answered_once(api: TelegramStandIn, people: list[Person], texts: list[str]) -> None:
    """Each person has written `texts` so far: each got exactly one answer to each, none twice."""
    await api.wait_until(lambda: all(len(api.sent(p.id)) >= len(texts) for p in people), 20, "every answer")
    await asyncio.sleep(0.5)  # a second answer to anything would come by now
    counts = Counter(str(m.chat_id) for m in api.outbox)
    assert counts == {str(p.id): len(texts) for p in people}


async def cut_the_lease_connection(db: Database) -> None:
    """PostgreSQL ends the holder's lease connection, as when its process dies or its network goes."""
    admin = await _pg_admin()
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 "
                            "AND datname = $2 AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
                            leases.APPLICATION_NAME, db.url.database)
    finally:
        await admin.close()


async def test_one_of_three_processes_polls_and_another_takes_over_when_it_is_gone(
        telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database) -> None:
    platforms = [await telegram_rig.start() for _ in range(3)]
    first = await holder(platforms)
    for person in PEOPLE:
        telegram_api.says(person, "/help")
    await answered_once(telegram_api, PEOPLE, ["/help"])

    await cut_the_lease_connection(db)
    gone_at = time.monotonic()
    for person in PEOPLE:  # written while the lease changes hands
        telegram_api.says(person, "/start")
    second = await holder([p for p in platforms if p is not first])
    assert time.monotonic() - gone_at < 4
    await answered_once(telegram_api, PEOPLE, ["/help", "/start"])
    assert first.lease is not None and not first.lease.holding
    assert conflicts(telegram_api) == []

    await telegram_rig.stop(second)  # a clean stop hands over too
    for person in PEOPLE:
        telegram_api.says(person, "/me")
    third = await holder([p for p in platforms if p is not second])
    await answered_once(telegram_api, PEOPLE, ["/help", "/start", "/me"])
    assert third.lease is not None and third.lease.holding
    assert conflicts(telegram_api) == []


async def test_updates_a_dead_poller_handled_but_never_confirmed_are_not_applied_again(
        telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database) -> None:
    """The holder handled updates and died before telling Telegram: Telegram hands them to the next
    holder again (from the offset it kept), and the redelivery key in the database skips each one."""
    platforms = [await telegram_rig.start() for _ in range(2)]
    first = await holder(platforms)
    pushed = [telegram_api.says(person, "/start") for person in PEOPLE]
    await answered_once(telegram_api, PEOPLE, ["/start"])
    await cut_the_lease_connection(db)
    await holder([p for p in platforms if p is not first])
    for update in pushed:
        telegram_api.redeliver(update)
    await telegram_api.wait_until(lambda: not telegram_api.queue, what="the next holder took them")
    await answered_once(telegram_api, PEOPLE, ["/start"])  # and answered none of them again
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Workspace)) == len(PEOPLE)
    assert conflicts(telegram_api) == []

"""/metrics as Prometheus scrapes it: over HTTP, on its own address, counters moving as the bot works.

The counters are process-wide (prometheus-client's way), so every check is a
difference between a scrape before and a scrape after what the test drives.
"""
from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

import handlers.core
from bot.web import WebServer
from handlers.context import Services
from handlers.messages import Attachment
from storage.db import Database
from tests.chat import Chat
from tests.conftest import Clock
from tests.e2e.conftest import SlackRig, TelegramRig, free_port
from tests.e2e.telegram_api import TelegramStandIn
from tests.e2e.test_telegram import ALICE, one
from tests.test_scheduler import Bot, shanghai

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


class Scraper:
    """A WebServer with /metrics and /healthz on their own address, read over HTTP."""

    def __init__(self, db: Database, services: Services) -> None:
        self.public = ("127.0.0.1", free_port())
        self.private = ("127.0.0.1", free_port())
        self.server = WebServer(db, *self.public, clock=services.clock, metrics_address=self.private)
        self.http = aiohttp.ClientSession()

    async def get(self, address: tuple[str, int], path: str) -> tuple[int, str]:
        async with self.http.get(f"http://{address[0]}:{address[1]}{path}") as response:
            return response.status, await response.text()

    async def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = await self.get(self.private, "/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    async def value(self, name: str, **labels: str) -> float:
        return (await self.samples()).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def scraper(db: Database, services: Services):
    scraper = Scraper(db, services)
    await scraper.server.start()
    yield scraper
    await scraper.http.close()
    await scraper.server.stop()


async def test_commands_are_counted_by_name_and_outcome_and_timed(
    scraper: Scraper, alice: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await alice.say("/start")
    before = await scraper.samples()
    await alice.say("/add Kim")
    await alice.say("/add Lee")
    await alice.say("/show #99")  # no such customer: the member's mistake
    await alice.say("/frobnicate")  # not a command: counted as text, never by what was typed
    monkeypatch.setattr(handlers.core, "dispatch", _crash)
    await alice.say("/add Park")
    after = await scraper.samples()

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("crm_commands_total", command="add", outcome="ok") == 2
    assert moved("crm_commands_total", command="show", outcome="user_error") == 1
    assert moved("crm_commands_total", command="text", outcome="user_error") == 1
    assert moved("crm_commands_total", command="add", outcome="failure") == 1
    assert moved("crm_command_seconds_count", command="add") == 3
    assert moved("crm_command_seconds_sum", command="add") > 0
    assert not any("frobnicate" in str(labels) for _, labels in after)


async def _crash(ctx: object) -> None:
    raise RuntimeError("a bug in a handler")


async def test_a_command_the_database_fails_under_is_counted_as_a_failure(
    scraper: Scraper, alice: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await alice.say("/start")
    failed = await scraper.value("crm_commands_total", command="add", outcome="failure")

    async def database_gone(ctx: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionResetError("the server closed the connection"))

    monkeypatch.setattr(handlers.core.identity, "resolve", database_gone)
    with pytest.raises(OperationalError):
        await alice.say("/add Kim")
    monkeypatch.undo()
    assert await scraper.value("crm_commands_total", command="add", outcome="failure") == failed + 1


async def test_metrics_and_health_live_on_their_own_address_when_one_is_set(scraper: Scraper) -> None:
    assert (await scraper.get(scraper.public, "/metrics"))[0] == 404
    assert (await scraper.get(scraper.public, "/healthz"))[0] == 404
    status, body = await scraper.get(scraper.private, "/healthz")
    assert status == 200 and '"ok"' in body


async def test_due_reminders_are_gauged_at_scrape_and_sends_and_late_ones_counted(
    db: Database, services: Services, clock: Clock, scraper: Scraper, alice: Chat
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    await alice.say("/remind #1 tomorrow 2pm visit")
    bot = Bot(db, services)
    sent, late = (await scraper.value("crm_sends_total", platform="console", outcome="sent"),
                  await scraper.value("crm_late_deliveries_total", kind="reminder"))
    clock.now = shanghai(11, 19, 10)
    assert await scraper.value("crm_reminders_due_unsent") == 1  # due now; no poll yet
    await bot.poll()
    assert await scraper.value("crm_reminders_due_unsent") == 0
    assert await scraper.value("crm_sends_total", platform="console", outcome="sent") == sent + 1
    assert await scraper.value("crm_late_deliveries_total", kind="reminder") == late
    clock.now = shanghai(11, 19, 17)  # down from 11:00 to 17:00: the 14:00 one waits, then goes late
    assert await scraper.value("crm_reminders_due_unsent") == 1
    await Bot(db, services).poll()
    assert await scraper.value("crm_late_deliveries_total", kind="reminder") == late + 1
    assert await scraper.value("crm_reminders_due_unsent") == 0


async def test_a_blocked_send_is_counted_as_blocked(
    db: Database, services: Services, clock: Clock, scraper: Scraper, alice: Chat
) -> None:
    from reminders.delivery import RecipientBlocked

    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    bot = Bot(db, services)
    bot.sender.fail("dm-alice", RecipientBlocked("Forbidden: bot was blocked by the user"))
    blocked = await scraper.value("crm_sends_total", platform="console", outcome="blocked")
    clock.now = shanghai(11, 19, 10, 1)
    await bot.poll()
    assert await scraper.value("crm_sends_total", platform="console", outcome="blocked") == blocked + 1


async def test_imported_rows_are_counted_by_what_became_of_them(scraper: Scraper, alice: Chat) -> None:
    await alice.say("/add Kim phone=13800138000")
    before = {o: await scraper.value("crm_import_rows_total", outcome=o) for o in ("added", "merged", "rejected")}
    csv = "name,phone\nKim,13800138000\nLi Wei,13700137000\nWang Fang,13900139000\n"
    await alice.say("/import", file=Attachment("people.csv", csv.encode(), "text/csv"))
    assert "Rows read: 3. Added: 2; merged into customers already in the book: 1" in alice.text
    after = {o: await scraper.value("crm_import_rows_total", outcome=o) for o in ("added", "merged", "rejected")}
    assert {o: after[o] - before[o] for o in after} == {"added": 2, "merged": 1, "rejected": 0}


@SQLITE_ONLY
async def test_a_telegram_429_and_its_wait_are_counted(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, scraper: Scraper
) -> None:
    await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    floods, waited = (await scraper.value("crm_rate_limited_total", platform="telegram"),
                      await scraper.value("crm_retry_after_seconds_total", platform="telegram"))
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=429, retry_after=1)
    await one(telegram_api, ALICE, "/help")
    assert await scraper.value("crm_rate_limited_total", platform="telegram") == floods + 1
    assert await scraper.value("crm_retry_after_seconds_total", platform="telegram") == waited + 1


@SQLITE_ONLY
async def test_a_slack_429_and_its_wait_are_counted(slack_rig: SlackRig, scraper: Scraper) -> None:
    await slack_rig.start()
    alice = slack_rig.person("U0ALICE01", "Alice")
    floods, waited = (await scraper.value("crm_rate_limited_total", platform="slack"),
                      await scraper.value("crm_retry_after_seconds_total", platform="slack"))
    slack_rig.api.fail_next("chat.postMessage", "ratelimited", retry_after=1)
    await slack_rig.wire.command(alice.command_form('add "Li Wei" company=Acme'))
    await slack_rig.settle()
    assert [call.status for call in slack_rig.api.calls_to("chat.postMessage")] == [429, 200]
    assert await scraper.value("crm_rate_limited_total", platform="slack") == floods + 1
    assert await scraper.value("crm_retry_after_seconds_total", platform="slack") == waited + 1

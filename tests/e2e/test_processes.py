"""Three real `crm-bot run` processes on one PostgreSQL database (issue 14).

Webhook mode: nginx in front of the three, the Telegram stand-in posting updates to its webhook
and trying again on anything but 200 (as Telegram does), Slack events signed and posted through
it too (tried again with X-Slack-Retry-Num). Two teams work, one process is killed (-9) while
updates are under way: every command is answered once, every reminder delivered once, and a
customer added through one process is found through another on the next command.

Polling mode: one of the three polls (the lease); it is killed, another takes over and answers
what came meanwhile, each update once, and the stand-in (which ends a displaced poll with 409 as
Telegram does) saw no conflict.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from storage import followups
from storage.db import Database
from storage.models import Customer, Identity, Member, Workspace
from tests.e2e.processes import BotProcess, Nginx, free_port, wait_for
from tests.e2e.slack_api import BOT_TOKEN, SIGNING_SECRET, SlackApiStandIn, SlackPerson, SlackWire
from tests.e2e.telegram_api import Person, TelegramStandIn

SECRET = "several-processes-secret"
TEAM = [Person(5_400_000_001, "Alice", "en"), Person(5_400_000_002, "Bob", "en"), Person(5_400_000_003, "Carol", "en")]
#: What the lease holder logs (storage.leases).
HOLDER = "this process holds the lease"
REPS = [Person(5_400_000_100 + n, f"Rep{n}", "en") for n in range(4)]


@pytest.fixture
async def stand_ins():
    telegram, slack = await TelegramStandIn().start(), await SlackApiStandIn().start()
    yield telegram, slack
    await telegram.stop()
    await slack.stop()


def processes(tmp_path: Path, url: str, telegram: TelegramStandIn, slack: SlackApiStandIn | None,
              **env: str) -> list[BotProcess]:
    settings = {"DATABASE_URL": url, "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_BASE_URL": telegram.base_url,
                "DEFAULT_LOCALE": "en", "DEFAULT_TIMEZONE": "Asia/Shanghai", "REMINDER_POLL_SECONDS": "0.5", **env}
    if slack is not None:
        settings.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=slack.base_url)
    return [BotProcess(f"bot{n}", tmp_path / f"bot{n}", settings) for n in range(3)]


def stopped(bots: list[BotProcess], lb: Nginx | None = None) -> None:
    for bot in bots:
        bot.stop()
    if lb is not None:
        lb.stop()


# --- Telegram, as Telegram posts to a webhook -----------------------------------------------------

async def post_update(http: aiohttp.ClientSession, url: str, update: dict[str, Any]) -> int:
    try:
        async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


async def telegram_says(api: TelegramStandIn, http: aiohttp.ClientSession, url: str, person: Person, text: str) -> int:
    """Post the update until it is answered with 200, as Telegram does; how many tries it took."""
    update = api.message(person, text)
    update["update_id"] = next(api._next_update)
    api.remember_chat(person.chat)  # as deliver_webhook does: the bot may answer there
    for attempt in range(1, 20):
        if await post_update(http, url, update) == 200:
            return attempt
        await asyncio.sleep(0.3)
    raise AssertionError(f"no process took {text!r}")


def telegram_texts(api: TelegramStandIn, person: Person) -> list[str]:
    return [m.text for m in api.sent(person.id)]


# --- Slack, as Slack posts events ---------------------------------------------------------------------

async def slack_says(wire: SlackWire, person: SlackPerson, text: str) -> None:
    body = person.dm_event(text)
    for attempt in range(20):
        if (await wire.event(body, retry=attempt or None)).status == 200:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"no process took {text!r}")


def slack_texts(slack: SlackApiStandIn, person: SlackPerson) -> list[str]:
    return [m.get("text", "") for m in person.messages(person.dm)]


async def no_settle() -> None:
    """The app runs in other processes: the test waits for what they send instead."""


async def remind_everyone(url: str, token: str, due_in: float) -> dict[str, str]:
    """A reminder for every member with a direct chat, due shortly; member's DM chat → its marker."""
    db = Database(url)
    markers: dict[str, str] = {}
    now = datetime.now(timezone.utc)
    try:
        async with db.transaction() as session:
            rows = await session.execute(select(Member, Workspace, Identity.dm_chat_id)
                                         .join(Workspace, Workspace.id == Member.workspace_id)
                                         .join(Identity, Identity.member_id == Member.id)
                                         .where(Identity.dm_chat_id.is_not(None)))
            for member, workspace, dm_chat in rows.all():
                marker = f"[{token}-{member.id}]"
                await followups.create_reminder(session, workspace, member_id=member.id, created_by=member.id,
                                                customer_id=None, due_at=now + timedelta(seconds=due_in),
                                                explicit_time=True, note=f"call back {marker}", now=now)
                markers[dm_chat] = marker
    finally:
        await db.dispose()
    return markers


async def customers(url: str) -> Counter[str]:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return Counter(await session.scalars(select(Customer.name)))
    finally:
        await db.dispose()


async def test_three_webhook_processes_behind_nginx_answer_once_through_a_kill(
        tmp_path: Path, empty_pg: str, stand_ins: tuple[TelegramStandIn, SlackApiStandIn]) -> None:
    if Nginx.missing():
        pytest.skip(Nginx.missing())
    telegram, slack = stand_ins
    lb_port = free_port()
    bots = processes(tmp_path, empty_pg, telegram, slack, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{lb_port}/telegram",
                     TELEGRAM_WEBHOOK_SECRET=SECRET)
    lb = Nginx(tmp_path / "nginx", [bot.port for bot in bots], lb_port)
    try:
        for bot in bots:
            bot.start()
        await lb.start()
        for bot in bots:
            await bot.logged("Slack ready", timeout=45)
        async with aiohttp.ClientSession() as http:
            hook = f"{lb.url}/telegram"
            # team one, on Telegram: Alice starts a book, Bob and Carol join it
            await telegram_says(telegram, http, hook, TEAM[0], "/start")
            await telegram_says(telegram, http, hook, TEAM[0], "/invite")
            await wait_for(lambda: len(telegram_texts(telegram, TEAM[0])) == 2, 10, "the invite")
            code = re.findall(r"/join (\w+)", telegram_texts(telegram, TEAM[0])[1])[0]
            for person in TEAM[1:]:
                await telegram_says(telegram, http, hook, person, f"/join {code}")
            # team two, on Slack, through the same balancer
            wire = SlackWire(f"{lb.url}/slack/events", http)
            dana = SlackPerson(slack, wire, no_settle, user="U0DANA001", name="Dana")
            await slack_says(wire, dana, "help")
            await wait_for(lambda: slack_texts(slack, dana), 10, "Dana's first answer")

            async def telegram_burst(person: Person, first: int, count: int) -> None:
                for n in range(first, first + count):
                    await telegram_says(telegram, http, hook, person, f"/add {person.first_name}{n:02d} 1380{TEAM.index(person)}{n:06d}")

            async def slack_burst(first: int, count: int) -> None:
                for n in range(first, first + count):
                    await slack_says(wire, dana, f"add Dana{n:02d} 1390013{n:04d}")

            await asyncio.gather(*(telegram_burst(p, 0, 4) for p in TEAM), slack_burst(0, 4))
            # kill -9 one process while Telegram updates are under way
            burst = asyncio.gather(*(telegram_burst(p, 4, 6) for p in TEAM))
            await asyncio.sleep(0.4)
            bots[0].kill()
            await burst
            await slack_burst(4, 4)

            # read-your-writes: added through one process, found by its initials through another at once
            await telegram_says(telegram, http, f"{bots[1].url}/telegram", TEAM[0], "/add 欧阳娜娜 13700137000")
            await wait_for(lambda: any("欧阳娜娜" in t for t in telegram_texts(telegram, TEAM[0])), 10, "the card")
            before = len(telegram.sent(TEAM[1].id))
            await telegram_says(telegram, http, f"{bots[2].url}/telegram", TEAM[1], "/find oynn")
            await wait_for(lambda: len(telegram.sent(TEAM[1].id)) > before, 10, "Bob's search")
            assert "欧阳娜娜" in telegram_texts(telegram, TEAM[1])[-1]

            markers = await remind_everyone(empty_pg, "due", due_in=1.0)
            assert len(markers) == len(TEAM) + 1

            def delivered() -> Counter[str]:
                texts = [m.text for m in telegram.outbox] + [m.get("text", "") for m in slack.messages.values()]
                return Counter(marker for marker in markers.values() for text in texts if marker in text)

            await wait_for(lambda: len(delivered()) == len(markers), 20, "every reminder")
            await asyncio.sleep(1.5)  # a second delivery of any of them would come by now

        assert delivered() == {marker: 1 for marker in markers.values()}
        book = await customers(empty_pg)
        expected = [f"{p.first_name}{n:02d}" for p in TEAM for n in range(10)] + [f"Dana{n:02d}" for n in range(8)]
        assert {name: book[name] for name in expected} == {name: 1 for name in expected}  # applied once each
        for person in TEAM:  # /start or /join, then one card per /add: each answered once
            cards = [t for t in telegram_texts(telegram, person) if re.search(rf"{person.first_name}\d\d", t)]
            assert len(cards) == 10, (person.first_name, cards)
        dana_cards = [t for t in slack_texts(slack, dana) if re.search(r"Dana\d\d", t)]
        assert len(dana_cards) == 8, dana_cards
        for bot in bots[1:]:
            assert "Traceback" not in bot.log(), bot.log()[-3000:]
    finally:
        stopped(bots, lb)


async def test_three_polling_processes_one_polls_and_a_killed_holder_is_taken_over(
        tmp_path: Path, empty_pg: str, stand_ins: tuple[TelegramStandIn, SlackApiStandIn]) -> None:
    telegram, _ = stand_ins
    bots = processes(tmp_path, empty_pg, telegram, None)
    try:
        for bot in bots:
            bot.start()
        for bot in bots:
            await bot.logged("Telegram bot @", timeout=45)
        await wait_for(lambda: sum(HOLDER in bot.log() for bot in bots) == 1, 10, "one lease holder")
        for person in REPS:
            telegram.says(person, "/start")
        await wait_for(lambda: all(telegram.sent(p.id) for p in REPS), 20, "every /start answered")
        holder = next(bot for bot in bots if HOLDER in bot.log())
        holder.kill()
        killed_at = time.monotonic()
        for person in REPS:  # written while nobody polls
            for n in range(3):
                telegram.says(person, f"/add {person.first_name}x{n} 1350{REPS.index(person)}{n:06d}")
        await wait_for(lambda: any(HOLDER in bot.log() for bot in bots if bot is not holder), 10,
                       "another process to take the lease")
        took_over = time.monotonic() - killed_at
        await wait_for(lambda: all(len(telegram.sent(p.id)) >= 4 for p in REPS), 20, "every /add answered")
        await asyncio.sleep(1.0)
        assert took_over < 5
        assert {p.first_name: len(telegram.sent(p.id)) for p in REPS} == {p.first_name: 4 for p in REPS}
        book = await customers(empty_pg)
        assert all(book[f"{p.first_name}x{n}"] == 1 for p in REPS for n in range(3))
        assert [c.error.description for c in telegram.calls if c.error is not None and c.error.code == 409] == []
        print(f"\npolling lease taken over {took_over:.2f} s after the holder was killed")
    finally:
        stopped(bots)

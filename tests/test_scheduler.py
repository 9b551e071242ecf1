"""The bot speaks first (SPEC §4): revisit reminders, the silent sweep, digests, delivery guarantees.

Each test runs on SQLite and PostgreSQL. The clock is moved by hand and `poll()` is
called directly (what APScheduler calls every REMINDER_POLL_SECONDS); what each
member receives is read from recording senders, one per platform.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from handlers.context import Services
from handlers.core import Core
from handlers.messages import Reply
from reminders import claims
from reminders.delivery import DeliveryError, RecipientBlocked, leaving
from reminders.scheduler import Scheduler
from storage import followups, schedule, workspaces
from storage.db import Database
from storage.models import (
    Customer,
    CustomerTag,
    Identity,
    Member,
    OutboxMessage,
    Reminder,
    Workspace,
)
from tests.chat import Chat
from tests.conftest import Clock

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
PNG = b"\x89PNG\r\n\x1a\n"


def shanghai(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


# --- the scheduler side of a test --------------------------------------------------------

class RecordingSender:
    """A `Sender` that keeps what it was asked to send; `fail(chat, error, …)` makes the next sends to
    that chat raise those errors, in order."""

    def __init__(self, platform: str = "console") -> None:
        self.platform = platform
        self.clock: Clock | None = None  # set by Bot: when each message arrived
        self.sent: list[tuple[str, Reply]] = []
        self.arrived: list[datetime] = []
        self.failures: dict[str, list[Exception]] = {}

    def fail(self, chat_id: str, *errors: Exception) -> None:
        self.failures.setdefault(chat_id, []).extend(errors)

    async def send(self, chat_id: str, reply: Reply) -> None:
        await leaving()  # as a platform's HTTP client does before the request goes out
        waiting = self.failures.get(chat_id)
        if waiting:
            raise waiting.pop(0)
        self.sent.append((chat_id, reply))
        if self.clock is not None:
            self.arrived.append(self.clock())

    def to(self, chat_id: str) -> list[Reply]:
        return [reply for chat, reply in self.sent if chat == chat_id]

    def texts(self, chat_id: str) -> list[str]:
        return [reply.plain_text() for reply in self.to(chat_id)]


class Bot:
    """A Scheduler on the test's database, as a fresh process would build it; sleeping moves the clock."""

    def __init__(self, db: Database, services: Services, *senders: RecordingSender, poll_seconds: float = 30) -> None:
        self.clock = services.clock
        self.slept: list[float] = []
        self.senders = senders or (RecordingSender(),)
        for sender in self.senders:
            sender.clock = services.clock  # type: ignore[assignment]
        self.scheduler = Scheduler(db, services, {s.platform: s for s in self.senders}, poll_seconds=poll_seconds,
                                   sleep=self.sleep)

    @property
    def sender(self) -> RecordingSender:
        return self.senders[0]

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds=seconds)  # type: ignore[attr-defined]

    async def poll(self) -> None:
        await self.scheduler.poll()

    async def at(self, moment: datetime) -> None:
        """Move the clock to `moment` and poll."""
        assert moment >= self.clock(), "the clock only moves forward"
        self.clock.now = moment  # type: ignore[attr-defined]
        await self.poll()


@pytest.fixture
def bot(db: Database, services: Services) -> Bot:
    return Bot(db, services)


async def member_id(db: Database, name: str) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(Member.id).where(Member.name == name))


async def set_member(db: Database, name: str, **values: object) -> None:
    async with db.transaction() as session:
        await session.execute(update(Member).where(Member.name == name).values(**values))


async def set_customer(db: Database, number: int, workspace: str = "console", **values: object) -> None:
    async with db.transaction() as session:
        ws_id = await session.scalar(select(Workspace.id).where(Workspace.name == workspace))
        await session.execute(update(Customer).where(Customer.workspace_id == ws_id, Customer.number == number)
                              .values(**values))


async def reminder_row(db: Database, number: int) -> Reminder:
    async with db.transaction() as session:
        return await session.scalar(select(Reminder).where(Reminder.number == number))


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.transaction() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def add_reminder(db: Database, who: str, due: datetime, *, explicit: bool, note: str = "",
                       customer_number: int | None = 1) -> int:
    """A reminder written through storage (when the test needs a due time /remind cannot express)."""
    async with db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == who))
        workspace = await session.get(Workspace, member.workspace_id)
        customer_id = None
        if customer_number is not None:
            customer_id = await session.scalar(select(Customer.id).where(
                Customer.workspace_id == workspace.id, Customer.number == customer_number))
        row = await followups.create_reminder(
            session, workspace, member_id=member.id, created_by=member.id, customer_id=customer_id, due_at=due,
            explicit_time=explicit, note=note, now=due - timedelta(days=1))
        return row.number


def labels(reply: Reply) -> list[str]:
    return [button.label for button in reply.all_buttons()]


# --- revisit reminders ------------------------------------------------------------------------

async def test_reminder_arrives_at_due_time_with_buttons_and_they_work_after_a_restart(
    db: Database, services: Services, clock: Clock, core: Core, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add 王芳 13800138000 company=Acme")
    await alice.say("/remind #1 tomorrow 10am bring the samples")
    due = shanghai(11, 19, 10)
    await bot.at(due - timedelta(minutes=1))
    assert bot.sender.sent == []

    await bot.at(due)
    [reply] = bot.sender.to("dm-alice")
    assert reply.text == "⏰ Revisit #1 王芳 · Acme — bring the samples"
    assert "Phone: +8613800138000" in reply.plain_text()
    assert "Last contact: —" in reply.plain_text()
    assert labels(reply) == ["Done", "Snooze 1 day", "Snooze 1 week", "Log"]
    await bot.at(due + timedelta(minutes=5))
    assert len(bot.sender.sent) == 1, "sent once"

    # A restart: new Core, new Scheduler on the same database; the old message's buttons still work.
    core2 = Core(db, services)
    alice2 = Chat(core2, user_id="alice", name="Alice")
    restarted = Bot(db, services)
    await alice2.press("Snooze 1 day", [reply])  # pressed at 10:05: a day from now
    assert "moved to 2026-11-20 Fri 10:05" in alice2.text
    snoozed = due + timedelta(days=1, minutes=5)
    await restarted.at(snoozed - timedelta(minutes=1))
    assert restarted.sender.sent == []
    await restarted.at(snoozed)
    [again] = restarted.sender.to("dm-alice")
    assert again.text.startswith("⏰ Revisit #1 王芳")
    assert "Late" not in again.plain_text()

    await alice2.press("Done", [again])
    assert "Reminder #1 done" in alice2.text
    assert (await reminder_row(db, 1)).status == "done"
    await restarted.at(due + timedelta(days=9))
    assert len(restarted.sender.sent) == 1


async def test_reminder_in_the_recipients_language_and_time_zone(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await bob.say("/add 李伟")
    await bob.say("/me tz=Europe/Berlin")
    await bob.say("/remind 李伟 tomorrow 9am 带样品")
    berlin_nine = datetime(2026, 11, 19, 9, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    await bot.at(berlin_nine - timedelta(seconds=1))
    assert bot.sender.sent == []
    await bot.at(berlin_nine)
    [reply] = bot.sender.to("dm-bob")
    assert reply.text == "⏰ 回访 #1 李伟 — 带样品"
    assert labels(reply) == ["完成", "推迟一天", "推迟一周", "记录"]


async def test_a_reminder_whose_customer_was_deleted_is_not_sent(
    db: Database, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow call")
    await set_customer(db, 1, deleted_at=clock.now)
    await bot.at(shanghai(11, 19, 9))
    assert bot.sender.sent == []
    row = await reminder_row(db, 1)
    assert row.sent_at is not None and row.last_error == "nothing left to say"


# --- quiet hours and downtime ---------------------------------------------------------------------

async def test_quiet_hours_hold_reminders_until_eight_unless_the_time_was_explicit(
    db: Database, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    vague = await add_reminder(db, "Alice", shanghai(11, 18, 22), explicit=False, note="vague")
    await alice.say("/remind #1 today 22:30 explicit")
    explicit = await reminder_row(db, vague + 1)
    assert explicit.explicit_time and explicit.due_at == shanghai(11, 18, 22, 30)

    await bot.at(shanghai(11, 18, 22))
    assert bot.sender.sent == []
    await bot.at(shanghai(11, 18, 22, 30))
    assert [r.text for r in bot.sender.to("dm-alice")] == ["⏰ Revisit #1 Kim — explicit"]
    for moment in (shanghai(11, 19, 3), shanghai(11, 19, 7, 59)):
        await bot.at(moment)
    assert len(bot.sender.sent) == 1, "held through the night"
    await bot.at(shanghai(11, 19, 8))
    texts = [r.text for r in bot.sender.to("dm-alice")]
    assert texts[1] == "⏰ Revisit #1 Kim — vague", "held, not dropped, and not called late"
    assert len(texts) == 2


async def test_what_fell_due_during_downtime_is_sent_once_marked_late(
    db: Database, services: Services, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    await alice.say("/remind #1 tomorrow 2pm visit")
    await bot.at(shanghai(11, 19, 10))
    assert "Late" not in bot.sender.to("dm-alice")[0].plain_text()
    # the bot is down from 11:00 to 17:00; a new process starts
    restarted = Bot(db, services)
    await restarted.at(shanghai(11, 19, 17))
    [late] = restarted.sender.to("dm-alice")
    assert late.text.splitlines() == ["⚠ Late: this was due 2026-11-19 Thu 14:00, while the bot was offline.",
                                      "⏰ Revisit #1 Kim — visit"]
    await restarted.at(shanghai(11, 19, 18))
    assert len(restarted.sender.sent) == 1 and len(bot.sender.sent) == 1


async def test_after_downtime_a_reminder_timed_at_night_goes_at_once_and_one_timed_by_day_waits(
    db: Database, services: Services, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 1am night shift")  # timed inside the quiet hours
    await alice.say("/remind #1 today 20:00 evening call")  # timed outside them
    await bot.at(shanghai(11, 18, 19))
    # the bot is down from 19:00 to 01:03; a new process starts
    restarted = Bot(db, services)
    await restarted.at(shanghai(11, 19, 1, 3))
    [night] = restarted.sender.texts("dm-alice")
    assert night.startswith("⚠ Late: this was due 2026-11-19 Thu 01:00") and "night shift" in night
    await restarted.at(shanghai(11, 19, 8))
    assert len(restarted.sender.sent) == 2 and "evening call" in restarted.sender.texts("dm-alice")[1]


async def test_a_short_downtime_is_late_too_and_a_digest_keeps_its_early_time(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    await alice.say("/add Kim")
    await alice.say("/digest on 07:45")  # before the quiet hours end: the manager chose it
    await alice.say("/remind #1 tomorrow 10am call")
    early = Bot(db, services, poll_seconds=5)
    await early.at(shanghai(11, 19, 7, 45))
    assert [r.title for r in early.sender.to("dm-alice")] == ["Daily digest — 2026-11-18"]
    restarted = Bot(db, services, poll_seconds=5)  # down from 09:59:50 for 3 minutes: late, whatever the poll
    await restarted.at(shanghai(11, 19, 10, 2, 50))
    [call] = restarted.sender.texts("dm-alice")
    assert call.startswith("⚠ Late") and "call" in call
    await alice.say("/remind #1 today 10:30 visit")
    again = Bot(db, services, poll_seconds=5)  # down for 40 seconds only: not worth a warning
    await again.at(shanghai(11, 19, 10, 30, 40))
    [visit] = again.sender.texts("dm-alice")
    assert visit.startswith("⏰ Revisit #1 Kim — visit")


async def test_a_claim_left_by_a_crash_is_sent_once_after_restart_or_lease(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    """A process claimed a reminder, then died before sending: it is not lost."""
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    clock.now = shanghai(11, 19, 10)
    async with db.transaction() as session:
        claim = await schedule.claim(session, Reminder, clock.now, limit=10)
    assert len(claim.ids) == 1
    restarted = Bot(db, services)
    if db.is_sqlite:
        await restarted.scheduler.recover()  # what start() does first: one process owns SQLite
        await restarted.poll()
    else:  # another process may hold it on PostgreSQL: wait out the lease
        await restarted.poll()
        assert restarted.sender.sent == []
        await restarted.at(claim.until + timedelta(seconds=1))
    assert len(restarted.sender.to("dm-alice")) == 1
    await restarted.at(clock.now + timedelta(hours=1))
    assert len(restarted.sender.sent) == 1


class ProcessKilled(BaseException):
    """kill -9 in the middle of a poll: nothing after it runs (not an error any handler catches)."""


class KilledMidSend(RecordingSender):
    """The process dies while sending: before the message left it, after it left but before it
    arrived (the network lost it), or after the platform took it."""

    def __init__(self, *, left: bool, arrived: bool) -> None:
        super().__init__()
        self.left, self.arrived_first = left, arrived

    async def send(self, chat_id: str, reply: Reply) -> None:
        if self.left:
            await leaving()
        if self.arrived_first:
            await super().send(chat_id, reply)
        raise ProcessKilled


async def crash_mid_send(db: Database, services: Services, *, left: bool = True,
                         arrived: bool = True) -> KilledMidSend:
    sender = KilledMidSend(left=left, arrived=arrived)
    with pytest.raises(ProcessKilled):
        await Bot(db, services, sender).poll()
    return sender


async def restart(db: Database, services: Services, clock: Clock, lease: datetime) -> Bot:
    """A new process, once what the dead one held is free: at once on SQLite (one process owns
    the file), after the dead one's claim (30 s) and send lease (5 minutes) on PostgreSQL."""
    restarted = Bot(db, services)
    if db.is_sqlite:
        await restarted.scheduler.recover()
        await restarted.poll()
    else:
        await restarted.at(clock.now + schedule.CLAIM_LEASE + timedelta(seconds=1))
        await restarted.at(lease + timedelta(seconds=1))
    return restarted


async def test_a_send_cut_off_after_it_left_counts_as_delivered_and_the_rest_of_its_batch_goes_soon(
    db: Database, services: Services, clock: Clock, alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    """A message on the wire when the process died is not sent again (reminders.claims). What the
    dead process had only claimed is not held for the send lease."""
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    await alice.say("/remind #1 tomorrow 10am visit")
    clock.now = shanghai(11, 19, 10)
    dead = await crash_mid_send(db, services)
    assert [r.text for r in dead.to("dm-alice")] == ["⏰ Revisit #1 Kim — call"]
    cut_off = await reminder_row(db, 1)
    assert (cut_off.attempts, cut_off.last_error, cut_off.sent_at) == (1, None, None)
    assert schedule.interrupted(cut_off) and (await reminder_row(db, 2)).attempts == 0

    restarted = await restart(db, services, clock, cut_off.claimed_until)
    [text] = [r.text for r in restarted.sender.to("dm-alice")]
    assert text == "⏰ Revisit #1 Kim — visit"  # PostgreSQL: free again 30 s after the dead one's claim
    assert "reminders 1 had left for the platform when its process stopped; counted as delivered" in caplog.text
    row = await reminder_row(db, 1)
    assert row.sent_at is not None and row.last_error == schedule.CUT_OFF and not schedule.interrupted(row)
    await restarted.at(clock.now + timedelta(hours=1))
    assert len(restarted.sender.sent) == 1


async def test_a_send_cut_off_before_it_left_is_sent_again_once(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    """Killed while building the message or waiting in a flood limiter: nothing left, so it goes again."""
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    clock.now = shanghai(11, 19, 10)
    assert (await crash_mid_send(db, services, left=False, arrived=False)).sent == []
    row = await reminder_row(db, 1)
    assert schedule.stopped_before_the_wire(row) and not schedule.interrupted(row)
    restarted = await restart(db, services, clock, row.claimed_until)
    [text] = [r.text for r in restarted.sender.to("dm-alice")]
    assert text.endswith("⏰ Revisit #1 Kim — call")
    assert text.startswith("⚠ Late") == (not db.is_sqlite)  # PostgreSQL waited out the dead one's lease
    await restarted.at(clock.now + timedelta(hours=1))
    assert len(restarted.sender.sent) == 1 and (await reminder_row(db, 1)).last_error is None


async def test_a_message_that_keeps_stopping_the_process_before_it_leaves_is_given_up(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    clock.now = shanghai(11, 19, 10)
    for _ in range(claims.MAX_ATTEMPTS):
        await crash_mid_send(db, services, left=False, arrived=False)
        clock.advance(minutes=6)  # past the send lease (PostgreSQL); SQLite releases at restart
        if db.is_sqlite:
            await Bot(db, services).scheduler.recover()
    survivor = Bot(db, services)
    await survivor.poll()
    row = await reminder_row(db, 1)
    assert survivor.sender.sent == [] and row.last_error == "kept stopping the process before it was sent"
    await alice.say("/reminders")
    assert "Kim — call" in alice.text  # still pending for the rep to see


async def test_a_send_lost_on_the_wire_is_not_repeated_and_the_reminder_still_waits(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    """The price of never sending twice: a push the network lost as the process died stays lost."""
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")
    clock.now = shanghai(11, 19, 10)
    assert (await crash_mid_send(db, services, left=True, arrived=False)).sent == []
    restarted = await restart(db, services, clock, (await reminder_row(db, 1)).claimed_until)
    assert restarted.sender.sent == []
    await alice.say("/reminders")
    assert "Kim — call" in alice.text


async def test_a_failed_try_takes_its_mark_back_so_a_crash_in_the_back_off_sends_again(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am call")

    class FailsThenDies(RecordingSender):
        async def send(self, chat_id: str, reply: Reply) -> None:
            await leaving()
            raise DeliveryError("Too Many Requests", retry_after=5)

    async def killed_in_back_off(seconds: float) -> None:
        raise ProcessKilled

    dying = Bot(db, services, FailsThenDies())
    dying.scheduler.delivery.sleep = killed_in_back_off
    clock.now = shanghai(11, 19, 10)
    with pytest.raises(ProcessKilled):
        await dying.poll()
    row = await reminder_row(db, 1)
    assert schedule.stopped_before_the_wire(row)
    restarted = await restart(db, services, clock, row.claimed_until)
    [text] = [r.text for r in restarted.sender.to("dm-alice")]
    assert text.endswith("⏰ Revisit #1 Kim — call")


# --- platform errors ---------------------------------------------------------------------------------

async def test_retry_after_is_honoured_and_the_message_sent_once(
    db: Database, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am short wait")
    await alice.say("/remind #1 tomorrow 11am long wait")
    bot.sender.fail("dm-alice", DeliveryError("Too Many Requests", retry_after=5))
    await bot.at(shanghai(11, 19, 10))
    assert bot.slept == [5]
    assert [r.text for r in bot.sender.to("dm-alice")] == ["⏰ Revisit #1 Kim — short wait"]

    bot.sender.fail("dm-alice", DeliveryError("Too Many Requests", retry_after=600))
    await bot.at(shanghai(11, 19, 11))
    assert len(bot.sender.sent) == 1, "a long wait is not slept inline"
    row = await reminder_row(db, 2)
    assert row.attempts == 1 and row.sent_at is None and "Too Many" in row.last_error
    await bot.at(shanghai(11, 19, 11, 9))
    assert len(bot.sender.sent) == 1
    await bot.at(shanghai(11, 19, 11, 10, ) + timedelta(seconds=1))
    assert [r.text for r in bot.sender.to("dm-alice")][1:] == ["⏰ Revisit #1 Kim — long wait"]
    await bot.at(shanghai(11, 19, 12))
    assert len(bot.sender.sent) == 2


async def test_errors_without_retry_after_back_off_and_one_failure_never_stops_the_rest(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await alice.say("/add Kim")
    await bob.say("/add 李伟")
    await alice.say("/remind #1 tomorrow 10am a")
    await bob.say("/remind #2 tomorrow 10am b")
    bot.sender.fail("dm-alice", *(DeliveryError("timed out") for _ in range(3)))
    await bot.at(shanghai(11, 19, 10))
    assert bot.slept == [1, 2], "exponential back-off inline"
    assert bot.sender.to("dm-alice") == [] and len(bot.sender.to("dm-bob")) == 1
    await bot.at(shanghai(11, 19, 10, 5))
    assert len(bot.sender.to("dm-alice")) == 1


async def test_a_blocked_recipient_is_recorded_named_in_the_digest_and_the_rest_still_go_out(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await alice.say("/digest on 08:30")
    await alice.say("/add Kim")
    await bob.say("/add 李伟")
    await bob.say("/remind #2 tomorrow 8am 打电话")
    await alice.say("/remind #1 tomorrow 8am call")
    bot.sender.fail("dm-bob", RecipientBlocked("Forbidden: bot was blocked by the user"))
    await bot.at(shanghai(11, 19, 8))
    assert len(bot.sender.to("dm-alice")) == 1
    assert bot.sender.to("dm-bob") == []
    async with db.transaction() as session:
        blocked = await session.scalar(select(Identity.blocked_at).join(Member, Member.id == Identity.member_id)
                                       .where(Member.name == "Bob"))
    assert blocked == shanghai(11, 19, 8)
    bob_reminder = await reminder_row(db, 1)
    assert bob_reminder.last_error == "blocked the bot" and bob_reminder.status == "pending"

    await bot.at(shanghai(11, 19, 8, 30))
    digest = bot.sender.to("dm-alice")[-1]
    assert "Blocked the bot: Bob" in digest.plain_text()
    await bot.at(shanghai(11, 19, 9))
    assert bot.sender.to("dm-bob") == [], "not retried"


async def test_a_member_on_two_platforms_gets_it_once_on_the_last_used_one(
    db: Database, services: Services, clock: Clock, core: Core, alice: Chat
) -> None:
    telegram, slack = RecordingSender("telegram"), RecordingSender("slack")
    bot = Bot(db, services, telegram, slack)
    await alice.say("/add Kim")
    await alice.say("/remind #1 tomorrow 10am one")
    await alice.say("/remind #1 tomorrow 11am two")
    async with db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == "Alice"))
        for platform, chat in (("telegram", "555"), ("slack", "D42")):
            account = await workspaces.attach_identity(session, member, platform=platform, external_id=chat,
                                                       now=clock.now)
            account.dm_chat_id = chat
        member.last_platform = "slack"
    await bot.at(shanghai(11, 19, 10))
    assert [c for c, _ in slack.sent] == ["D42"] and telegram.sent == []

    slack.fail("D42", RecipientBlocked("cannot_dm_bot"))
    await bot.at(shanghai(11, 19, 11))
    assert [c for c, _ in telegram.sent] == ["555"], "falls back to the other platform"
    assert len(slack.sent) == 1


# --- the silent sweep ------------------------------------------------------------------------------

async def silent_book(db: Database, clock: Clock, alice: Chat, bob: Chat) -> None:
    """Alice's and Bob's customers, some past their cadence (defaults: tier A 14 days, no tier 30).

    Silence is set up through what the nightly recompute keeps: when customers were added
    (never contacted: silent since then), back-dated logs, and a deal for Bea's tier A.
    """
    for line in ("/add Ann", "/add Bea", "/add Cid", "/add Dot cadence=3", "/add Eve"):
        await alice.say(line)
    await bob.say("/add 李伟")
    await alice.say("/deal Bea 5000 at: 2026-10-20")  # the only buyer: tier A
    await alice.say("/log Bea call: hello at: 2026-10-29")  # 20 days ago
    await alice.say("/edit Eve stage=lost")
    ago = {1: 40, 3: 10, 4: 5, 5: 50, 6: 31}  # days since added, never contacted
    for number, days in ago.items():
        await set_customer(db, number, created_at=clock.now - timedelta(days=days))


async def every_morning(bot: Bot, month: int, day: int, days: int, clocks: tuple[tuple[int, int], ...] = (
        (3, 0), (9, 0))) -> None:
    """Poll at these Shanghai times (the nightly recompute, the sweep) for `days` days from month-day."""
    first = datetime(2026, month, day, tzinfo=SHANGHAI)
    for offset in range(days):
        local = first + timedelta(days=offset)
        for hour, minute in clocks:
            await bot.at(shanghai(local.month, local.day, hour, minute))


async def test_the_sweep_sends_each_rep_one_list_tier_a_first_once_per_cadence(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await silent_book(db, clock, alice, bob)
    await bot.poll()  # gives the workspace its sweep time: 09:00 tomorrow
    assert bot.sender.sent == []
    await bot.at(shanghai(11, 19, 8, 59))
    assert bot.sender.sent == []
    await bot.at(shanghai(11, 19, 9))
    [alices] = bot.sender.to("dm-alice")
    assert alices.title == "Silent customers: 3"
    assert [item.split(" · ")[0] for item in alices.items] == ["#2 Bea", "#1 Ann", "#4 Dot"]
    assert labels(alices)[:3] == ["Log #2", "Snooze #2", "Lost #2"]
    [bobs] = bot.sender.to("dm-bob")
    assert bobs.title == "沉默客户：1 位" and bobs.items[0].startswith("#6 李伟")

    await bot.at(shanghai(11, 20, 9))
    assert len(bot.sender.sent) == 2, "a customer is nudged once per cadence period"
    # Dot (cadence 3 days) is named again three days after the nudge; Ann and Bea are not
    await every_morning(bot, 11, 21, 2)
    [again] = bot.sender.to("dm-alice")[1:]
    assert bot.sender.arrived[-1] == shanghai(11, 22, 9)
    assert again.title == "Silent customers: 1" and again.items[0].startswith("#4 Dot")
    # Bea (tier A, 14 days) is named again 14 days after her nudge, first
    await every_morning(bot, 11, 23, 10)
    assert bot.sender.arrived[-1] < shanghai(12, 3, 9)
    await every_morning(bot, 12, 3, 1)
    assert bot.sender.arrived[-1] == shanghai(12, 3, 9)
    assert bot.sender.to("dm-alice")[-1].items[0].startswith("#2 Bea")


async def test_the_sweep_message_is_capped_and_its_buttons_work(
    db: Database, services: Services, clock: Clock, core: Core, alice: Chat, bot: Bot
) -> None:
    for number in range(1, 21):
        await alice.say(f"/add Lead{number:02d}")
    await alice.say("/add Fresh")
    async with db.transaction() as session:  # added 45 days ago, never contacted
        await session.execute(update(Customer).where(Customer.name.like("Lead%"))
                              .values(created_at=clock.now - timedelta(days=45)))
    await bot.at(shanghai(11, 19, 9))
    [reply] = bot.sender.to("dm-alice")
    assert reply.title == "Silent customers: 20"
    assert len(reply.all_buttons()) == 15 * 3
    assert reply.items[-1] == "… and 5 more — /silent lists them all."
    await alice.press("Snooze #3", [reply])
    assert "Lead03 snoozed" in alice.text
    await alice.press("Lost #4", [reply])
    await alice.press("Mark lost")
    async with db.transaction() as session:
        lost = await session.scalar(select(Customer).where(Customer.name == "Lead04"))
    assert lost.lost_at is not None
    # the five not named are named the next day; the 15 named are not
    await bot.at(shanghai(11, 20, 9))
    tomorrow = bot.sender.to("dm-alice")[-1]
    assert tomorrow.title == "Silent customers: 5"


async def test_the_morning_message_names_birthdays_coming_up_and_can_be_turned_off(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    """Issue 15 item 12: birthdays within `birthday_days` (default 3, today included) reach their owner."""
    await alice.say("/add Ann birthday=1980-11-20")
    await alice.say("/add Bea birthday=1990-11-25")  # six days ahead: not yet
    await alice.say("/add Cid birthday=1985-11-19")
    await alice.say("/add Dee birthday=1970-11-19 stage=lost")  # lost customers are not greeted
    await bob.say("/add 李伟 生日=1975-11-21")
    await bot.poll()
    await bot.at(shanghai(11, 19, 9))
    [alices] = bot.sender.to("dm-alice")
    assert alices.title == "Birthdays coming up: 2"
    assert alices.items == ["#3 Cid — today (11/19)", "#1 Ann — tomorrow (11/20)"]
    assert labels(alices) == ["#3 Cid", "#1 Ann"]
    await alice.press("#1 Ann", [alices])
    assert alice.last[0].title == "#1 Ann"
    [bobs] = bot.sender.to("dm-bob")
    assert bobs.title == "近期生日：1 位" and bobs.items == ["#5 李伟 — 2 天后（11月21日）"]

    await alice.say("/settings birthday_days=99")
    assert "Give 0 (off) to 30" in alice.text
    await alice.say("/settings birthday_days=off")
    assert "Birthdays in the morning message" not in alice.text and "off" in alice.text
    await bot.at(shanghai(11, 20, 9))
    assert len(bot.sender.to("dm-alice")) == 1, "birthday_days=0 names no birthdays"


async def test_churn_warning_moves_the_customer_at_risk_and_into_the_managers_digest(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await alice.say("/digest on")
    await bob.say("/add 钱总 company=Big cadence=20")
    await bob.say("/log 钱总 call: quote at: 2026-10-08 20:00")  # 40 days 19 hours ago: not yet 2 × 20
    await bot.poll()
    async with db.transaction() as session:
        assert (await session.scalar(select(Customer.stage).where(Customer.number == 1))) == "prospect"
    await bot.at(shanghai(11, 19, 2, 59))
    async with db.transaction() as session:
        assert (await session.scalar(select(Customer.stage).where(Customer.number == 1))) == "prospect"
    await bot.at(shanghai(11, 19, 3))  # the nightly recompute: now 41 days silent
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.number == 1))
        tags = set(await session.scalars(select(CustomerTag.name).where(CustomerTag.customer_id == customer.id,
                                                                         CustomerTag.auto.is_(True))))
    assert customer.stage == "at_risk" and {"at-risk", "silent"} <= tags
    await bot.at(shanghai(11, 19, 8, 30))
    [digest] = bot.sender.to("dm-alice")
    assert "At risk: 1" in digest.plain_text()
    assert any(item.startswith("At risk · #1 钱总 · Big") for item in digest.items)


# --- digests ------------------------------------------------------------------------------------------

async def test_subscribed_managers_get_the_digest_at_their_time_and_mondays_carry_the_chart(
    db: Database, clock: Clock, alice: Chat, bob: Chat, bot: Bot
) -> None:
    await alice.say("/digest on 08:30")
    await bob.say("/digest on")  # a rep: refused, gets nothing
    await bob.say("/add 李伟")
    await bob.say("/log 李伟 call: price")
    await bob.say("/deal 李伟 12000")
    await alice.say("/add Kim")
    await alice.say("/log Kim visit: demo")
    await bot.at(shanghai(11, 19, 8, 29))
    assert bot.sender.sent == []
    await bot.at(shanghai(11, 19, 8, 30))
    [daily] = bot.sender.to("dm-alice")
    text = daily.plain_text()
    assert daily.title == "Daily digest — 2026-11-18"
    assert "Interactions: 2 — Alice 1, Bob 1" in text
    assert "New customers: 2" in text
    assert "Deals: 1 for ¥12,000" in text
    assert bot.sender.to("dm-bob") == []
    await bot.at(shanghai(11, 19, 12))
    assert len(bot.sender.sent) == 1, "once a day"

    await every_morning(bot, 11, 20, 4, clocks=((8, 30),))  # Friday to Monday
    monday = bot.sender.to("dm-alice")[-2:]
    assert monday[0].title == "Weekly digest — 11-16 … 11-22"
    assert monday[1].image is not None and monday[1].image.content.startswith(PNG)
    assert len(bot.sender.to("dm-alice")) == 1 + 3 + 2  # Thursday; Friday to Sunday; Monday and its chart


class DiesAtPart(RecordingSender):
    """Sends the parts before `part`, then dies on it: after it left (`left`) or before."""

    def __init__(self, part: int, *, left: bool) -> None:
        super().__init__()
        self.part, self.left = part, left

    async def send(self, chat_id: str, reply: Reply) -> None:
        if len(self.sent) == self.part:
            if self.left:
                await leaving()
            raise ProcessKilled
        await super().send(chat_id, reply)


@pytest.mark.parametrize("left", [True, False], ids=["chart left", "chart not left"])
async def test_a_crash_between_the_parts_of_a_digest_repeats_and_drops_nothing(
    db: Database, services: Services, clock: Clock, alice: Chat, left: bool
) -> None:
    await alice.say("/digest on 08:30")
    await alice.say("/add Kim")
    clock.now = shanghai(11, 23, 8, 30)  # a Monday: the digest and its chart
    dying = Bot(db, services, DiesAtPart(1, left=left))
    with pytest.raises(ProcessKilled):
        await dying.poll()
    assert [reply.title for _, reply in dying.sender.sent] == ["Weekly digest — 11-16 … 11-22"]
    [row] = await outbox_rows(db)
    restarted = await restart(db, services, clock, row.claimed_until)
    again = [(reply.title, reply.image is not None) for _, reply in restarted.sender.sent]
    assert again == ([] if left else [("", True)])  # the digest itself never twice; the chart once
    [row] = await outbox_rows(db)
    assert row.status == "sent" and (row.last_error == schedule.CUT_OFF) == left


async def test_changing_the_digest_time_moves_the_next_digest_without_a_second_one_that_day(
    db: Database, clock: Clock, alice: Chat, bot: Bot
) -> None:
    await alice.say("/digest on 08:30")
    await bot.at(shanghai(11, 19, 8, 30))
    assert len(bot.sender.sent) == 1
    await alice.say("/digest on 10:00")
    async with db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == "Alice"))
        await schedule.reschedule_member(session, member, clock.now)  # what /digest on does
        assert member.next_digest_at == shanghai(11, 19, 10)
    await bot.at(shanghai(11, 19, 10))
    assert len(bot.sender.sent) == 1, "already had today's"
    await bot.at(shanghai(11, 20, 10))
    assert len(bot.sender.sent) == 2
    await alice.say("/digest off")
    await bot.at(shanghai(11, 21, 10))
    assert len(bot.sender.sent) == 2


# --- time zones and DST -------------------------------------------------------------------------------

async def test_new_york_across_the_end_of_daylight_saving_time(
    db: Database, services: Services, clock: Clock, core: Core
) -> None:
    clock.now = datetime(2026, 10, 30, 16, tzinfo=UTC)  # Friday noon in New York (EDT)
    pat = Chat(core, user_id="pat", name="Pat", space="ny-team", language="en")
    await pat.say("/settings timezone=America/New_York")
    await pat.say("/digest on 08:30")
    await pat.say("/add Quinn")
    await pat.say("/remind Quinn sunday 9am call")  # 2026-11-01, the day clocks go back
    bot = Bot(db, services)
    for step in range(2 * 24 * 3 + 36):  # every half hour until Monday 2026-11-02 noon in New York
        await bot.at(datetime(2026, 10, 30, 17, tzinfo=UTC) + timedelta(minutes=30 * step))
    arrivals = [(at.astimezone(NEW_YORK).strftime("%m-%d %H:%M %Z"), reply.title or reply.text)
                for at, (_, reply) in zip(bot.sender.arrived, bot.sender.sent)]
    # 08:30 on the wall clock: 12:30 UTC on Saturday (EDT), 13:30 UTC from Sunday (EST)
    assert [(at, what.split(" — ")[0]) for at, what in arrivals if "digest" in what] == [
        ("10-31 08:30 EDT", "Daily digest"), ("11-01 08:30 EST", "Daily digest"),
        ("11-02 08:30 EST", "Weekly digest")]
    assert [at for at, what in arrivals if what.startswith("⏰")] == ["11-01 09:00 EST"]
    assert len(arrivals) == 5  # three digests, Monday's chart, the reminder


# --- the job is registered and runs ------------------------------------------------------------------------

async def test_the_scheduler_polls_on_its_own_once_started(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    await alice.say("/add Kim")
    await add_reminder(db, "Alice", clock.now, explicit=True, note="now")
    bot = Bot(db, services, poll_seconds=0.05)
    await bot.scheduler.start()
    try:
        for _ in range(100):
            if bot.sender.sent:
                break
            await asyncio.sleep(0.05)
    finally:
        await bot.scheduler.stop()
    assert [r.text for r in bot.sender.to("dm-alice")] == ["⏰ Revisit #1 Kim — now"]


async def test_routine_polls_log_at_debug_and_info_says_what_was_delivered(
    db: Database, services: Services, clock: Clock, alice: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    """APScheduler's 'Running job …' / 'Job … executed successfully' came at INFO on every poll."""
    await alice.say("/add Kim")
    await add_reminder(db, "Alice", clock.now, explicit=True, note="now")

    async def run_polls(level: int) -> list[logging.LogRecord]:
        caplog.clear()
        with caplog.at_level(level):
            bot = Bot(db, services, poll_seconds=0.05)
            await bot.scheduler.start()
            try:
                for _ in range(100):
                    if sum("executed successfully" in r.getMessage() for r in caplog.records) >= 2 or (
                            level > logging.DEBUG and len(caplog.records) > 1):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)  # a few more polls
            finally:
                await bot.scheduler.stop()
        return list(caplog.records)

    quiet = await run_polls(logging.INFO)
    assert not [r for r in quiet if r.name.startswith("apscheduler")], [r.getMessage() for r in quiet]
    delivered = [r.getMessage() for r in quiet if "delivered" in r.getMessage()]
    assert len(delivered) == 1 and delivered[0].startswith("reminder ") and "(console)" in delivered[0]

    debug = await run_polls(logging.DEBUG)
    routine = [r for r in debug if r.name == "apscheduler.executors.default"]
    assert routine and {r.levelname for r in routine} == {"DEBUG"}
    assert any("Running job" in r.getMessage() for r in routine)


# --- several processes on one PostgreSQL database ----------------------------------------------------------

async def test_two_processes_deliver_a_thousand_reminders_exactly_once(
    db: Database, services: Services, clock: Clock, alice: Chat
) -> None:
    if db.is_sqlite:
        pytest.skip("several bot processes share a database only on PostgreSQL")
    await alice.say("/add Kim")
    async with db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == "Alice"))
        first = await workspaces.next_number(session, member.workspace_id, "reminder", 1000)
        session.add_all(Reminder(workspace_id=member.workspace_id, number=first + i, member_id=member.id,
                                 due_at=clock.now - timedelta(seconds=i % 50), explicit_time=True,
                                 note=f"r{i}", status="pending", created_at=clock.now, attempts=0)
                        for i in range(1000))
    other = Database(db.url.render_as_string(hide_password=False))
    try:
        one, two = Bot(db, services), Bot(other, services)
        await asyncio.gather(one.poll(), two.poll(), one.poll(), two.poll())
    finally:
        await other.dispose()
    notes = [reply.text.rsplit(" — ", 1)[1] for bot in (one, two) for _, reply in bot.sender.sent]
    assert len(notes) == 1000 and len(set(notes)) == 1000
    assert one.sender.sent and two.sender.sent, "both processes took a share"
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Reminder)
                                    .where(Reminder.sent_at.is_(None))) == 0


# --- the pure rules ----------------------------------------------------------------------------------------

def test_next_local_time_is_wall_clock_across_dst() -> None:
    before = datetime(2026, 10, 31, 13, tzinfo=UTC)  # 09:00 EDT
    assert schedule.next_local("09:00", NEW_YORK, before) == datetime(2026, 11, 1, 14, tzinfo=UTC)
    # 01:30 happens twice on 2026-11-01 in New York: the first one only
    first = schedule.next_local("01:30", NEW_YORK, datetime(2026, 11, 1, 0, tzinfo=UTC))
    assert first == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert schedule.next_local("01:30", NEW_YORK, first) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    # 02:30 does not exist on 2026-03-08: just after the gap (03:30 EDT)
    spring = schedule.next_local("02:30", NEW_YORK, datetime(2026, 3, 8, 0, tzinfo=UTC))
    assert spring == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_quiet_hours() -> None:
    eight = shanghai(11, 19, 8)
    assert schedule.quiet_until(shanghai(11, 18, 21), SHANGHAI) == eight
    assert schedule.quiet_until(shanghai(11, 19, 7, 59), SHANGHAI) == eight
    assert schedule.quiet_until(shanghai(11, 19, 8), SHANGHAI) is None
    assert schedule.quiet_until(shanghai(11, 18, 20, 59), SHANGHAI) is None
    assert schedule.release_time(shanghai(11, 18, 22), SHANGHAI, explicit=True) == shanghai(11, 18, 22)
    assert schedule.release_time(shanghai(11, 18, 22), SHANGHAI, explicit=False) == eight

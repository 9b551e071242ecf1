"""Claim what is due, send it, record it: the delivery step of every poll.

A short transaction claims a batch (storage.schedule.claim: 30 seconds,
`FOR UPDATE SKIP LOCKED` on PostgreSQL). Then per row, one at a time: a second
transaction checks the row is still ours and still wanted, applies quiet hours,
starts the send (one more attempt; the claim becomes a 5-minute send lease) and
builds the message; the send happens outside any transaction; a third records
the outcome right after it, fenced by the lease (a snooze in between clears the
lease, so the snoozed reminder is sent again at its new time). A batch stops
when its claim runs out; the rest go back, or to whichever process claimed them.

Crashes. Telegram and Slack take no idempotency key, so a crash mid-send must
be read from the row. The send starts (`STARTED`); the sender's HTTP client
calls reminders.delivery.leaving right before the request that posts the
message goes out, after any rate limiter, and that marks it on the wire
(storage.schedule.record_on_wire) before a byte is written. After a crash:
- a send still `STARTED` never left the process (killed while building,
  waiting in the flood limiter, or opening a connection): it is sent again;
- a send on the wire with no outcome recorded (storage.schedule.interrupted)
  left for the platform: it counts as delivered, noted in `last_error`
  (storage.schedule.CUT_OFF), and is not sent again. Only a network failure in
  the few milliseconds of that request's round trip, with the process killed
  during them, loses it; the reminder then still waits in /reminders and the
  managers' overdue list.
An outbox message of several parts (a digest and its chart) records each part
that is out, so a crash repeats or drops nothing of the others. A message that
keeps stopping the process before it leaves is given up after `MAX_ATTEMPTS`.
A sender that never calls `leaving()` (the console) is sent again after a crash.
Rows claimed but not started are free again at restart (SQLite) or after 30
seconds (PostgreSQL), not after the send lease.

Late: a message due before this process started that did not go out within
`late_after` (a poll) waited for the bot to come back; it says so.

Quiet hours: nothing goes out between 21:00 and 08:00 in the recipient's time
zone; it is held (not dropped) until 08:00. What the recipient timed
explicitly goes out even then: a reminder with a time of day, and the digest at
the time its manager chose. A late one is held only if its own time was outside
the quiet hours (a 20:00 reminder the bot could only send at 23:00 waits for
the morning; a 01:00 one goes when the bot is back).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from handlers import metrics
from handlers.context import Context, Services
from handlers.messages import Reply
from reminders import digest, notices, revisit, silent
from reminders.delivery import Delivery, Outcome, Result, Route
from reminders.recipient import context_for
from storage import schedule
from storage.db import Database
from storage.models import OutboxMessage, Reminder

log = logging.getLogger(__name__)

MESSAGES: dict[str, Callable[..., Awaitable[list[Reply] | None]]] = {
    silent.KIND: silent.sweep_message,
    digest.KIND: digest.digest_message,
    notices.KIND: notices.suspended_message,
}
#: Rows claimed per transaction; sending them usually takes well under a second.
BATCH = 25
#: A row is given up after this many failed sends; back-off 1, 2, 4 … 60 minutes.
MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)
#: How a row that will not go is recorded: blocked by its recipient; skipped where the app was uninstalled
#: (it is not retried; the book's later messages go again once the app is installed there again).
GIVEN_UP_AS = {Outcome.BLOCKED: "blocked", Outcome.UNINSTALLED: "skipped"}


@dataclass
class _Ready:
    """A claimed row, checked and built, ready to send."""

    replies: list[Reply]
    routes: list[Route]
    attempts: int  # with this one
    parts_sent: int
    lease: datetime  # the send's, which fences its outcome
    what: str  # for the log: "reminder 12 for member 3", "digest 4 for member 1"
    kind: str  # reminder, digest, …: the late-delivery metric's label
    late: bool


@dataclass
class _RowOnWire:
    """reminders.delivery.WireMarks for one row's send, fenced by its lease."""

    db: Database
    model: schedule.Deliverable
    row_id: int
    lease: datetime

    async def on_wire(self) -> None:
        async with self.db.transaction() as session:
            await schedule.record_on_wire(session, self.model, self.row_id, self.lease)

    async def not_on_wire(self) -> None:
        async with self.db.transaction() as session:
            await schedule.record_on_wire(session, self.model, self.row_id, self.lease, on_wire=False)


class DueDeliveries:
    """Sends due reminders and outbox rows; `late_after`: how overdue counts as late (downtime)."""

    def __init__(self, db: Database, services: Services, delivery: Delivery, *, late_after: timedelta,
                 batch: int = BATCH) -> None:
        self.db, self.services, self.delivery = db, services, delivery
        self.late_after, self.batch = late_after, batch
        self.stopping = False
        #: When this process first looked for work: what was due before it waited for the bot.
        self.started_at: datetime | None = None

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.services.clock

    async def run(self) -> int:
        """Deliver everything due now, reminders first; how many messages went out."""
        if self.started_at is None:
            self.started_at = self.clock()
        sent = 0
        for model in (Reminder, OutboxMessage):
            while not self.stopping:
                async with self.db.transaction() as session:
                    claim = await schedule.claim(session, model, self.clock(), limit=self.batch)
                if not claim.ids:
                    break
                sent += await self._send_claimed(model, claim)
        return sent

    async def _send_claimed(self, model: schedule.Deliverable, claim: schedule.Claim) -> int:
        sent = 0
        for index, row_id in enumerate(claim.ids):
            if self.stopping or self.clock() >= claim.until:
                await self._release(model, claim.ids[index:], claim.until)
                break
            try:
                sent += await self._send_one(model, row_id, claim.until)
            except Exception:  # noqa: BLE001 - one failing row never stops the rest
                log.exception("delivery of %s %s failed; it is retried after its lease", model.__tablename__, row_id)
        return sent

    async def _send_one(self, model: schedule.Deliverable, row_id: int, claim_until: datetime) -> int:
        ready = await self._prepare(model, row_id, claim_until)
        if ready is None:
            return 0

        async def part_sent(count: int) -> None:
            async with self.db.transaction() as session:
                await schedule.record_part(session, row_id, ready.lease, ready.parts_sent + count)

        result = await self.delivery.deliver(ready.routes, ready.replies[ready.parts_sent:], on_part=part_sent,
                                             marks=_RowOnWire(self.db, model, row_id, ready.lease))
        await self._record(model, row_id, ready.lease, ready.attempts, result)
        if result.outcome is Outcome.SENT:
            log.info("%s delivered (%s)", ready.what, ", ".join(route.platform for route in ready.routes))
            if ready.late:
                metrics.LATE.labels(ready.kind).inc()
        return int(result.outcome is Outcome.SENT)

    async def _prepare(self, model: schedule.Deliverable, row_id: int, claim_until: datetime) -> _Ready | None:
        """The row's message, its send started, if it is still ours and should go out now; else
        record why not."""
        now = self.clock()
        async with self.db.transaction() as session:
            row = await session.get(model, row_id)
            if row is None or row.claimed_until != claim_until:
                return None  # snoozed, done or re-claimed since
            parts_sent = row.parts_sent if isinstance(row, OutboxMessage) else 0
            cut_off = schedule.interrupted(row)
            if cut_off:
                log.warning("%s %s had left for the platform when its process stopped; counted as delivered, "
                            "not sent again", model.__tablename__, row_id)
                if isinstance(row, Reminder):
                    await schedule.record_sent(session, model, row_id, claim_until, now, caveat=schedule.CUT_OFF)
                    return None
                parts_sent += 1  # that part is out; the rest still go (none left: recorded below)
                await schedule.record_part(session, row_id, claim_until, parts_sent)
            elif schedule.stopped_before_the_wire(row) and row.attempts >= MAX_ATTEMPTS:
                log.warning("%s %s stopped its process %s times before it was sent; given up",
                            model.__tablename__, row_id, row.attempts)
                await schedule.record_given_up(session, model, row_id, claim_until, now, status="failed",
                                               error="kept stopping the process before it was sent")
                return None
            recipient = await schedule.recipient(session, row.member_id)
            if recipient is None:
                await schedule.record_given_up(session, model, row_id, claim_until, now, status="failed",
                                               error="no member")
                return None
            if recipient.member.removed_at is not None:  # lost access since the claim: it waits (storage.offboarding)
                await schedule.record_hold(session, model, row_id, claim_until, now)
                return None
            ctx = context_for(self.services, session, recipient, now)
            explicit = row.explicit_time if isinstance(row, Reminder) else row.kind == digest.KIND
            released = schedule.release_time(row.due_at, ctx.tz, explicit=explicit)
            # late: overdue because the bot was down (a row held back by errors is not "late")
            late = (row.attempts == 0 or schedule.stopped_before_the_wire(row)) and (
                released < (self.started_at or now) and now - released > self.late_after)
            timed_in_quiet_hours = schedule.quiet_until(row.due_at, ctx.tz) is not None
            hold = None if explicit and (not late or timed_in_quiet_hours) else schedule.quiet_until(now, ctx.tz)
            if hold is not None:
                await schedule.record_hold(session, model, row_id, claim_until, hold)
                return None
            attempts = row.attempts + 1
            lease = await schedule.start_send(session, model, row_id, claim_until, now)
            if lease is None:
                return None
            try:
                replies = await self._build(ctx, row, late=late)
            except Exception as problem:  # noqa: BLE001 - a message that cannot be built is retried later
                log.exception("could not build %s %s", model.__tablename__, row_id)
                await self._retry_or_give_up(session, model, row_id, lease, attempts, now, 0,
                                             f"{type(problem).__name__}: {problem}")
                return None
            if not replies:
                await schedule.record_given_up(session, model, row_id, lease, now, status="skipped",
                                               error="nothing left to say")
                return None
            routes = self.delivery.routes(recipient)
            if not routes:
                await schedule.record_given_up(session, model, row_id, lease, now, status="failed",
                                               error="no account to reach on a running platform")
                return None
            if parts_sent >= len(replies):  # every part is out (the last one cut off), or it has shrunk since
                await schedule.record_sent(session, model, row_id, lease, now,
                                           caveat=schedule.CUT_OFF if cut_off else None)
                return None
            kind = "reminder" if isinstance(row, Reminder) else row.kind
            what = f"{kind} {row.id} for member {row.member_id}"
            return _Ready(replies, routes, attempts, parts_sent, lease, what, kind, late)

    @staticmethod
    async def _build(ctx: Context, row: Reminder | OutboxMessage, *, late: bool) -> list[Reply] | None:
        if isinstance(row, Reminder):
            return await revisit.revisit_message(ctx, row, late=late)
        build = MESSAGES.get(row.kind)
        if build is None:
            raise ValueError(f"no message kind {row.kind!r}")
        return await build(ctx, row, late=late)

    async def _record(self, model: schedule.Deliverable, row_id: int, lease: datetime, attempts: int,
                      result: Result) -> None:
        now = self.clock()
        async with self.db.transaction() as session:
            if result.outcome is Outcome.SENT:
                if not await schedule.record_sent(session, model, row_id, lease, now):
                    log.warning("%s %s was sent after its lease was lost (snoozed, or claimed again)",
                                model.__tablename__, row_id)
            elif result.outcome is Outcome.RETRY:
                await self._retry_or_give_up(session, model, row_id, lease, attempts, now, result.retry_in,
                                             result.error)
            else:
                status = GIVEN_UP_AS.get(result.outcome, "failed")
                await schedule.record_given_up(session, model, row_id, lease, now, status=status, error=result.error)

    @staticmethod
    async def _retry_or_give_up(session: Any, model: schedule.Deliverable, row_id: int, lease: datetime,
                                attempts: int, now: datetime, retry_in: float, error: str) -> None:
        """Hold the row for its next try (exponential back-off, at least `retry_in`), or give up;
        `attempts` counts the one that failed."""
        if attempts >= MAX_ATTEMPTS:
            log.warning("%s %s given up after %s attempts: %s", model.__tablename__, row_id, attempts, error)
            await schedule.record_given_up(session, model, row_id, lease, now, status="failed", error=error)
            return
        backoff = min(MAX_BACKOFF, timedelta(minutes=2 ** (attempts - 1)))
        await schedule.record_hold(session, model, row_id, lease, now + max(backoff, timedelta(seconds=retry_in)),
                                   error=error)

    async def _release(self, model: schedule.Deliverable, row_ids: list[int], lease: datetime) -> None:
        """Give back rows not sent in time (stopping, or the lease nearly over)."""
        async with self.db.transaction() as session:
            for row_id in row_ids:
                await schedule.record_hold(session, model, row_id, lease, self.clock())

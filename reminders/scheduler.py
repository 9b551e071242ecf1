"""The scheduler: one APScheduler job on the bot's loop that polls the database (SPEC §4).

Nothing time-critical lives in memory: what is due is in the database (pending
reminders, outbox rows, next-run columns), so a restart or a second process
picks up exactly where things stand. Every `REMINDER_POLL_SECONDS` `poll()`:

1. gives new workspaces and subscribers their next-run times;
2. runs the nightly recompute where it is 03:00, and the daily cleanup (reminders/nightly.py),
   first, so a sweep after downtime sees fresh tiers and stages;
3. sweeps workspaces whose sweep time has come (reminders/silent.py);
4. queues due digests (reminders/digest.py);
5. delivers due reminders and outbox rows (reminders/claims.py).

Each step runs in its own short transactions and a failing step is logged
without stopping the others. Rules read the injected clock, so tests call
`poll()` with a moved clock instead of waiting for APScheduler.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Mapping

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from handlers.context import Services
from reminders.claims import DueDeliveries
from reminders.delivery import Delivery, Sender
from reminders.digest import queue_due_digests
from reminders.nightly import DailyCleanup, recompute_due_workspaces
from reminders.silent import sweep_due_workspaces
from storage import schedule
from storage.db import Database

log = logging.getLogger(__name__)
JOB_ID = "poll"
#: APScheduler's loggers: the scheduler's and its default executor's.
APSCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


class RoutineAtDebug(logging.Filter):
    """APScheduler says at INFO what happens on every poll ("Running job …", "Job … executed
    successfully") or once per start: thousands of lines a day that say nothing happened. Those are
    DEBUG here, and so is its warning that a poll was skipped because the last one still runs (one
    poll at a time is the design; the next one catches up). INFO is for what happened (a reminder
    or digest delivered, a platform error); APScheduler's other warnings and errors pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        skipped = record.levelno == logging.WARNING and "maximum number of running instances" in str(record.msg)
        if record.levelno != logging.INFO and not skipped:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


ROUTINE_AT_DEBUG = RoutineAtDebug()
for _name in APSCHEDULER_LOGGERS:
    logging.getLogger(_name).addFilter(ROUTINE_AT_DEBUG)


class Scheduler:
    def __init__(
        self,
        db: Database,
        services: Services,
        senders: Mapping[str, Sender],
        *,
        poll_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db, self.services, self.poll_seconds = db, services, poll_seconds
        self.delivery = Delivery(db, senders, clock=services.clock, sleep=sleep)
        #: Due before the process started and overdue by more than a poll (and a minute, which
        #: nobody would call late): the bot was down.
        late_after = max(timedelta(seconds=poll_seconds), timedelta(minutes=1))
        self.deliveries = DueDeliveries(db, services, self.delivery, late_after=late_after)
        self.cleanup = DailyCleanup(db, services)
        self._aps: AsyncIOScheduler | None = None
        self._polling = asyncio.Lock()

    async def start(self) -> None:
        """Poll now and every `poll_seconds`, after recovering what a previous run left claimed."""
        await self.recover()
        self.deliveries.stopping = False
        self._aps = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        self._aps.add_job(self.poll, "interval", seconds=self.poll_seconds, id=JOB_ID, max_instances=1,
                          coalesce=True, misfire_grace_time=None, next_run_time=datetime.now(timezone.utc))
        self._aps.start()
        log.info("scheduler polling every %s s (senders: %s)", self.poll_seconds,
                 ", ".join(self.delivery.senders) or "none")

    async def recover(self) -> None:
        """On SQLite one process owns the database, so claims left by a previous run (killed
        mid-send) are released at once; on PostgreSQL another process may hold them, so they
        are retried when they run out (30 seconds; a send under way, 5 minutes)."""
        if self.db.is_sqlite:
            async with self.db.transaction() as session:
                released = await schedule.release_claims(session)
            if released:
                log.info("released %s deliveries claimed before the restart", released)

    async def stop(self) -> None:
        """Stop polling: a poll under way finishes the message it is sending and records it
        (never cancelled between a send and its record), then the job is removed."""
        self.deliveries.stopping = True
        async with self._polling:
            if self._aps is not None:
                self._aps.shutdown(wait=False)
                self._aps = None

    async def poll(self) -> None:
        async with self._polling:
            now = self.services.clock()
            await self._step("next-run times", self._fill, now)
            await self._step("nightly recompute", recompute_due_workspaces, self.db, now)
            await self._step("daily cleanup", self.cleanup.run_if_due, now)
            await self._step("silent sweep", sweep_due_workspaces, self.db, now)
            await self._step("digests", queue_due_digests, self.db, now)
            await self._step("delivery", self.deliveries.run)

    async def _fill(self, now: datetime) -> None:
        async with self.db.transaction() as session:
            await schedule.fill_next_runs(session, now)

    async def _step(self, name: str, step: Callable[..., Awaitable[object]], *args: object) -> None:
        if self.deliveries.stopping:
            return
        try:
            await step(*args)
        except Exception:  # noqa: BLE001 - the next poll tries again; the other steps still run
            log.exception("scheduler step %r failed", name)

"""One process of several on a PostgreSQL database does a job alone: a lease on an advisory lock.

Telegram hands a bot's updates to one `getUpdates` consumer; two processes
polling displace each other (409 Conflict) all the time. So the processes take
turns through `pg_try_advisory_lock` on a connection of the lease's own: the
one that gets the lock does the job, the others ask again every `RETRY` seconds.
PostgreSQL frees a session's advisory locks when its connection ends, so a
holder that is killed (or loses the database) gives the job up by itself and
another process takes it within about a second. The holder checks its
connection every `CHECK` seconds and stops the job the moment it is gone,
before anyone else could hold the lock.

SQLite means one process: the job simply runs (no lease is made).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Awaitable, Callable

import asyncpg
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)
APPLICATION_NAME = "crm-bot lease"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a lease name."""
    return int.from_bytes(hashlib.blake2b(f"crm-bot lease: {name}".encode(), digest_size=8).digest(), "big",
                          signed=True)


def driver_dsn(url: URL) -> str:
    """What asyncpg connects to for a SQLAlchemy URL (any driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Lease:
    """Hold the advisory lock `name` while this process does the job: `on_gained()` when it got the
    lock, `on_lost()` when the connection holding it is gone (then it asks again)."""

    RETRY = 1.0
    CHECK = 1.0

    def __init__(self, url: URL, name: str, *, on_gained: Callable[[], Awaitable[None]],
                 on_lost: Callable[[], Awaitable[None]]) -> None:
        self.dsn, self.name, self.key = driver_dsn(url), name, lock_key(name)
        self.on_gained, self.on_lost = on_gained, on_lost
        self.holding = False
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lease {self.name}")

    async def stop(self) -> None:
        """Stop asking and watching; the lock, if held, stays held until `release()` (the job winds
        down first, so no other process starts it meanwhile)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def release(self) -> None:
        self.holding = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    async def _run(self) -> None:
        waiting_said = False
        while True:
            if await self._try_lock():
                waiting_said = False
                log.info("this process holds the lease %r", self.name)
                self.holding = True
                await self.on_gained()
                await self._while_held()
                self.holding = False
                log.warning("the lease %r was lost with its database connection; stopping that job", self.name)
                await self.on_lost()
                await self.release()
            elif not waiting_said:
                log.info("another process holds the lease %r; asking again every %.0f s", self.name, self.RETRY)
                waiting_said = True
            await asyncio.sleep(self.RETRY)

    async def _try_lock(self) -> bool:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.dsn, timeout=5,
                                                   server_settings={"application_name": APPLICATION_NAME})
            return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=5))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError) as problem:
            log.warning("cannot ask for the lease %r (%s)", self.name, type(problem).__name__)
            await self.release()
            return False

    async def _while_held(self) -> None:
        """Return once the connection holding the lock is gone (or stops answering)."""
        assert self._conn is not None
        lost = asyncio.Event()
        self._conn.add_termination_listener(lambda _conn: lost.set())
        while not lost.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lost.wait(), self.CHECK)
            if lost.is_set():
                return
            try:
                await self._conn.fetchval("SELECT 1", timeout=self.CHECK)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError):
                return

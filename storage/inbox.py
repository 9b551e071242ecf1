"""Updates a platform handed over, kept in the database until they are handled.

A long-polling adapter writes each fetched batch here (one multi-row INSERT,
committed) before it tells the platform the batch arrived, so it can confirm
at once: the platform then hands each update out once, instead of again on
every poll until it has been handled. A process killed with updates still
unhandled finds them here when it (or the process taking over its polling)
starts. What is replayed is what was never applied, and what was applied but
whose answer never left (its kept replies: handlers.kept_replies); the core's
redelivery key applies each once either way. Handled updates are forgotten in
batches, one DELETE per poll.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import Database
from storage.models import ProcessedUpdate, ReceivedUpdate


class Inbox:
    """The kept updates of one `source` (`telegram:<bot id>`)."""

    def __init__(self, db: Database, source: str) -> None:
        self.db, self.source = db, source
        self._insert = sqlite_insert if db.is_sqlite else postgresql_insert

    async def keep(self, updates: Iterable[tuple[str, str]], now: datetime) -> None:
        """Keep (key, payload) pairs, committed when this returns; a key kept already is left as it is."""
        rows = [{"source": self.source, "key": key, "payload": payload, "received_at": now} for key, payload in updates]
        if not rows:
            return
        async with self.db.transaction() as session:
            await session.execute(self._insert(ReceivedUpdate).values(rows).on_conflict_do_nothing(
                index_elements=[ReceivedUpdate.key]))

    async def unhandled(self) -> list[str]:
        """Payloads, in arrival order, of the kept updates never applied or whose answer never left."""
        async with self.db.transaction() as session:
            return list(await session.scalars(
                select(ReceivedUpdate.payload)
                .outerjoin(ProcessedUpdate, ProcessedUpdate.key == ReceivedUpdate.key)
                .where(ReceivedUpdate.source == self.source,
                       or_(ProcessedUpdate.key.is_(None), ProcessedUpdate.unanswered.is_not(None)))
                .order_by(ReceivedUpdate.id)))

    async def forget(self, keys: Iterable[str]) -> None:
        """Handled: these need no replay."""
        keys = list(keys)
        if keys:
            async with self.db.transaction() as session:
                await session.execute(delete(ReceivedUpdate).where(ReceivedUpdate.key.in_(keys)))

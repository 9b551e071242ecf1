"""Slowing down code guessing on `/join`, `/start CODE` and `/link CODE`.

Wrong codes are counted per platform account and for everyone together, in
windows of `WINDOW`. `ACCOUNT_LIMIT` wrong codes from one account lock that
account's code redemptions for `LOCK`; `OVERALL_LIMIT` from everyone lock every
redemption for `LOCK` (many accounts guessing together). While locked, a right
code is refused too, or guessing would simply go on. The counts are rows of
`code_guards`, so a restart forgives nothing, and several processes share them.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CodeGuard

WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
OVERALL_LIMIT = 50
OVERALL = "all"


def _account(platform: str, user_id: str) -> str:
    return f"account:{platform}:{user_id}"[:96]


async def locked_until(session: AsyncSession, platform: str, user_id: str, now: datetime) -> datetime | None:
    """When redemptions open again for this account (None: they are open now)."""
    ends = await session.scalars(select(CodeGuard.locked_until).where(
        CodeGuard.key.in_([_account(platform, user_id), OVERALL]), CodeGuard.locked_until > now))
    return max(ends, default=None)


async def record_failure(session: AsyncSession, platform: str, user_id: str, now: datetime) -> datetime | None:
    """Count one wrong code for the account and overall; when redemptions open again if that locked them."""
    for key, limit in ((_account(platform, user_id), ACCOUNT_LIMIT), (OVERALL, OVERALL_LIMIT)):
        guard = await _held(session, key, now)
        if guard.window_started_at + WINDOW <= now:
            guard.failures, guard.window_started_at = 0, now
        guard.failures += 1
        if guard.failures >= limit:
            guard.failures, guard.window_started_at, guard.locked_until = 0, now, now + LOCK
    await session.flush()
    return await locked_until(session, platform, user_id, now)


async def record_success(session: AsyncSession, platform: str, user_id: str) -> None:
    """A right code: the account's count starts again (the overall one does not)."""
    guard = await session.get(CodeGuard, _account(platform, user_id))
    if guard is not None:
        guard.failures = 0


async def _held(session: AsyncSession, key: str, now: datetime) -> CodeGuard:
    """The row for `key`, created if missing, locked for this transaction (PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    insert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(CodeGuard)
    await session.execute(insert.values(key=key, failures=0, window_started_at=now)
                          .on_conflict_do_nothing(index_elements=["key"]))
    guard = await session.scalar(select(CodeGuard).where(CodeGuard.key == key).with_for_update()
                                 .execution_options(populate_existing=True))
    assert guard is not None
    return guard

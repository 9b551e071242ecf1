"""Platform accounts that cannot be messaged: the person blocked the bot (SPEC §4).

A platform adapter records a block when the platform refuses a direct message
(Telegram's 403) and clears it when the person lets the bot write again (on
Telegram, unblocking the bot). The account is found by its user id or by the
chat its direct messages go to, whichever the adapter knows. Deliveries and
digests read `Identity.blocked_at` to skip the account and tell a manager.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.models import Identity


def _account(platform: str, external_id: str | None, dm_chat_id: str | None) -> ColumnElement[bool]:
    if external_id is None and dm_chat_id is None:
        raise ValueError("name the account by external_id or dm_chat_id")
    which = []
    if external_id is not None:
        which.append(Identity.external_id == external_id)
    if dm_chat_id is not None:
        which.append(Identity.dm_chat_id == dm_chat_id)
    return (Identity.platform == platform) & or_(*which)


async def record_blocked(
    session: AsyncSession, platform: str, *, now: datetime,
    external_id: str | None = None, dm_chat_id: str | None = None,
) -> int:
    """Mark every membership of the account as blocked (keeping the first time); how many rows changed."""
    result = await session.execute(
        update(Identity).where(_account(platform, external_id, dm_chat_id), Identity.blocked_at.is_(None))
        .values(blocked_at=now)
    )
    return result.rowcount or 0


async def clear_blocked(
    session: AsyncSession, platform: str, *, external_id: str | None = None, dm_chat_id: str | None = None,
) -> int:
    """The account can be messaged again; how many rows changed."""
    result = await session.execute(
        update(Identity).where(_account(platform, external_id, dm_chat_id), Identity.blocked_at.is_not(None))
        .values(blocked_at=None)
    )
    return result.rowcount or 0

"""The managers' daily digest, delivered (SPEC §4): at each subscriber's digest time, in their zone.

When a member's `next_digest_at` comes, one transaction adds an outbox row keyed
by member and local date (so one digest a day, whatever restarts or setting
changes happen) and moves `next_digest_at` to the next local day. After downtime
only the latest missed digest is sent (marked late), not one per missed day. The
digest is built when sent, as of the moment it was due (handlers.digest.build_digest).
"""
from __future__ import annotations

from datetime import datetime

from handlers.context import Context
from handlers.digest import build_digest
from handlers.messages import Reply
from storage import schedule
from storage.db import Database
from storage.models import OutboxMessage, Workspace

KIND = "digest"
BATCH = 50


async def queue_due_digests(db: Database, now: datetime) -> int:
    """Queue the digests that have fallen due; how many members were due."""
    due_members = 0
    while True:
        async with db.transaction() as session:
            members = await schedule.claim_digests(session, now, BATCH)
            for member in members:
                workspace = await session.get(Workspace, member.workspace_id)
                assert workspace is not None
                due = await schedule.digest_due(session, member, workspace, now)
                if member.role in schedule.MANAGER_ROLES:
                    day = schedule.local_date(due.due_at, due.tz)
                    await schedule.enqueue(session, key=f"{KIND}:{member.id}:{day}", kind=KIND,
                                           workspace_id=workspace.id, member_id=member.id,
                                           payload={"day": day.isoformat()}, due_at=due.due_at, now=now)
                schedule.advance_digest(member, workspace, due, now)
        due_members += len(members)
        if len(members) < BATCH:
            return due_members


async def digest_message(ctx: Context, row: OutboxMessage, *, late: bool) -> list[Reply] | None:
    """The digest (and on Mondays its chart); None if the member is no longer a manager."""
    if ctx.me.role not in schedule.MANAGER_ROLES:
        return None
    replies = await build_digest(ctx.session, ctx.ws, ctx.me, now=row.due_at, locale=ctx.locale, tz=ctx.tz)
    if late and replies:
        replies[0].text = "\n".join(filter(None, [ctx.t("delivery.late", when=ctx.fmt_time(row.due_at)),
                                                  replies[0].text]))
    return replies

"""Notices to a workspace's admins (storage.offboarding): a member left the team's group or was
deactivated, and lost access; the notice carries a Restore button (handlers.offboarding)."""
from __future__ import annotations

from handlers.context import Context
from handlers.messages import Reply
from handlers.offboarding import suspended_notice
from storage.models import Member, OutboxMessage
from storage.offboarding import NOTICE

KIND = NOTICE


async def suspended_message(ctx: Context, row: OutboxMessage, *, late: bool) -> list[Reply] | None:
    """None when the member has access again, or is no longer the admin's to restore."""
    member = await ctx.session.get(Member, row.payload.get("member"))
    if member is None or member.workspace_id != ctx.ws.id or ctx.me.role != "admin":
        return None
    return suspended_notice(ctx, member, late=late)

"""Offboarding (admins): `/team remove <member> [to <member>]` (`/移除`), `/team restore <member>`, and the
Restore button of the notice admins get when a member left the team's group or was deactivated.

A removed member's customers and pending reminders go to the member named after
`to` (default: the admin removing them), in one audited change (storage.offboarding).
Names must match a member's name exactly here: taking someone's access away by a
partial match would be too easy a slip.
"""
from __future__ import annotations

from handlers.context import Context
from handlers.customers import member_named
from handlers.errors import UserError
from handlers.messages import Button, Reply
from handlers.parsing import tokenize
from handlers.registry import Result, action, button_number, payload
from storage import offboarding
from storage.models import Member

REMOVE_WORDS = ("remove", "移除")
RESTORE_WORDS = ("restore", "恢复")
TO_WORDS = ("to", "给", "交给", "→", "->")


async def remove_member(ctx: Context, text: str) -> Result:
    """`/team remove Bob [to Alice]`: Bob loses access; his customers and reminders go to Alice (default: me)."""
    ctx.scope.require_role("admin", "team")
    tokens = tokenize(text)
    split = next((i for i, tok in enumerate(tokens) if i and not tok.quoted and tok.text.casefold() in TO_WORDS),
                 len(tokens))
    leaving, receiving = " ".join(t.text for t in tokens[:split]), " ".join(t.text for t in tokens[split + 1:])
    if not leaving or (split < len(tokens) and not receiving):
        raise UserError("error.team_remove_usage")
    member = await _member(ctx, leaving, among="any")
    if member.removed_how == offboarding.REMOVED:
        raise UserError("error.team_already_removed", name=member.name)
    to = await _member(ctx, receiving, among="active") if receiving else ctx.me
    if to.id == member.id:
        raise UserError("error.team_remove_to_self", name=member.name)
    try:
        handover = await offboarding.remove(ctx.session, member, to=to, by=ctx.me, now=ctx.now)
    except offboarding.LastAdmin:
        raise UserError("error.last_admin", name=member.name) from None
    return Reply(text=ctx.t("team.removed", name=member.name, to=to.name, customers=handover.customers,
                            reminders=handover.reminders))


async def restore_member(ctx: Context, text: str) -> Result:
    """`/team restore Bob`: Bob has access again (his customers, if handed over, stay where they went)."""
    ctx.scope.require_role("admin", "team")
    if not text.strip():
        raise UserError("error.team_restore_usage")
    member = await _member(ctx, " ".join(t.text for t in tokenize(text)), among="removed")
    return await _restored(ctx, member)


@action("mres", role="admin")
async def restore_button(ctx: Context, args: list[str]) -> Result:
    """The Restore button of the notice that a member was suspended."""
    member_id = button_number(args[0]) if args else None
    member = await ctx.session.get(Member, member_id) if member_id is not None else None
    if member is None or member.workspace_id != ctx.ws.id:
        raise UserError("error.choice_expired")
    reply = await _restored(ctx, member)
    reply.edit = True
    return reply


async def _restored(ctx: Context, member: Member) -> Reply:
    how = await offboarding.restore(ctx.session, member, by=ctx.me, now=ctx.now)
    if how is None:
        return Reply(text=ctx.t("team.has_access", name=member.name))
    return Reply(text=ctx.t("team.restored", name=member.name))


async def _member(ctx: Context, name: str, *, among: str) -> Member:
    member = await ctx.session.get(Member, await member_named(ctx, name, among=among, exact=True))
    assert member is not None
    return member


def suspended_notice(ctx: Context, member: Member, *, late: bool) -> list[Reply] | None:
    """What admins are told when a member was suspended; None once the member has access again
    (restored, by someone else, before this went out)."""
    if member.removed_at is None or member.removed_how == offboarding.REMOVED:
        return None
    lines = [ctx.t("delivery.late", when=ctx.fmt_time(member.removed_at))] if late else []
    lines.append(ctx.t(f"team.suspended.{member.removed_how}", name=member.name, workspace=ctx.ws.name))
    lines.append(ctx.t("team.suspended.what_now", name=member.name))
    return [Reply(text="\n".join(lines), buttons=[[
        Button(ctx.t("team.restore_button"), payload("mres", member.id), "primary")]])]

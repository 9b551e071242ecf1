"""Finding (or creating) the workspace and member behind a request (SPEC §2).

- A Slack team or the console is a workspace created on first use; its first
  user becomes admin, later ones join as reps.
- A Telegram group becomes a workspace with `/start`; members who use the bot
  there join as reps.
- A Telegram private chat belongs to the member's most recently used workspace,
  except a button press there: it works on the workspace of what the button
  names (a reminder, a customer, a stored choice, a guided flow), if the
  presser is a member of it, and that becomes the chat's latest workspace.
  Whoever is not a member there gets the latest one, where the object is not
  found: a button never reaches into a workspace its presser is not in.
- A member who lost access (removed, or suspended on leaving: storage.offboarding)
  is refused in that workspace on every platform and linked account, and never
  joins it again by using a chat of it: `ctx.refused` names the workspace. A
  private chat works on the latest workspace where the account still has access.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import guided
from handlers.context import Context
from handlers.i18n import normalize_locale
from handlers.messages import Request
from handlers.registry import button_number
from storage import workspaces
from storage.models import Customer, Identity, ImportFile, Member, PendingChoice, ProcessedUpdate, Reminder, Workspace
from storage.standardise import visible

#: Per action, the key column that finds what a button's first payload argument names, and that row's
#: workspace column; None for buttons that name nothing (the "my day" ones work on the latest workspace).
BUTTON_SUBJECTS: dict[str, tuple[Any, Any] | None] = {
    **dict.fromkeys(("rdone", "rsnz", "rmov"), (Reminder.id, Reminder.workspace_id)),
    **dict.fromkeys(("flog", "frem", "ftag", "show", "ssnz", "slost", "mgq", "eedit", "edel"),
                    (Customer.id, Customer.workspace_id)),
    **dict.fromkeys(("pick", "dup", "pg", "rec", "gform", "edc"), (PendingChoice.token, PendingChoice.workspace_id)),
    "mres": (Member.id, Member.workspace_id),
    "imp": (ImportFile.token, ImportFile.workspace_id),
    "home": None,
}
#: A sighting (`last_seen_at`) is written when the stored one is older than this, not on every request:
#: two UPDATEs a command saved. "Last seen" and which workspace a private chat works on (the latest one
#: used) follow the account to the minute.
SIGHTING_PRECISION = timedelta(minutes=1)
#: Guided-flow buttons name their flow (handlers.guided), kept with the presser's conversation in this chat.
FLOW_BUTTONS = ("gskip", "gopt", "gcancel")


async def resolve(ctx: Context) -> ProcessedUpdate | None:
    """Set `ctx.workspace`, `ctx.member`, language and time zone for the request; or, for an update
    applied before, return its stored redelivery key, having changed nothing.

    The key and the form the member has open in this chat are read by the membership query itself
    (`workspaces.Asked`): one statement for what every request needs to know first."""
    request, session = ctx.request, ctx.session
    asked = workspaces.Asked(guided.chat_key(ctx), request.update_key)
    membership: workspaces.Membership | None = None
    if request.space is not None:
        workspace, membership = await workspaces.space_membership(session, request.platform, request.space,
                                                                  request.user_id, asked)
        if (applied := await _applied_before(ctx, asked)) is not None:
            return applied
        if workspace is None and request.space_autocreate:
            workspace = await open_workspace(ctx, request.space_name or request.space, bind=True)
        if workspace is not None and membership is None:
            await join(ctx, workspace, role="admin" if not await workspaces.member_count(session, workspace.id) else "rep")
            return None
    else:
        membership = await _private_chat_membership(ctx, asked)
        if (applied := await _applied_before(ctx, asked)) is not None:
            return applied
    if membership is not None and membership.member.removed_at is not None:
        ctx.refused = membership.workspace
        ctx.locale = normalize_locale(membership.identity.language or request.language, membership.workspace.locale)
    elif membership is not None:
        enter(ctx, membership.workspace, membership.member, membership.identity)
        if asked.read:
            ctx.open_form = asked.conversation
    else:  # not a member yet (before /start or /join): answer in the account's language
        ctx.locale = normalize_locale(request.language, ctx.locale)
    return None


async def _applied_before(ctx: Context, asked: workspaces.Asked) -> ProcessedUpdate | None:
    """The update's stored redelivery key, if it has one: as the membership query read it, else read now."""
    if not ctx.request.update_key:
        return None
    if asked.read:
        return asked.applied
    return await ctx.session.get(ProcessedUpdate, ctx.request.update_key)


async def locale_for(session: AsyncSession, request: Request, default_locale: str) -> str:
    """The language the request would be answered in, changing nothing (an adapter's own lines:
    the console's banner): the member's, else the account's, else the book's, else `default_locale`."""
    workspace = membership = None
    if request.space is not None:
        workspace, membership = await workspaces.space_membership(session, request.platform, request.space,
                                                                  request.user_id)
    else:
        membership = await workspaces.latest_membership(session, request.platform, request.user_id)
    if membership is not None:
        language = request.language or membership.identity.language
        return membership.member.locale or normalize_locale(language, membership.workspace.locale)
    return normalize_locale(request.language, workspace.locale if workspace is not None else default_locale)


async def _private_chat_membership(ctx: Context, asked: workspaces.Asked) -> workspaces.Membership | None:
    """The membership a private chat works on: the button's object's workspace, else the latest one."""
    request = ctx.request
    subject = await _button_workspace(ctx) if request.action else None
    if subject is not None:
        found = await workspaces.membership_in(ctx.session, request.platform, request.user_id, subject, asked)
        if found is not None:
            return found
    return await workspaces.latest_membership(ctx.session, request.platform, request.user_id, asked)


async def _button_workspace(ctx: Context) -> int | None:
    """The workspace of what the pressed button names, whoever it belongs to (None: it names nothing)."""
    name, *args = (ctx.request.action or "").split(":")
    first = args[0] if args else ""
    if name in FLOW_BUTTONS:
        return await guided.workspace_of_flow(ctx, first)
    subject = BUTTON_SUBJECTS.get(name)
    if subject is None or not first:
        return None
    key, workspace_id = subject
    wanted = button_number(first) if key.type.python_type is int else first
    if wanted is None:
        return None
    return await ctx.session.scalar(select(workspace_id).where(key == wanted))


async def open_workspace(ctx: Context, name: str, *, bind: bool) -> Workspace:
    """Create a workspace with this process's defaults (bound to the request's space if `bind`)."""
    locale = normalize_locale(ctx.request.language, ctx.services.default_locale)
    workspace = await workspaces.create_workspace(
        ctx.session, name=name, timezone=ctx.services.default_timezone, locale=locale, now=ctx.now
    )
    if bind and ctx.request.space is not None:
        await workspaces.bind_space(ctx.session, workspace, ctx.request.platform, ctx.request.space)
    return workspace


async def join(ctx: Context, workspace: Workspace, *, role: str) -> Member:
    """Make the requester a member of `workspace` and switch the context to it."""
    request = ctx.request
    member, identity = await workspaces.add_member(
        ctx.session, workspace, platform=request.platform, external_id=request.user_id,
        name=request.user_name, role=role, now=ctx.now,
    )
    enter(ctx, workspace, member, identity)
    return member


def enter(ctx: Context, workspace: Workspace, member: Member, identity: Identity) -> None:
    """Record this sighting of the account (to the minute: SIGHTING_PRECISION) and take on its
    language and time zone."""
    request = ctx.request
    if identity.last_seen_at is None or ctx.now - identity.last_seen_at >= SIGHTING_PRECISION:
        identity.last_seen_at = ctx.now
    if member.last_seen_at is None or ctx.now - member.last_seen_at >= SIGHTING_PRECISION:
        member.last_seen_at = ctx.now
    _update(member, last_platform=request.platform)
    _update(identity, dm_chat_id=request.dm_chat_id, language=request.language, timezone=request.timezone)
    if request.user_name and member.name in ("", request.user_id):
        member.name = visible(request.user_name)[:200] or member.name
    ctx.workspace, ctx.member = workspace, member
    ctx.locale = member.locale or normalize_locale(identity.language, workspace.locale)
    ctx.tz = zone(member.timezone or identity.timezone or workspace.timezone, ctx.tz)


def _update(row: Member | Identity, **values: str | None) -> None:
    """Set the values given (not None or empty) that differ: a row assigned its own values again
    is still "dirty" to the session, whose flush then works through it to write nothing."""
    for key, value in values.items():
        if value and getattr(row, key) != value:
            setattr(row, key, value)


def zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else fallback
    except (ZoneInfoNotFoundError, ValueError):
        return fallback

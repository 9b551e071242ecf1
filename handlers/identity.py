"""Finding (or creating) the workspace and member behind a request (SPEC §2).

- A Slack team or the console is a workspace created on first use; its first
  user becomes admin, later ones join as reps.
- A Telegram group becomes a workspace with `/start`; members who use the bot
  there join as reps.
- A Telegram private chat belongs to the member's most recently used workspace.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handlers.context import Context
from handlers.i18n import normalize_locale
from storage import workspaces
from storage.models import Identity, Member, Workspace


async def resolve(ctx: Context) -> None:
    """Set `ctx.workspace`, `ctx.member`, language and time zone for the request."""
    request, session = ctx.request, ctx.session
    identity: Identity | None = None
    if request.space is not None:
        workspace = await workspaces.workspace_for_space(session, request.platform, request.space)
        if workspace is None and request.space_autocreate:
            workspace = await open_workspace(ctx, request.space_name or request.space, bind=True)
        if workspace is not None:
            identity = await workspaces.identity_in(session, request.platform, request.user_id, workspace.id)
            if identity is None:
                await join(ctx, workspace, role="admin" if not await workspaces.member_count(session, workspace.id) else "rep")
                return
    else:
        identity = await workspaces.latest_identity(session, request.platform, request.user_id)
    if identity is not None:
        workspace = await session.get(Workspace, identity.workspace_id)
        member = await session.get(Member, identity.member_id)
        assert workspace is not None and member is not None
        enter(ctx, workspace, member, identity)
    else:  # not a member yet (before /start or /join): answer in the account's language
        ctx.locale = normalize_locale(request.language, ctx.locale)


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
    """Record this sighting of the account and take on its language and time zone."""
    request = ctx.request
    identity.last_seen_at = member.last_seen_at = ctx.now
    member.last_platform = request.platform
    if request.dm_chat_id:
        identity.dm_chat_id = request.dm_chat_id
    if request.language:
        identity.language = request.language
    if request.timezone:
        identity.timezone = request.timezone
    if request.user_name and member.name in ("", request.user_id):
        member.name = request.user_name[:200]
    ctx.workspace, ctx.member = workspace, member
    ctx.locale = member.locale or normalize_locale(identity.language, workspace.locale)
    ctx.tz = zone(member.timezone or identity.timezone or workspace.timezone, ctx.tz)


def zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else fallback
    except (ZoneInfoNotFoundError, ValueError):
        return fallback

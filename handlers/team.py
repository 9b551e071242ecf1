"""Membership: /start, /team, /invite, /join, /role, /link (SPEC §2).

A chat that belongs to a space (a Slack team, a Telegram group, the console)
always works on that space's workspace, so codes that switch or add a
workspace (/join, /link CODE) only take effect where the chat is not bound to
another one — in practice a private Telegram chat. Codes are only shown and
redeemed in private chats: anyone in a group could use a code posted there.
"""
from __future__ import annotations

from sqlalchemy import select

from handlers import identity
from handlers.context import Context
from handlers.customers import member_named
from handlers.errors import UserError
from handlers.i18n import LOCALES, catalogue, t
from handlers.messages import Reply
from handlers.paging import PAGE_SIZE, page_buttons
from handlers.parsing import tokenize
from handlers.registry import Result, command
from storage import audit, membership
from storage.access import ROLES
from storage.models import Identity, Member, Workspace


def role_named(word: str) -> str | None:
    """`manager`, `Manager`, `经理` → `manager`; anything else → None."""
    wanted = word.strip().casefold()
    for role in ROLES:
        if wanted in {role, *(t(locale, f"role.{role}").casefold() for locale in LOCALES)}:
            return role
    return None


def platform_label(ctx: Context, platform: str) -> str:
    return catalogue(ctx.locale).get(f"platform.{platform}", platform)


def require_private(ctx: Context, command_name: str, reason: str = "error.private_only") -> None:
    """Refuse a command outside a private chat (a group has no reply only its asker sees on every
    platform); `reason` says why, and how to get it."""
    if not ctx.request.is_private:
        raise UserError(reason, command=command_name)


def for_the_asker(ctx: Context, command_name: str, reason: str) -> bool:
    """What only the asker should see (the whole book, the team's figures): fine in a private chat;
    in a channel where the platform can answer the asker alone, True: mark the replies private;
    elsewhere (a Telegram group) refused, `reason` saying how to get it."""
    if ctx.request.is_private:
        return False
    if ctx.request.answers_privately:
        return True
    raise UserError(reason, command=command_name)


def require_chat_can_use(ctx: Context, workspace_id: int) -> None:
    """A chat bound to a space can only work on that space's workspace."""
    if ctx.request.space is not None and (ctx.workspace is None or ctx.workspace.id != workspace_id):
        raise UserError("error.code_wrong_place")


def welcome(ctx: Context, note: str) -> Reply:
    return Reply(title=ctx.t("start.title"), text=f"{note}\n\n{ctx.t('start.welcome')}")


def _record(ctx: Context, action: str, after: dict[str, object]) -> None:
    audit.record(ctx.session, workspace_id=ctx.ws.id, member_id=ctx.me.id, action=action, after=after, at=ctx.now)


# --- /start ---------------------------------------------------------------------------

@command("start", needs_workspace=False, aliases=("开始",))
async def start(ctx: Context, args: str) -> Result:
    """Create the caller's customer book where there is none yet, else say hello.

    `/start CODE` in a private chat joins with an invite code (what a Telegram
    deep link `t.me/<bot>?start=CODE` sends).
    """
    request = ctx.request
    if args and request.space is None:
        return await redeem_invite(ctx, args)
    if ctx.workspace is not None:  # joined just now (a Slack team, the console) or earlier
        note = "join.done" if ctx.me.created_at == ctx.now else "start.back"
        return welcome(ctx, ctx.t(note, workspace=ctx.ws.name, role=ctx.t(f"role.{ctx.me.role}")))
    if request.space is None:
        name = ctx.t("start.solo_name", name=request.user_name) if request.user_name else ctx.t("start.solo_default")
        workspace = await identity.open_workspace(ctx, name, bind=False)
        note = "start.created_solo"
    else:
        workspace = await identity.open_workspace(ctx, request.space_name or request.space, bind=True)
        note = "start.created_group"
    await identity.join(ctx, workspace, role="admin")
    _record(ctx, "create", {"name": workspace.name})
    return welcome(ctx, ctx.t(note, workspace=workspace.name))


# --- /team ------------------------------------------------------------------------------

@command("team", aliases=("团队",))
async def team(ctx: Context, args: str, page: int = 0) -> Result:
    """Everyone in the workspace: role, customers owned, last seen (names are not secret)."""
    rows = await membership.team(ctx.session, ctx.ws.id)
    shown = rows[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    return Reply(
        title=ctx.t("team.title", workspace=ctx.ws.name, count=len(rows)),
        items=[_team_row(ctx, row) for row in shown],
        buttons=await page_buttons(ctx, "team", args, page, len(rows)),
    )


def _team_row(ctx: Context, row: membership.TeamRow) -> str:
    member = row.member
    name = member.name + (ctx.t("team.you") if member.id == ctx.me.id else "")
    return ctx.t(
        "team.row", name=name, role=ctx.t(f"role.{member.role}"), customers=row.customers,
        seen=ctx.fmt_time(member.last_seen_at),
        platforms=ctx.listed(platform_label(ctx, p) for p in row.platforms) or "—",
    )


# --- /invite, /join -----------------------------------------------------------------------

@command("invite", role="admin", aliases=("邀请",))
async def invite(ctx: Context, args: str) -> Result:
    require_private(ctx, "invite")
    words = args.split()
    role = role_named(words[0]) if words else "rep"
    if role is None or len(words) > 1:
        raise UserError("error.invite_usage")
    created = await membership.create_invite(ctx.session, ctx.me, role=role, now=ctx.now)
    return Reply(
        text=ctx.t("invite.created", code=created.code, role=ctx.t(f"role.{role}"), workspace=ctx.ws.name,
                   expires=ctx.fmt_time(created.expires_at)),
        private=True,
    )


@command("join", needs_workspace=False, aliases=("加入",))
async def join(ctx: Context, args: str) -> Result:
    return await redeem_invite(ctx, args)


async def redeem_invite(ctx: Context, text: str) -> Reply:
    if len(text.split()) != 1:
        raise UserError("error.join_usage")
    require_private(ctx, "join")
    invite_ = await membership.valid_invite(ctx.session, text, ctx.now)
    if invite_ is None:
        raise UserError("error.join_bad_code", code=text.strip()[:20])
    require_chat_can_use(ctx, invite_.workspace_id)
    workspace = await ctx.session.get(Workspace, invite_.workspace_id)
    assert workspace is not None
    request = ctx.request
    existing = await ctx.session.scalar(select(Identity).where(
        Identity.platform == request.platform, Identity.external_id == request.user_id,
        Identity.workspace_id == workspace.id))
    if existing is not None:
        member = await ctx.session.get(Member, existing.member_id)
        assert member is not None
        identity.enter(ctx, workspace, member, existing)  # a private chat now works on that book again
        return Reply(text=ctx.t("join.already", workspace=workspace.name, role=ctx.t(f"role.{member.role}")))
    member = await identity.join(ctx, workspace, role=invite_.role)
    _record(ctx, "join", {"member_id": member.id, "role": invite_.role})
    return welcome(ctx, ctx.t("join.done", workspace=workspace.name, role=ctx.t(f"role.{invite_.role}")))


# --- /role ----------------------------------------------------------------------------------

@command("role", role="admin", aliases=("角色",))
async def role(ctx: Context, args: str) -> Result:
    """`/role <member> rep|manager|admin`: the member's name may have spaces; the role comes last."""
    tokens = tokenize(args)
    new_role = role_named(tokens[-1].text) if len(tokens) >= 2 else None
    if new_role is None:
        raise UserError("error.role_usage")
    member = await ctx.session.get(Member, await member_named(ctx, " ".join(tok.text for tok in tokens[:-1])))
    assert member is not None
    old_role = member.role
    if old_role == new_role:
        return Reply(text=ctx.t("team.role_same", name=member.name, role=ctx.t(f"role.{new_role}")))
    try:
        await membership.set_role(ctx.session, member, new_role, by=ctx.me, now=ctx.now)
    except membership.LastAdmin:
        raise UserError("error.last_admin", name=member.name) from None
    return Reply(text=ctx.t("team.role_changed", name=member.name, old=ctx.t(f"role.{old_role}"),
                            new=ctx.t(f"role.{new_role}")))


# --- /link ------------------------------------------------------------------------------------

@command("link", needs_workspace=False, aliases=("关联",))
async def link(ctx: Context, args: str) -> Result:
    """`/link` gives a one-time code; `/link CODE` on another platform makes this account that member."""
    require_private(ctx, "link")
    words = args.split()
    if not words:
        code = await membership.create_link_code(ctx.session, ctx.me, now=ctx.now)
        minutes = int(membership.LINK_TTL.total_seconds() // 60)
        return Reply(text=ctx.t("link.code", code=code.code, minutes=minutes), private=True)
    if len(words) > 1:
        raise UserError("error.link_usage")
    found = await membership.valid_link_code(ctx.session, words[0], ctx.now)
    if found is None:
        raise UserError("error.link_bad_code", code=words[0][:20])
    require_chat_can_use(ctx, found.workspace_id)
    workspace = await ctx.session.get(Workspace, found.workspace_id)
    assert workspace is not None
    platform = ctx.request.platform
    try:
        member, account = await membership.redeem_link_code(
            ctx.session, found, platform=platform, external_id=ctx.request.user_id, now=ctx.now)
    except membership.LinkRefused as refused:
        raise UserError(f"error.link_{refused.reason}", platform=platform_label(ctx, platform)) from None
    identity.enter(ctx, workspace, member, account)
    return Reply(text=ctx.t("link.done", platform=platform_label(ctx, platform), name=member.name,
                            workspace=workspace.name, role=ctx.t(f"role.{member.role}")))

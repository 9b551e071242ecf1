"""Membership: /start, /team, /invite, /join, /role, /link (SPEC §2).

A chat that belongs to a space (a Slack team, a Telegram group, the console)
always works on that space's workspace, so codes that switch or add a
workspace (/join, /link CODE) only take effect where the chat is not bound to
another one — in practice a private Telegram chat. Codes are only shown and
redeemed in private chats: anyone in a group could use a code posted there.
Wrong codes are counted and, past a few, lock redemptions for a while
(storage.code_guard). `/team remove|restore` live in handlers.offboarding.
"""
from __future__ import annotations

from sqlalchemy import select

from handlers import identity, offboarding
from handlers.context import Context
from handlers.customers import member_named
from handlers.errors import UserError
from handlers.i18n import LOCALES, catalogue, t
from handlers.messages import Reply
from handlers.paging import PAGE_SIZE, page_buttons
from handlers.parsing import tokenize
from handlers.registry import Result, command
from storage import audit, code_guard, membership, workspaces
from storage.access import ROLES
from storage.models import Identity, Invite, Member, Workspace
from storage.offboarding import LastAdmin


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

@command("team", aliases=("团队",), shortcuts=(("移除", "remove"),))
async def team(ctx: Context, args: str, page: int = 0) -> Result:
    """Everyone in the workspace: role, customers owned, last seen (names are not secret); those who lost
    access listed apart, last. `/team remove …` and `/team restore …` are the admins' (handlers.offboarding)."""
    word, _, rest = args.partition(" ")
    if word.casefold() in offboarding.REMOVE_WORDS:
        return await offboarding.remove_member(ctx, rest)
    if word.casefold() in offboarding.RESTORE_WORDS:
        return await offboarding.restore_member(ctx, rest)
    everyone = await membership.team(ctx.session, ctx.ws.id)
    rows = [row for row in everyone if row.member.removed_at is None]
    gone = [row for row in everyone if row.member.removed_at is not None]
    listed = rows + gone
    items = []
    for index in range(page * PAGE_SIZE, min((page + 1) * PAGE_SIZE, len(listed))):
        if index == len(rows):
            items.append(ctx.t("team.gone_title", count=len(gone)))
        items.append(_team_row(ctx, listed[index]))
    return Reply(
        title=ctx.t("team.title", workspace=ctx.ws.name, count=len(rows)),
        items=items,
        buttons=await page_buttons(ctx, "team", args, page, len(listed)),
    )


def _team_row(ctx: Context, row: membership.TeamRow) -> str:
    member = row.member
    name = member.name + (ctx.t("team.you") if member.id == ctx.me.id else "")
    if member.removed_at is not None:
        return ctx.t(f"team.gone.{member.removed_how or 'removed'}", name=name, role=ctx.t(f"role.{member.role}"),
                     customers=row.customers, when=ctx.fmt_date(member.removed_at))
    return ctx.t(
        "team.row", name=name, role=ctx.t(f"role.{member.role}"), customers=row.customers,
        seen=ctx.fmt_time(member.last_seen_at),
        platforms=ctx.listed(platform_label(ctx, p) for p in row.platforms) or "—",
    )


# --- /invite, /join -----------------------------------------------------------------------

LIST_WORDS = ("list", "列表")
REVOKE_WORDS = ("revoke", "撤销", "作废")


@command("invite", role="admin", aliases=("邀请",))
async def invite(ctx: Context, args: str) -> Result:
    require_private(ctx, "invite")
    words = args.split()
    if words and words[0].casefold() in LIST_WORDS and len(words) == 1:
        return await _invite_list(ctx)
    if words and words[0].casefold() in REVOKE_WORDS:
        return await _invite_revoke(ctx, words[1:])
    role = role_named(words[0]) if words else "rep"
    if role is None or len(words) > 1:
        raise UserError("error.invite_usage")
    created = await membership.create_invite(ctx.session, ctx.me, role=role, now=ctx.now)
    return Reply(
        text=ctx.t("invite.created", code=created.code, role=ctx.t(f"role.{role}"), workspace=ctx.ws.name,
                   expires=ctx.fmt_time(created.expires_at)),
        private=True,
    )


async def _invite_list(ctx: Context) -> Reply:
    invites = await membership.open_invites(ctx.session, ctx.ws.id, ctx.now)
    if not invites:
        return Reply(text=ctx.t("invite.none"), private=True)
    names = {m.id: m.name for m in await workspaces.members(ctx.session, ctx.ws.id)}
    return Reply(title=ctx.t("invite.list_title", workspace=ctx.ws.name, count=len(invites)), private=True,
                 items=[_invite_row(ctx, i, names) for i in invites], text=ctx.t("invite.list_how"))


def _invite_row(ctx: Context, invite_: Invite, names: dict[int, str]) -> str:
    return ctx.t("invite.row", code=invite_.code, role=ctx.t(f"role.{invite_.role}"),
                 by=names.get(invite_.created_by or 0, "—"), uses=invite_.uses,
                 expires=ctx.fmt_time(invite_.expires_at))


async def _invite_revoke(ctx: Context, words: list[str]) -> Reply:
    if len(words) != 1:
        raise UserError("error.invite_revoke_usage")
    revoked = await membership.revoke_invite(ctx.session, ctx.ws.id, words[0], by=ctx.me, now=ctx.now)
    if revoked is None:
        raise UserError("error.invite_unknown", code=words[0][:20])
    return Reply(text=ctx.t("invite.revoked", code=revoked.code, uses=revoked.uses), private=True)


@command("join", needs_workspace=False, aliases=("加入",))
async def join(ctx: Context, args: str) -> Result:
    return await redeem_invite(ctx, args)


async def redeem_invite(ctx: Context, text: str) -> Reply:
    if len(text.split()) != 1:
        raise UserError("error.join_usage")
    require_private(ctx, "join")
    await _not_locked(ctx)
    invite_ = await membership.valid_invite(ctx.session, text, ctx.now)
    if invite_ is None:
        return await _wrong_code(ctx, "error.join_bad_code", text)
    require_chat_can_use(ctx, invite_.workspace_id)
    await code_guard.record_success(ctx.session, ctx.request.platform, ctx.request.user_id)
    workspace = await ctx.session.get(Workspace, invite_.workspace_id)
    assert workspace is not None
    request = ctx.request
    existing = await ctx.session.scalar(select(Identity).where(
        Identity.platform == request.platform, Identity.external_id == request.user_id,
        Identity.workspace_id == workspace.id))
    if existing is not None:
        return await _redeemed_by_member(ctx, invite_, workspace, existing)
    member = await identity.join(ctx, workspace, role=invite_.role)
    await membership.redeemed(ctx.session, invite_, member, joined=True, now=ctx.now)
    return welcome(ctx, ctx.t("join.done", workspace=workspace.name, role=ctx.t(f"role.{member.role}")))


async def _redeemed_by_member(ctx: Context, invite_: Invite, workspace: Workspace, existing: Identity) -> Reply:
    """An invite to a book the account is in already: it promotes them if its role is higher."""
    member = await ctx.session.get(Member, existing.member_id)
    assert member is not None
    if member.removed_at is not None:
        raise UserError("error.join_removed", workspace=workspace.name)
    identity.enter(ctx, workspace, member, existing)  # a private chat now works on that book again
    if not membership.promotes(invite_, member):
        return Reply(text=ctx.t("join.already", workspace=workspace.name, role=ctx.t(f"role.{member.role}")))
    old = member.role
    await membership.redeemed(ctx.session, invite_, member, joined=False, now=ctx.now)
    return Reply(text=ctx.t("join.promoted", workspace=workspace.name, old=ctx.t(f"role.{old}"),
                            new=ctx.t(f"role.{member.role}")))


async def _not_locked(ctx: Context) -> None:
    """Refuse a code while wrong codes have locked this account's (or everyone's) redemptions."""
    until = await code_guard.locked_until(ctx.session, ctx.request.platform, ctx.request.user_id, ctx.now)
    if until is not None:
        raise UserError("error.code_locked", until=ctx.fmt_time(until))


async def _wrong_code(ctx: Context, key: str, typed: str) -> Reply:
    """Count a wrong code and say so. Answered, not raised: a raised error would roll the count back."""
    until = await code_guard.record_failure(ctx.session, ctx.request.platform, ctx.request.user_id, ctx.now)
    lines = [ctx.t(key, code=typed.strip()[:20])]
    if until is not None:
        lines.append(ctx.t("error.code_locked", until=ctx.fmt_time(until)))
    return Reply(text="\n".join(lines), private=True)


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
    except LastAdmin:
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
    await _not_locked(ctx)
    found = await membership.valid_link_code(ctx.session, words[0], ctx.now)
    if found is None:
        return await _wrong_code(ctx, "error.link_bad_code", words[0])
    require_chat_can_use(ctx, found.workspace_id)
    await code_guard.record_success(ctx.session, ctx.request.platform, ctx.request.user_id)
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

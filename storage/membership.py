"""Who belongs to a workspace and as what: invites, link codes, roles (SPEC §2).

- An invite code lets anyone who has it join the workspace with the invite's
  role for 7 days (one code can be shared with several colleagues); an admin
  invite works once. Each redemption is audited with its code; a member who
  redeems an invite of a higher role than theirs is promoted to it.
- A link code joins a second platform account to an existing member; it lasts
  10 minutes and works once.
- A workspace always keeps at least one active admin (storage.offboarding).

Codes are 8 characters from an alphabet without look-alikes (no 0/O, 1/I/L),
stored upper-case, so they are read back case-insensitively.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.access import RANK
from storage.models import Customer, Identity, Invite, LinkCode, Member
from storage.offboarding import require_another_admin

INVITE_TTL = timedelta(days=7)
LINK_TTL = timedelta(minutes=10)
CODE_LENGTH = 8
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


class LinkRefused(Exception):
    """A link code that cannot join this account; `reason` says why:

    - `already`: the account already is that member;
    - `same_platform`: the member already has an account on this platform;
    - `other_member`: the account is a different member of that workspace.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalize_code(text: str) -> str:
    """What a person typed (`k7mx 3qpa`, `K7MX-3QPA`) → the stored form."""
    return "".join(ch for ch in text.upper() if ch.isalnum())[:16]


async def _new_code(session: AsyncSession, table: type[Invite] | type[LinkCode]) -> str:
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
        if await session.get(table, code) is None:
            return code


# --- invites ----------------------------------------------------------------------

async def create_invite(session: AsyncSession, member: Member, *, role: str, now: datetime) -> Invite:
    """A new invite to `member`'s workspace (audited); expired invites are cleared on the way."""
    await session.execute(delete(Invite).where(Invite.expires_at < now))
    invite = Invite(code=await _new_code(session, Invite), workspace_id=member.workspace_id,
                    created_by=member.id, role=role, created_at=now, expires_at=now + INVITE_TTL)
    session.add(invite)
    audit.record(session, workspace_id=member.workspace_id, member_id=member.id, action="invite",
                 after={"role": role, "expires_at": invite.expires_at}, at=now)
    await session.flush()
    return invite


async def valid_invite(session: AsyncSession, code: str, now: datetime) -> Invite | None:
    invite = await session.get(Invite, normalize_code(code))
    return invite if invite is not None and invite.expires_at > now else None


async def open_invites(session: AsyncSession, workspace_id: int, now: datetime) -> list[Invite]:
    """The workspace's invites that still work, newest first (`/invite list`)."""
    return list(await session.scalars(select(Invite).where(Invite.workspace_id == workspace_id,
                                                           Invite.expires_at > now)
                                      .order_by(Invite.created_at.desc(), Invite.code)))


async def revoke_invite(session: AsyncSession, workspace_id: int, code: str, *, by: Member, now: datetime) -> Invite | None:
    """Make one of the workspace's invites stop working (audited); None if it has no such invite."""
    invite = await session.get(Invite, normalize_code(code))
    if invite is None or invite.workspace_id != workspace_id or invite.expires_at <= now:
        return None
    await session.delete(invite)
    audit.record(session, workspace_id=workspace_id, member_id=by.id, action="revoke_invite",
                 before={"code": invite.code, "role": invite.role, "uses": invite.uses}, at=now)
    await session.flush()
    return invite


def promotes(invite: Invite, member: Member) -> bool:
    """Whether redeeming the invite raises the member's role."""
    return RANK[invite.role] > RANK.get(member.role, -1)


async def redeemed(session: AsyncSession, invite: Invite, member: Member, *, joined: bool, now: datetime) -> None:
    """The invite brought `member` in (`joined`) or, if it `promotes` them, up to its role: audited
    with its code, counted, and an admin invite used up."""
    before = None if joined else {"member_id": member.id, "role": member.role}
    member.role = invite.role
    invite.uses += 1
    audit.record(session, workspace_id=invite.workspace_id, member_id=member.id, action="join", before=before,
                 after={"member_id": member.id, "role": invite.role, "code": invite.code,
                        "invited_by": invite.created_by}, at=now)
    if invite.role == "admin":
        await session.delete(invite)
    await session.flush()


# --- link codes -------------------------------------------------------------------------

async def create_link_code(session: AsyncSession, member: Member, *, now: datetime) -> LinkCode:
    """A fresh one-time code for `member`; their earlier codes (and all expired ones) stop working."""
    await session.execute(delete(LinkCode).where((LinkCode.member_id == member.id) | (LinkCode.expires_at < now)))
    link = LinkCode(code=await _new_code(session, LinkCode), member_id=member.id,
                    workspace_id=member.workspace_id, created_at=now, expires_at=now + LINK_TTL)
    session.add(link)
    await session.flush()
    return link


async def valid_link_code(session: AsyncSession, code: str, now: datetime) -> LinkCode | None:
    link = await session.get(LinkCode, normalize_code(code))
    return link if link is not None and link.expires_at > now else None


async def redeem_link_code(
    session: AsyncSession, link: LinkCode, *, platform: str, external_id: str, now: datetime
) -> tuple[Member, Identity]:
    """Attach the account (`platform`, `external_id`) to the code's member and use up the code.

    An account that joined the workspace as a new, empty member during this
    very request (the automatic join of a Slack or console user whose first
    message is `/link CODE`) is folded away instead of refused; any other
    membership is never merged. Raises `LinkRefused`.
    """
    member = await session.get(Member, link.member_id)
    assert member is not None, "link codes cascade with their member"
    existing = await session.scalar(select(Identity).where(
        Identity.platform == platform, Identity.external_id == external_id,
        Identity.workspace_id == link.workspace_id))
    if existing is not None and existing.member_id == member.id:
        raise LinkRefused("already")
    if await session.scalar(select(Identity.id).where(Identity.member_id == member.id, Identity.platform == platform)):
        raise LinkRefused("same_platform")
    if existing is not None:
        await _drop_fresh_member(session, existing, now)
    identity = Identity(member_id=member.id, workspace_id=member.workspace_id, platform=platform,
                        external_id=external_id, last_seen_at=now)
    session.add(identity)
    await session.delete(link)
    audit.record(session, workspace_id=member.workspace_id, member_id=member.id, action="link",
                 after={"member_id": member.id, "platform": platform}, at=now)
    await session.flush()
    return member, identity


async def _drop_fresh_member(session: AsyncSession, identity: Identity, now: datetime) -> None:
    fresh = await session.get(Member, identity.member_id)
    assert fresh is not None
    accounts = await session.scalar(select(func.count()).select_from(Identity).where(Identity.member_id == fresh.id))
    owns = await session.scalar(select(Customer.id).where(Customer.owner_id == fresh.id).limit(1))
    if fresh.created_at != now or fresh.role != "rep" or accounts != 1 or owns is not None:
        raise LinkRefused("other_member")
    await session.delete(identity)
    await session.delete(fresh)
    await session.flush()


# --- roles and the team ---------------------------------------------------------------------

async def set_role(session: AsyncSession, member: Member, role: str, *, by: Member, now: datetime) -> None:
    """Give `member` a new role (audited); never leaves the workspace without an admin.

    The admins are locked while counted, so two admins demoting each other at
    once cannot both succeed (PostgreSQL; SQLite writers are serialised anyway).
    """
    if role != "admin":
        await require_another_admin(session, member)
    before = member.role
    member.role = role
    audit.record(session, workspace_id=member.workspace_id, member_id=by.id, action="role",
                 before={"member_id": member.id, "role": before}, after={"member_id": member.id, "role": role}, at=now)


@dataclass(frozen=True)
class TeamRow:
    member: Member
    customers: int
    platforms: tuple[str, ...]


async def team(session: AsyncSession, workspace_id: int) -> list[TeamRow]:
    """Every member with how many live customers they own and the platforms they use, by role then name."""
    owned: dict[int, int] = {owner: n for owner, n in await session.execute(
        select(Customer.owner_id, func.count()).where(Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None))
        .group_by(Customer.owner_id)
    )}
    platforms: dict[int, set[str]] = {}
    for member_id, platform in await session.execute(
        select(Identity.member_id, Identity.platform).where(Identity.workspace_id == workspace_id)
    ):
        platforms.setdefault(member_id, set()).add(platform)
    members = await session.scalars(select(Member).where(Member.workspace_id == workspace_id))
    rows = [TeamRow(m, owned.get(m.id, 0), tuple(sorted(platforms.get(m.id, ())))) for m in members]
    return sorted(rows, key=lambda row: (-RANK.get(row.member.role, -1), row.member.name.casefold(), row.member.id))

"""Workspaces, the places they are reached from, members and their platform accounts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import pytz
from sqlalchemy import Select, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, Identity, Member, ProcessedUpdate, Space, Workspace
from storage.held import Entities
from storage.prepared import Prepared
from storage.standardise import visible

CURRENCY_BY_REGION = {"CN": "CNY", "US": "USD", "GB": "GBP", "JP": "JPY", "HK": "HKD", "TW": "TWD", "SG": "SGD"}
EURO_REGIONS = {"AT", "BE", "DE", "ES", "FI", "FR", "GR", "IE", "IT", "NL", "PT"}


@cache
def _country_by_timezone() -> dict[str, str]:
    return {zone: country for country, zones in pytz.country_timezones.items() for zone in zones}


def region_for_timezone(timezone: str, locale: str) -> str:
    """The country a time zone lies in (`Asia/Shanghai` → CN): where typed phone numbers
    without a country code are read. Falls back on the language (zh → CN, else US)."""
    return _country_by_timezone().get(timezone) or ("CN" if locale == "zh" else "US")


def currency_for_region(region: str) -> str:
    return CURRENCY_BY_REGION.get(region) or ("EUR" if region in EURO_REGIONS else "USD")


async def create_workspace(
    session: AsyncSession, *, name: str, timezone: str, locale: str, now: datetime
) -> Workspace:
    region = region_for_timezone(timezone, locale)
    workspace = Workspace(
        name=visible(name)[:200],
        created_at=now,
        timezone=timezone,
        locale=locale,
        currency=currency_for_region(region),
        phone_region=region,
        visibility="team",
        cadence_a=14, cadence_b=30, cadence_c=60, cadence_none=30,
        digest_time="08:30", sweep_time="09:00", lifetime_years=3,
        next_customer_no=1, next_reminder_no=1,
    )
    session.add(workspace)
    await session.flush()
    return workspace


async def workspace_for_space(session: AsyncSession, platform: str, external_id: str) -> Workspace | None:
    return await session.scalar(
        select(Workspace).join(Space, Space.workspace_id == Workspace.id)
        .where(Space.platform == platform, Space.external_id == external_id)
    )


async def bind_space(session: AsyncSession, workspace: Workspace, platform: str, external_id: str) -> None:
    session.add(Space(platform=platform, external_id=external_id, workspace_id=workspace.id))
    await session.flush()


async def member_count(session: AsyncSession, workspace_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(Member).where(Member.workspace_id == workspace_id)) or 0


class Membership(NamedTuple):
    """A platform account's membership of one workspace: what every request starts from."""

    identity: Identity
    workspace: Workspace
    member: Member


@dataclass
class Asked:
    """What a request's first query reads beside the membership, a statement saved on each: the
    guided form the member has open in this chat, and the update's redelivery key if it was stored
    (the update was applied before). `read` says whether a membership query ran with them."""

    chat_key: str
    update_key: str | None
    read: bool = False
    conversation: Conversation | None = None
    applied: ProcessedUpdate | None = None

    @staticmethod
    def joined(query: Select) -> Select:
        """`query` (which has `members` among its tables) with the two, outer-joined: still one row."""
        return (query.add_columns(Conversation, ProcessedUpdate)
                .outerjoin(Conversation, and_(Conversation.member_id == Member.id,
                                              Conversation.chat_key == bindparam("asked_chat_key")))
                .outerjoin(ProcessedUpdate, ProcessedUpdate.key == bindparam("asked_update_key")))

    def params(self) -> dict[str, str]:
        return {"asked_chat_key": self.chat_key, "asked_update_key": self.update_key or ""}

    def took(self, row: Any) -> Any:
        """The row without the two, which are kept here."""
        *membership, self.conversation, self.applied = row
        self.read = True
        return membership


# Every request starts with one of these three statements: each is built once (per whether it asks
# for the two), with its values bound at execution, and run as a Prepared statement whose objects the
# session then holds (storage.held): no ORM query per request.


@cache
def _space_membership(asking: bool) -> Entities:
    query = (
        select(Workspace, Identity, Member).select_from(Space)
        .join(Workspace, Workspace.id == Space.workspace_id)
        .outerjoin(Identity, and_(Identity.workspace_id == Workspace.id, Identity.platform == bindparam("platform"),
                                  Identity.external_id == bindparam("external_id")))
        .outerjoin(Member, Member.id == Identity.member_id)
        .where(Space.platform == bindparam("platform"), Space.external_id == bindparam("space"))
    )
    return Entities(Asked.joined(query) if asking else query)


@cache
def _membership_in(asking: bool) -> Entities:
    return _with_workspace_and_member(select(Identity, Workspace, Member).where(
        Identity.platform == bindparam("platform"),
        Identity.external_id == bindparam("external_id"),
        Identity.workspace_id == bindparam("workspace_id"),
    ), asking)


@cache
def _latest_membership(asking: bool) -> Entities:
    return _with_workspace_and_member(
        select(Identity, Workspace, Member)
        .where(Identity.platform == bindparam("platform"), Identity.external_id == bindparam("external_id"))
        .order_by(Member.removed_at.is_not(None), Identity.last_seen_at.desc().nulls_last(), Identity.id.desc())
        .limit(1),
        asking,
    )


def _with_workspace_and_member(query: Select, asking: bool) -> Entities:
    query = query.join(Workspace, Workspace.id == Identity.workspace_id).join(Member, Member.id == Identity.member_id)
    return Entities(Asked.joined(query) if asking else query)


async def membership_in(session: AsyncSession, platform: str, external_id: str, workspace_id: int,
                        asked: Asked | None = None) -> Membership | None:
    return await _membership(session, _membership_in(asked is not None),
                             {"platform": platform, "external_id": external_id, "workspace_id": workspace_id}, asked)


async def space_membership(session: AsyncSession, platform: str, space: str, external_id: str,
                           asked: Asked | None = None) -> tuple[Workspace | None, Membership | None]:
    """The workspace a space is bound to and the account's membership of it (None if not a member), in
    one query: what every request from a group, a Slack team or the console starts from."""
    params = {"platform": platform, "external_id": external_id, "space": space, **(asked.params() if asked else {})}
    rows = await _space_membership(asked is not None).run(session, params)
    if not rows:
        return None, None
    row = rows[0]
    workspace, identity, member = asked.took(row) if asked else row
    return workspace, Membership(identity, workspace, member) if identity is not None else None


async def latest_membership(session: AsyncSession, platform: str, external_id: str,
                            asked: Asked | None = None) -> Membership | None:
    """The account's most recently used membership where it still has access (a private chat's
    workspace); with none, the latest one it lost."""
    return await _membership(session, _latest_membership(asked is not None),
                             {"platform": platform, "external_id": external_id}, asked)


async def _membership(session: AsyncSession, query: Entities, params: dict[str, Any],
                      asked: Asked | None) -> Membership | None:
    """One query for the identity, its workspace and its member (and what is `asked` beside them)."""
    rows = await query.run(session, {**params, **(asked.params() if asked else {})})
    if not rows:
        return None
    return Membership(*(asked.took(rows[0]) if asked else rows[0]))


async def add_member(
    session: AsyncSession,
    workspace: Workspace,
    *,
    platform: str,
    external_id: str,
    name: str,
    role: str,
    now: datetime,
) -> tuple[Member, Identity]:
    member = Member(
        workspace_id=workspace.id, name=visible(name)[:200] or external_id, role=role,
        digest_enabled=False, created_at=now, last_seen_at=now, last_platform=platform,
    )
    session.add(member)
    await session.flush()
    identity = await attach_identity(session, member, platform=platform, external_id=external_id, now=now)
    return member, identity


async def attach_identity(
    session: AsyncSession, member: Member, *, platform: str, external_id: str, now: datetime
) -> Identity:
    identity = Identity(
        member_id=member.id, workspace_id=member.workspace_id, platform=platform,
        external_id=external_id, last_seen_at=now,
    )
    session.add(identity)
    await session.flush()
    return identity


async def next_number(session: AsyncSession, workspace_id: int, counter: str, count: int = 1) -> int:
    """Take the next `count` short numbers (`customer` or `reminder`) of a workspace,
    atomically, and return the first of them."""
    taken = (await _take_numbers(counter).run(session, {"workspace_id": workspace_id, "count": count})).rows
    assert taken, f"workspace {workspace_id} vanished"
    return taken[0][0]


@cache
def _take_numbers(counter: str) -> Prepared:
    column = {"customer": Workspace.next_customer_no, "reminder": Workspace.next_reminder_no}[counter]
    count = bindparam("count")
    return Prepared(update(Workspace).where(Workspace.id == bindparam("workspace_id")).values(
        {column: column + count}).returning(column - count))


async def members(session: AsyncSession, workspace_id: int) -> list[Member]:
    return list(await session.scalars(select(Member).where(Member.workspace_id == workspace_id).order_by(Member.id)))

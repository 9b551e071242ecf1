"""Members who leave the team (storage side of `/team remove|restore`, and of leaving on a platform).

- *Removed* by an admin: their customers (deleted ones too) and pending
  reminders go to another member in the same transaction, each customer's move
  audited as an `assign` and the whole as one `remove` entry.
- *Suspended* when they leave the team's Telegram group (`left`) or their Slack
  account is deactivated (`deactivated`): nothing is handed over, the admins are
  told (an outbox `suspended` notice) and may restore or remove them.

Either way the member loses access at once, with every linked account: the
requests of a member with `removed_at` set are refused (handlers.identity),
their pending buttons, half-finished forms and link codes are deleted, the
invites they created are revoked, and nothing is delivered to them
(`without_access`, storage.schedule). A workspace always keeps an active admin.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, schedule
from storage.models import (REMINDER_PENDING, AuditEntry, Conversation, Customer, Identity, Invite, LinkCode, Member,
                            PendingChoice, Reminder, Space)

REMOVED, LEFT, DEACTIVATED = "removed", "left", "deactivated"
#: The outbox kind of the admins' notice that a member was suspended (reminders.notices).
NOTICE = "suspended"


class LastAdmin(Exception):
    """The change would leave the workspace without an active admin."""


@dataclass(frozen=True)
class Handover:
    customers: int
    reminders: int


def has_access() -> ColumnElement[bool]:
    """Members who have not lost access."""
    return Member.removed_at.is_(None)


async def without_access(session: AsyncSession, workspace_id: int) -> set[int]:
    """The ids of the workspace's members who lost access."""
    return set(await session.scalars(select(Member.id).where(Member.workspace_id == workspace_id,
                                                             Member.removed_at.is_not(None))))


async def require_another_admin(session: AsyncSession, member: Member) -> None:
    """Refuse (LastAdmin) when `member` is the workspace's only active admin. The admins are locked
    while counted, so two admins taken away at once cannot both succeed (PostgreSQL)."""
    if member.role != "admin":
        return
    admins = await session.scalars(select(Member.id).where(
        Member.workspace_id == member.workspace_id, Member.role == "admin", has_access()).with_for_update())
    if not set(admins.all()) - {member.id}:
        raise LastAdmin()


async def remove(session: AsyncSession, member: Member, *, to: Member, by: Member, now: datetime) -> Handover:
    """Take `member`'s access away and hand their customers and pending reminders to `to`, audited."""
    await require_another_admin(session, member)
    owned = list(await session.execute(select(Customer.id, Customer.number).where(
        Customer.workspace_id == member.workspace_id, Customer.owner_id == member.id)))
    if owned:
        await session.execute(update(Customer).where(Customer.id.in_([row.id for row in owned]))
                              .values(owner_id=to.id, updated_at=now))
        await session.execute(insert(AuditEntry.__table__), [
            {"workspace_id": member.workspace_id, "member_id": by.id, "customer_id": row.id, "action": "assign",
             "before": {"owner_id": member.id}, "after": {"owner_id": to.id}, "at": now} for row in owned])
    moved = await session.execute(update(Reminder).where(
        Reminder.workspace_id == member.workspace_id, Reminder.member_id == member.id,
        REMINDER_PENDING).values(member_id=to.id))
    handover = Handover(len(owned), moved.rowcount or 0)
    await _cut_access(session, member, REMOVED, now)
    audit.record(session, workspace_id=member.workspace_id, member_id=by.id, action="remove",
                 before={"member_id": member.id, "role": member.role},
                 after={"member_id": member.id, "to": to.id, "customers": handover.customers,
                        "reminders": handover.reminders}, at=now)
    await session.flush()
    return handover


async def restore(session: AsyncSession, member: Member, *, by: Member, now: datetime) -> str | None:
    """Give a member who lost access their access back (audited); how they had lost it (None: they hadn't)."""
    how = member.removed_how
    if member.removed_at is None:
        return None
    member.removed_at = member.removed_how = None
    audit.record(session, workspace_id=member.workspace_id, member_id=by.id, action="restore_member",
                 before={"member_id": member.id, "removed": how}, after={"member_id": member.id}, at=now)
    await session.flush()
    return how


async def suspend_account(
    session: AsyncSession, platform: str, external_id: str, *, how: str, now: datetime, space: str | None = None,
) -> list[Member]:
    """Suspend the members behind a platform account (only in the workspace of `space`, if given) who
    still have access, and queue a notice to each workspace's admins; the members suspended.

    The only active admin of a workspace is not suspended (nobody could restore anyone); that
    member is left as is."""
    query = select(Member).join(Identity, Identity.member_id == Member.id).where(
        Identity.platform == platform, Identity.external_id == external_id, has_access())
    if space is not None:
        query = query.where(Identity.workspace_id.in_(select(Space.workspace_id).where(
            Space.platform == platform, Space.external_id == space)))
    suspended = []
    for member in list(await session.scalars(query)):
        try:
            await require_another_admin(session, member)
        except LastAdmin:
            continue
        await _cut_access(session, member, how, now)
        audit.record(session, workspace_id=member.workspace_id, member_id=None, action="suspend",
                     after={"member_id": member.id, "how": how, "platform": platform}, at=now)
        await _tell_admins(session, member, now)
        suspended.append(member)
    await session.flush()
    return suspended


async def _tell_admins(session: AsyncSession, member: Member, now: datetime) -> None:
    admins = await session.scalars(select(Member.id).where(
        Member.workspace_id == member.workspace_id, Member.role == "admin", has_access(), Member.id != member.id))
    for admin_id in admins:
        await schedule.enqueue(session, key=f"{NOTICE}:{member.id}:{admin_id}:{now.isoformat()}", kind=NOTICE,
                               workspace_id=member.workspace_id, member_id=admin_id,
                               payload={"member": member.id, "since": now.isoformat()}, due_at=now, now=now)


async def _cut_access(session: AsyncSession, member: Member, how: str, now: datetime) -> None:
    """What stops working at once: the member, their buttons, forms, link codes and invites."""
    member.removed_at, member.removed_how = now, how
    for model, column in ((PendingChoice, PendingChoice.member_id), (Conversation, Conversation.member_id),
                          (LinkCode, LinkCode.member_id), (Invite, Invite.created_by)):
        await session.execute(delete(model).where(column == member.id))


async def handovers(session: AsyncSession, workspace_id: int, start: datetime, end: datetime) -> list[AuditEntry]:
    """The `remove` entries of `[start, end)`: whose customers went to whom (the managers' digest)."""
    return list(await session.scalars(select(AuditEntry).where(
        AuditEntry.workspace_id == workspace_id, AuditEntry.action == "remove",
        AuditEntry.at >= start, AuditEntry.at < end).order_by(AuditEntry.at, AuditEntry.id)))

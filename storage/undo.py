"""/undo: take back the member's own most recent change, read from the audit trail.

A change is what one command wrote: `/log … next: friday` is the log and its
reminder, undone together.
What can be taken back: adding a customer (it is deleted, so a manager can
still /restore it), an edit of its fields, a tag change, a log, a deal, a
feedback, a reminder set (cancelled) and a correction of an entry (/entry).
Anything else — an entry's removal (it was confirmed), a merge, a deletion, a
reassignment — is refused by name, and so is a change older than `WINDOW`, a
change someone else has built on since (any later entry of theirs about the
customer), and a change already undone: undo is one step, and an undo is not
undone. Changes that are not about a customer (settings, roles) are not looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Date, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, entries
from storage.access import Scope
from storage.models import REMINDER_PENDING, AuditEntry, Customer, CustomerTag, Reminder, UTCDateTime

#: How long a change can be taken back: long enough to notice a slip, short enough that nobody relies on it yet.
WINDOW = timedelta(minutes=10)
#: The audit actions /undo can revert (`_REVERT` says how).
UNDOABLE = ("add", "edit", "tag", "log", "deal", "feedback", "remind", "log_edit", "deal_edit", "feedback_edit")
UNDO = "undo"
#: Commands whose `next:` clause sets a reminder along with their own entry.
_WITH_NEXT = ("log", "deal")
PENDING, CANCELLED = "pending", "cancelled"


class Refused(Exception):
    """Why nothing was undone: `reason` (nothing, too_old, already, cannot, someone_else, gone) and details."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass
class Undone:
    """What was taken back: the entries (oldest first) and the customer they were about."""

    customer: Customer
    entries: list[AuditEntry] = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        return [entry.action for entry in self.entries]


async def last_change(session: AsyncSession, scope: Scope) -> list[AuditEntry]:
    """The audit entries of the member's most recent change to a customer, oldest first (empty: none).

    That is their latest entry, and when it is the reminder a `next:` clause set, the log or deal
    written just before it by the same command (the entry right before it in the book's trail, at
    the same moment)."""
    mine = (AuditEntry.workspace_id == scope.workspace_id, AuditEntry.member_id == scope.member_id,
            AuditEntry.customer_id.is_not(None))
    latest = await session.scalar(
        select(AuditEntry).where(*mine).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(1))
    if latest is None:
        return []
    if latest.action != "remind":
        return [latest]
    previous = await session.scalar(
        select(AuditEntry).where(AuditEntry.workspace_id == scope.workspace_id, AuditEntry.id < latest.id)
        .order_by(AuditEntry.id.desc()).limit(1))
    if previous is None or previous.action not in _WITH_NEXT:
        return [latest]
    same_command = all(getattr(previous, name) == getattr(latest, name) for name in ("member_id", "customer_id", "at"))
    return [previous, latest] if same_command else [latest]


async def check(session: AsyncSession, scope: Scope, *, now: datetime) -> Undone:
    """The member's most recent change, if it may be undone now; else raise `Refused`."""
    change = await last_change(session, scope)
    if not change:
        raise Refused("nothing")
    last = change[-1]
    if last.action == UNDO:
        raise Refused("already", entry=last)
    if _aware(last.at) < now - WINDOW:
        raise Refused("too_old", entry=last, minutes=int(WINDOW.total_seconds() // 60))
    if any(entry.action not in UNDOABLE for entry in change):
        raise Refused("cannot", entry=next(e for e in change if e.action not in UNDOABLE))
    customer = await session.scalar(select(Customer).where(Customer.id == last.customer_id))
    if customer is None or not scope.can("view", customer) or customer.deleted_at is not None:
        raise Refused("gone")
    someone = await session.scalar(
        select(AuditEntry.member_id).where(
            AuditEntry.workspace_id == scope.workspace_id, AuditEntry.customer_id == customer.id,
            AuditEntry.id > last.id, AuditEntry.member_id != scope.member_id).limit(1))
    if someone is not None:
        raise Refused("someone_else", entry=last, member_id=someone)
    return Undone(customer, change)


async def apply(session: AsyncSession, scope: Scope, undone: Undone, *, now: datetime) -> None:
    """Revert a checked change, newest entry first, and audit that as `undo`.

    May still raise `Refused` (the row or value is no longer what the change left): the caller's
    transaction is then rolled back, so nothing is half undone."""
    change, customer = undone.entries, undone.customer
    for entry in reversed(change):
        await _REVERT[entry.action](session, customer, entry, now)
    audit.record(session, workspace_id=scope.workspace_id, member_id=scope.member_id, action=UNDO,
                 customer_id=customer.id, before=_merged(e.after for e in change),
                 after={"undid": change[0].action, **_merged(e.before for e in change)}, at=now)
    customer.updated_at = now
    await session.flush()


def _merged(parts: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update({k: v for k, v in (part or {}).items() if k != "entry"})
    return merged


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# --- taking back one kind of change -------------------------------------------------------------

async def _revert_add(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    customer.deleted_at = now
    await session.execute(update(Reminder).where(Reminder.customer_id == customer.id, REMINDER_PENDING)
                          .values(status=CANCELLED))


async def _revert_edit(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    before, after = entry.before or {}, entry.after or {}
    if any(audit.plain(getattr(customer, name)) != value for name, value in after.items()):
        raise Refused("someone_else", entry=entry, member_id=None)  # changed since without an audit of it
    for name, value in before.items():
        setattr(customer, name, _column_value(name, value))


async def _revert_tag(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    before = set((entry.before or {}).get("tags", []))
    current = {tag.name: tag for tag in await session.scalars(
        select(CustomerTag).where(CustomerTag.customer_id == customer.id, CustomerTag.auto.is_(False)))}
    for name, tag in current.items():
        if name not in before:
            await session.delete(tag)
    session.add_all(CustomerTag(workspace_id=customer.workspace_id, customer_id=customer.id, name=name, auto=False)
                    for name in sorted(before - set(current)))


async def _revert_entry(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    row_id = (entry.after or {}).get("entry")
    model = entries.MODELS[entry.action]
    row = await session.scalar(select(model).where(model.id == row_id, model.customer_id == customer.id)) \
        if row_id is not None else None
    if row is None:
        raise Refused("gone")
    await session.delete(row)


async def _revert_entry_edit(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    before, after = entry.before or {}, entry.after or {}
    model = entries.MODELS[entry.action.removesuffix("_edit")]
    row = await session.scalar(select(model).where(model.id == after.get("entry"), model.customer_id == customer.id))
    if row is None:
        raise Refused("gone")
    if any(getattr(row, name) != value for name, value in after.items() if name != "entry"):
        raise Refused("someone_else", entry=entry, member_id=None)
    for name, value in before.items():
        if name != "entry":
            setattr(row, name, value)


async def _revert_remind(session: AsyncSession, customer: Customer, entry: AuditEntry, now: datetime) -> None:
    await session.execute(update(Reminder).where(
        Reminder.workspace_id == customer.workspace_id, Reminder.number == (entry.after or {}).get("reminder"),
        REMINDER_PENDING).values(status=CANCELLED))


_REVERT = {"add": _revert_add, "edit": _revert_edit, "tag": _revert_tag, "log": _revert_entry,
           "deal": _revert_entry, "feedback": _revert_entry, "remind": _revert_remind,
           **dict.fromkeys(("log_edit", "deal_edit", "feedback_edit"), _revert_entry_edit)}


def _column_value(name: str, value: Any) -> Any:
    """An audited value (dates as ISO text) as the customer column holds it."""
    column_type = Customer.__table__.c[name].type
    if value is None or not isinstance(value, str):
        return value
    if isinstance(column_type, UTCDateTime):
        return datetime.fromisoformat(value)
    if isinstance(column_type, Date):
        return date.fromisoformat(value)
    return value

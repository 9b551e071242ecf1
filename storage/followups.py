"""Revisit reminders and silent customers: the rules and queries behind /remind, /reminders,
/done, /snooze and /silent, shared with the scheduler that delivers reminders and runs the
daily sweep.

Silence follows the `silent` auto tag of storage.scoring: a customer is silent once the
whole days since its last contact (or since it was added, if never contacted) exceed its
cadence (its own, else the workspace default for its tier). A silent customer is left out
while snoozed or nudged: for one cadence after `silent_nudged_at` (set by the Snooze
button here, and by the sweep when it nudges the owner). Customers marked lost are never
silent.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Interval, Select, and_, func, literal_column, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage import audit, customers, scoring, standardise, workspaces
from storage.access import Scope
from storage.models import REMINDER_PENDING, Customer, Member, Reminder, UTCDateTime, Workspace
from storage.rows import insert_row

PENDING, DONE = "pending", "done"


async def create_reminder(
    session: AsyncSession,
    workspace: Workspace,
    *,
    member_id: int,
    created_by: int | None,
    customer_id: int | None,
    due_at: datetime,
    explicit_time: bool,
    note: str,
    now: datetime,
) -> Reminder:
    """A pending reminder for `member_id`, numbered within the workspace, audited."""
    note = standardise.visible(note)
    reminder = Reminder(
        workspace_id=workspace.id,
        number=await workspaces.next_number(session, workspace.id, "reminder"),
        customer_id=customer_id, member_id=member_id, created_by=created_by,
        due_at=due_at, explicit_time=explicit_time, note=note[:1000], status="pending",
        created_at=now, attempts=0,
    )
    await insert_row(session, reminder)
    audit.record(session, workspace_id=workspace.id, member_id=created_by, action="remind",
                 customer_id=customer_id, after={"reminder": reminder.number, "due_at": due_at, "note": note[:200]}, at=now)
    return reminder


# --- one reminder -----------------------------------------------------------------------

async def reminder_by_number(session: AsyncSession, workspace_id: int, number: int) -> Reminder | None:
    """The workspace's reminder `#number` (numbers repeat across workspaces, so always both)."""
    return await session.scalar(
        select(Reminder).where(Reminder.workspace_id == workspace_id, Reminder.number == number)
    )


async def reminder_by_id(session: AsyncSession, workspace_id: int, reminder_id: int) -> Reminder | None:
    """The reminder a button names, only if it belongs to this workspace."""
    return await session.scalar(
        select(Reminder).where(Reminder.workspace_id == workspace_id, Reminder.id == reminder_id)
    )


def may_close(scope: Scope, reminder: Reminder) -> bool:
    """Its recipient closes or moves a reminder; so may a manager, for any in the workspace."""
    return reminder.workspace_id == scope.workspace_id and (
        reminder.member_id == scope.member_id or scope.at_least("manager")
    )


def complete_reminder(session: AsyncSession, reminder: Reminder, *, member_id: int, now: datetime) -> None:
    """Mark a pending reminder done (audited)."""
    reminder.status, reminder.done_at = DONE, now
    audit.record(session, workspace_id=reminder.workspace_id, member_id=member_id, action="done",
                 customer_id=reminder.customer_id, before={"reminder": reminder.number, "status": PENDING},
                 after={"reminder": reminder.number, "status": DONE}, at=now)


def reschedule_reminder(
    session: AsyncSession, reminder: Reminder, *, due_at: datetime, explicit_time: bool, member_id: int,
    now: datetime,
) -> None:
    """Move a pending reminder to `due_at` (audited) and make it deliverable again."""
    before = reminder.due_at
    reminder.due_at, reminder.explicit_time = due_at, explicit_time
    reminder.sent_at = reminder.claimed_until = None
    reminder.attempts = 0
    audit.record(session, workspace_id=reminder.workspace_id, member_id=member_id, action="snooze",
                 customer_id=reminder.customer_id, before={"reminder": reminder.number, "due_at": before},
                 after={"reminder": reminder.number, "due_at": due_at}, at=now)


# --- lists of reminders ----------------------------------------------------------------------

@dataclass(frozen=True)
class PendingReminder:
    reminder: Reminder
    customer: Customer | None  # None: a reminder about no customer in particular
    member_name: str


def _pending(workspace_id: int, member_id: int | None) -> Select:
    """Pending reminders of the workspace (or of one member) about a live customer or none."""
    query = (
        select(Reminder, Customer, Member.name)
        .outerjoin(Customer, Customer.id == Reminder.customer_id)
        .join(Member, Member.id == Reminder.member_id)
        .where(Reminder.workspace_id == workspace_id, REMINDER_PENDING,
               or_(Reminder.customer_id.is_(None), Customer.deleted_at.is_(None)))
    )
    return query if member_id is None else query.where(Reminder.member_id == member_id)


async def pending_reminders(
    session: AsyncSession, workspace_id: int, member_id: int | None, *, limit: int, offset: int = 0
) -> list[PendingReminder]:
    """Pending reminders by due time, so the overdue ones come first, oldest first."""
    rows = await session.execute(
        _pending(workspace_id, member_id).order_by(Reminder.due_at, Reminder.number).limit(limit).offset(offset)
    )
    return [PendingReminder(*row) for row in rows]


async def count_pending_reminders(session: AsyncSession, workspace_id: int, member_id: int | None) -> int:
    counted = _pending(workspace_id, member_id).with_only_columns(func.count(Reminder.id))
    return await session.scalar(counted) or 0


# --- silent customers ------------------------------------------------------------------------

@dataclass(frozen=True)
class SilentCustomer:
    customer: Customer
    owner_name: str
    silent_days: int  # whole days since the last contact, or since added
    cadence_days: int


def silent_since() -> ColumnElement[datetime]:
    """When a customer's silence began: the last contact, or when it was added if never contacted.

    The expression `ix_customers_sweep_tier` indexes, so ranges on it are index ranges.
    """
    return func.coalesce(Customer.last_contact_at, Customer.created_at)


def _due(workspace: Workspace, batch: scoring._Batch) -> ColumnElement[bool]:
    """Past the cadence and not snoozed or nudged within the last cadence.

    One branch per tier for the customers on its default cadence (silence began
    by a constant cutoff: a range of `ix_customers_sweep_tier`), and one for the
    customers with a cadence of their own. Each branch reads the customers it
    finds (and the snoozed or nudged among them), not the whole workspace.
    """
    now = batch.now
    branches = [
        and_(Customer.cadence_days.is_(None), Customer.tier.is_(None) if tier is None else Customer.tier == tier,
             silent_since() <= now - timedelta(days=days + 1),
             or_(Customer.silent_nudged_at.is_(None), Customer.silent_nudged_at <= now - timedelta(days=days)))
        for tier, days in (("A", workspace.cadence_a), ("B", workspace.cadence_b), ("C", workspace.cadence_c),
                           (None, workspace.cadence_none))
    ]
    own = Customer.cadence_days
    own_not_nudged = or_(Customer.silent_nudged_at.is_(None), batch.days_since(Customer.silent_nudged_at) >= own)
    branches.append(and_(own.is_not(None), _past_own_cadence(batch), own_not_nudged))
    return and_(Customer.lost_at.is_(None), or_(*branches))


def _past_own_cadence(batch: scoring._Batch) -> ColumnElement[bool]:
    """Whole days of silence over the customer's own cadence.

    On PostgreSQL written as "silence began + cadence days ≤ now − 1 day" (more
    than `cadence` whole days ⟺ at least `cadence` + 1 full days), the
    expression `ix_customers_sweep_own_cadence` indexes, so it is a range.
    """
    if batch.dialect != "postgresql":
        return batch.days_since(silent_since()) > Customer.cadence_days
    passed_at = silent_since() + Customer.cadence_days * literal_column("interval '1 day'", Interval())
    return type_coerce(passed_at, UTCDateTime()) <= batch.now - timedelta(days=1)


async def _silent_query(
    session: AsyncSession, scope_or_workspace: Scope | Workspace, member_id: int | None, now: datetime
) -> tuple[Select, scoring._Batch]:
    """Live customers past their cadence (the scope's visible ones, or the whole workspace's)."""
    if isinstance(scope_or_workspace, Scope):
        workspace = await session.get(Workspace, scope_or_workspace.workspace_id)
        assert workspace is not None, "the scope's workspace vanished"
        query = scope_or_workspace.customers()
    else:
        workspace = scope_or_workspace
        query = select(Customer).where(Customer.workspace_id == workspace.id, Customer.deleted_at.is_(None))
    batch = scoring._Batch.of(session, workspace, now, None)
    query = query.where(_due(workspace, batch))
    if member_id is not None:
        query = query.where(Customer.owner_id == member_id)
    return query, batch


async def silent_customers(
    session: AsyncSession,
    scope_or_workspace: Scope | Workspace,
    member_id: int | None,
    now: datetime,
    limit: int,
    offset: int = 0,
) -> list[SilentCustomer]:
    """Silent customers (of `member_id`, or everyone's), longest silent first.

    The filter is index ranges on when silence began (see `_due`), so the
    daily sweep can run it on a big table; only the returned page is loaded.
    """
    query, batch = await _silent_query(session, scope_or_workspace, member_id, now)
    rows = await session.execute(
        query.add_columns(Member.name, batch.days_since(silent_since()), batch.cadence())
        .join(Member, Member.id == Customer.owner_id)
        .order_by(silent_since(), Customer.number)
        .limit(limit).offset(offset)
    )
    return [SilentCustomer(customer, owner, int(days), int(cadence)) for customer, owner, days, cadence in rows]


async def count_silent_customers(
    session: AsyncSession, scope_or_workspace: Scope | Workspace, member_id: int | None, now: datetime
) -> int:
    query, _ = await _silent_query(session, scope_or_workspace, member_id, now)
    return await session.scalar(query.with_only_columns(func.count(Customer.id))) or 0


def snooze_silence(session: AsyncSession, customer: Customer, *, member_id: int, now: datetime) -> None:
    """Not silent for now: left out of /silent and the sweep for one cadence (audited)."""
    customers.apply(session, customer, {"silent_nudged_at": now}, member_id=member_id, now=now,
                    action="silent_snooze")


def mark_lost(session: AsyncSession, customer: Customer, *, member_id: int, now: datetime) -> None:
    """Lost by hand: the stage becomes churned at the next refresh (audited)."""
    customers.apply(session, customer, {"lost_at": now}, member_id=member_id, now=now, action="lost")

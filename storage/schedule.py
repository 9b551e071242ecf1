"""When the bot speaks first: next-run times, quiet hours, and claims on what is due (SPEC §4).

Everything due lives in the database: pending reminders, `outbox` rows (digests,
silent-customer lists) and the next-run columns of workspaces and members. A
scheduler process *claims* a batch of rows by writing `claimed_until = now +
CLAIM_LEASE` in a short transaction; just before sending one it *starts* the send
(`start_send`: one more attempt, the claim turned into the longer send `LEASE`),
sends outside any transaction, and records the outcome at once in another, fenced
by the lease it holds. On PostgreSQL the claim reads with `FOR UPDATE SKIP
LOCKED`, so several processes never claim the same row; on SQLite one process
owns the file and claims under `BEGIN IMMEDIATE` (storage.db).

`attempts` counts the sends started and `last_error` holds the last one's
error. A started send reads `STARTED` there until its message leaves the
process for the platform (`record_on_wire`, which clears it; adapters signal
that moment through reminders.delivery.leaving). So after a crash a row still
to send with attempts and no error went out and recorded nothing
(`interrupted`: reminders.claims counts it as delivered, noting `CUT_OFF`), while
one still `STARTED` never left and is simply sent again.

`claimed_until` also serves as a hold: a row held for quiet hours or a retry
back-off carries the moment it may be claimed again.

Local times (digest 08:30, sweep 09:00, nightly 03:00, quiet hours 21:00–08:00)
are wall-clock times in a zone, turned into UTC per day with zoneinfo, so they
stay put across DST: a time the clocks skip runs just after the gap, a time that
happens twice runs at its first occurrence only.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.db import commit_without_waiting_for_the_disk
from storage.models import REMINDER_PENDING, Identity, Member, OutboxMessage, Reminder, Workspace

UTC = timezone.utc
#: How long a started send holds its row: more than the longest send (inline retries ≤ 1 minute,
#: plus timeouts); a send whose process died is tried again after it (SQLite: at restart).
LEASE = timedelta(minutes=5)
#: How long a batch claim holds the rows not started yet, which a killed process leaves behind.
CLAIM_LEASE = timedelta(seconds=30)
#: `last_error` of a delivery whose send was cut off by a crash and counted as delivered.
CUT_OFF = "cut off mid-send by a crash; counted as delivered"
#: `last_error` of a send started whose message has not left the process yet.
STARTED = "send started, not on the wire yet"
QUIET_START, QUIET_END = time(21, 0), time(8, 0)
NIGHTLY = time(3, 0)
#: How long a nightly recompute may take before another process (or a restart) takes it over.
RECOMPUTE_LEASE = timedelta(minutes=30)
MANAGER_ROLES = ("manager", "admin")
PENDING = "pending"
#: Finished outbox rows are kept this long (their keys stop a second digest the same day).
OUTBOX_KEPT = timedelta(days=30)


# --- wall-clock times ----------------------------------------------------------------------

def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    try:
        return ZoneInfo(name or fallback)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(fallback)


def local_moment(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """`day` at `clock` in `tz`, as UTC (fold=0: the first of a repeated time; a skipped one
    lands just after the gap)."""
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def parse_clock(hhmm: str) -> time:
    hours, _, minutes = hhmm.partition(":")
    return time(int(hours), int(minutes or 0))


def next_local(hhmm: str, tz: ZoneInfo, after: datetime, *, inclusive: bool = False) -> datetime:
    """The first moment after `after` (or at it, if `inclusive`) when the clock in `tz` shows `hhmm`."""
    clock = parse_clock(hhmm)
    day = after.astimezone(tz).date()
    while (moment := local_moment(day, clock, tz)) < after or (moment == after and not inclusive):
        day += timedelta(days=1)
    return moment


def last_local(hhmm: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest moment at or before `now` when the clock in `tz` showed `hhmm`."""
    clock = parse_clock(hhmm)
    day = now.astimezone(tz).date()
    while (moment := local_moment(day, clock, tz)) > now:
        day -= timedelta(days=1)
    return moment


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def quiet_until(moment: datetime, tz: ZoneInfo) -> datetime | None:
    """If `moment` falls in the quiet hours (21:00–08:00 local), the 08:00 that ends them."""
    local = moment.astimezone(tz)
    if local.time() >= QUIET_START:
        return local_moment(local.date() + timedelta(days=1), QUIET_END, tz)
    if local.time() < QUIET_END:
        return local_moment(local.date(), QUIET_END, tz)
    return None


def release_time(due_at: datetime, tz: ZoneInfo, *, explicit: bool) -> datetime:
    """When something due at `due_at` goes out on time: then, or at 08:00 if that is in quiet
    hours and the time was not the user's explicit choice."""
    return due_at if explicit else (quiet_until(due_at, tz) or due_at)


# --- who receives, where, in which zone ----------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    """A member as the scheduler reaches them: their accounts, best first."""

    member: Member
    workspace: Workspace
    identities: list[Identity]  # reachable (a direct chat known, not blocked); last used platform first
    preferred: Identity | None  # the account whose language and time zone apply, reachable or not

    @property
    def timezone(self) -> str:
        return (self.member.timezone or (self.preferred.timezone if self.preferred else None)
                or self.workspace.timezone)

    @property
    def language(self) -> str | None:
        return self.member.locale or (self.preferred.language if self.preferred else None)


async def recipient(session: AsyncSession, member_id: int) -> Recipient | None:
    member = await session.get(Member, member_id)
    if member is None:
        return None
    workspace = await session.get(Workspace, member.workspace_id)
    assert workspace is not None, "a member without a workspace"
    accounts = list(await session.scalars(
        select(Identity).where(Identity.member_id == member.id)
        .order_by(Identity.last_seen_at.desc().nulls_last(), Identity.id.desc())
    ))
    accounts.sort(key=lambda identity: identity.platform != member.last_platform)  # stable: recency within
    reachable = [i for i in accounts if i.dm_chat_id and i.blocked_at is None]
    return Recipient(member, workspace, reachable, accounts[0] if accounts else None)


async def member_zone(session: AsyncSession, member: Member, workspace: Workspace) -> ZoneInfo:
    found = await recipient(session, member.id)
    return zone(found.timezone if found else workspace.timezone, workspace.timezone)


# --- next-run times ------------------------------------------------------------------------

NIGHTLY_HHMM = NIGHTLY.strftime("%H:%M")


def _next_sweep(workspace: Workspace, after: datetime, *, inclusive: bool = False) -> datetime:
    return next_local(workspace.sweep_time, zone(workspace.timezone), after, inclusive=inclusive)


def _next_recompute(workspace: Workspace, after: datetime, *, inclusive: bool = False) -> datetime:
    return next_local(NIGHTLY_HHMM, zone(workspace.timezone), after, inclusive=inclusive)


def _digest_time(member: Member, workspace: Workspace) -> str:
    return member.digest_time or workspace.digest_time


async def reschedule_workspace(session: AsyncSession, workspace: Workspace, now: datetime) -> None:
    """Recompute the workspace's sweep, nightly and members' digest times from its settings.

    Call after `timezone`, `sweep_time` or `digest_time` change. A run moved to later
    today may run again today; the once-a-day keys of storage.outbox keep it to one message.
    """
    workspace.next_sweep_at = _next_sweep(workspace, now, inclusive=True)
    workspace.next_recompute_at = _next_recompute(workspace, now, inclusive=True)
    for member in await session.scalars(select(Member).where(Member.workspace_id == workspace.id)):
        await reschedule_member(session, member, now, workspace=workspace)


async def reschedule_member(
    session: AsyncSession, member: Member, now: datetime, *, workspace: Workspace | None = None
) -> None:
    """Recompute when the member's digest is next due: after `/digest on|off [HH:MM]` or a
    change of their time zone."""
    if not member.digest_enabled:
        member.next_digest_at = None
        return
    workspace = workspace or await session.get(Workspace, member.workspace_id)
    assert workspace is not None
    member.next_digest_at = next_local(_digest_time(member, workspace), await member_zone(session, member, workspace),
                                       now, inclusive=True)


async def fill_next_runs(session: AsyncSession, now: datetime) -> None:
    """Give a next-run time to workspaces and subscribed members that have none yet (new ones,
    or ones a handler reset to NULL), and drop it from members who unsubscribed."""
    for workspace in await session.scalars(select(Workspace).where(
            or_(Workspace.next_sweep_at.is_(None), Workspace.next_recompute_at.is_(None)))):
        workspace.next_sweep_at = workspace.next_sweep_at or _next_sweep(workspace, now, inclusive=True)
        workspace.next_recompute_at = workspace.next_recompute_at or _next_recompute(workspace, now, inclusive=True)
    for member in await session.scalars(select(Member).where(
            Member.digest_enabled.is_(True), Member.next_digest_at.is_(None))):
        await reschedule_member(session, member, now)
    await session.execute(update(Member).where(Member.digest_enabled.is_(False), Member.next_digest_at.is_not(None))
                          .values(next_digest_at=None))


def _skip_locked(query: Select) -> Select:
    """`FOR UPDATE SKIP LOCKED` (PostgreSQL); SQLite renders nothing and relies on BEGIN IMMEDIATE."""
    return query.with_for_update(skip_locked=True)


async def claim_sweep(session: AsyncSession, now: datetime) -> tuple[Workspace, datetime] | None:
    """A workspace whose sweep is due, locked for this transaction, and the sweep time it is for
    (after downtime, the latest one missed: one sweep, not one per missed day). The caller
    sweeps and calls `advance_sweep` in the same transaction, so the sweep happens once."""
    workspace = await session.scalar(_skip_locked(
        select(Workspace).where(Workspace.next_sweep_at <= now).order_by(Workspace.next_sweep_at).limit(1)))
    if workspace is None:
        return None
    assert workspace.next_sweep_at is not None
    return workspace, max(workspace.next_sweep_at, last_local(workspace.sweep_time, zone(workspace.timezone), now))


def advance_sweep(workspace: Workspace, now: datetime) -> None:
    workspace.next_sweep_at = _next_sweep(workspace, now)


async def claim_recompute(session: AsyncSession, now: datetime) -> Workspace | None:
    """A workspace whose nightly recompute is due, leased (`RECOMPUTE_LEASE`) so that one
    process runs it; `finish_recompute` sets the next night. Commit before the long work."""
    workspace = await session.scalar(_skip_locked(
        select(Workspace).where(Workspace.next_recompute_at <= now).order_by(Workspace.next_recompute_at).limit(1)))
    if workspace is not None:
        workspace.next_recompute_at = now + RECOMPUTE_LEASE
    return workspace


def finish_recompute(workspace: Workspace, now: datetime) -> None:
    workspace.next_recompute_at = _next_recompute(workspace, now)


async def claim_digests(session: AsyncSession, now: datetime, limit: int) -> list[Member]:
    """Subscribed members whose digest is due, locked for this transaction (not those who lost access)."""
    return list(await session.scalars(_skip_locked(
        select(Member).where(Member.digest_enabled.is_(True), Member.next_digest_at <= now, Member.removed_at.is_(None))
        .order_by(Member.next_digest_at, Member.id).limit(limit))))


@dataclass(frozen=True)
class DigestDue:
    due_at: datetime  # after downtime, the latest digest time missed: one digest, not one per day
    tz: ZoneInfo


async def digest_due(session: AsyncSession, member: Member, workspace: Workspace, now: datetime) -> DigestDue:
    """Which digest a claimed member is due (call before `advance_digest`)."""
    tz = await member_zone(session, member, workspace)
    assert member.next_digest_at is not None
    return DigestDue(max(member.next_digest_at, last_local(_digest_time(member, workspace), tz, now)), tz)


def advance_digest(member: Member, workspace: Workspace, due: DigestDue, now: datetime) -> None:
    member.next_digest_at = next_local(_digest_time(member, workspace), due.tz, now)


# --- the outbox --------------------------------------------------------------------------------

async def enqueue(
    session: AsyncSession, *, key: str, kind: str, workspace_id: int, member_id: int,
    payload: dict[str, Any], due_at: datetime, now: datetime,
) -> int | None:
    """Add an outbox row unless one with `key` exists; its id, or None if it already existed."""
    dialect = session.get_bind().dialect.name
    insert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(OutboxMessage)
    return await session.scalar(
        insert.values(key=key, kind=kind, workspace_id=workspace_id, member_id=member_id, payload=payload,
                      due_at=due_at, status=PENDING, attempts=0, parts_sent=0, created_at=now)
        .on_conflict_do_nothing(index_elements=["key"]).returning(OutboxMessage.id)
    )


async def purge_outbox(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(OutboxMessage).where(OutboxMessage.status != PENDING,
                                                      OutboxMessage.created_at < now - OUTBOX_KEPT))


# --- claims on deliveries ------------------------------------------------------------------------

Deliverable = type[Reminder] | type[OutboxMessage]


def _free(model: Deliverable, now: datetime) -> ColumnElement[bool]:
    return or_(model.claimed_until.is_(None), model.claimed_until <= now)


def _undelivered(model: Deliverable) -> ColumnElement[bool]:
    """Still to send (a delivered reminder stays `pending` until done, with `sent_at` set)."""
    if model is Reminder:
        return and_(REMINDER_PENDING, Reminder.sent_at.is_(None))
    return OutboxMessage.status == PENDING


def _due(model: Deliverable, now: datetime) -> ColumnElement[bool]:
    """Due, and for a member who has access (storage.offboarding): what a removed or suspended member
    would get waits, and goes out if they are restored."""
    without_access = select(Member.id).where(Member.removed_at.is_not(None))
    return and_(_undelivered(model), model.due_at <= now, model.member_id.not_in(without_access))


@dataclass(frozen=True)
class Claim:
    """Rows this process may send until `until` (also the fence when recording the outcome)."""

    ids: list[int]
    until: datetime


async def claim(session: AsyncSession, model: Deliverable, now: datetime, *, limit: int,
                lease: timedelta = CLAIM_LEASE) -> Claim:
    """Lease up to `limit` due rows, oldest first, that no other process holds; each send is
    started with `start_send` before the claim runs out."""
    ids = list(await session.scalars(_skip_locked(
        select(model.id).where(_due(model, now), _free(model, now)).order_by(model.due_at, model.id).limit(limit))))
    until = now + lease
    if ids:
        await session.execute(update(model).where(model.id.in_(ids)).values(claimed_until=until))
    return Claim(ids, until)


async def count_waiting(session: AsyncSession, now: datetime) -> int:
    """Reminders and outbox rows past due that no process is sending and nothing holds back (quiet
    hours, a retry's back-off): what a healthy scheduler keeps near zero (the metrics' gauge)."""
    total = 0
    for model in (Reminder, OutboxMessage):
        total += await session.scalar(select(func.count()).select_from(model).where(_due(model, now), _free(model, now)))
    return total


async def release_claims(session: AsyncSession) -> int:
    """Drop every lease and hold on rows still to send (SQLite, at start: no other process can
    hold them). Holds are simply worked out again."""
    released = 0
    for model in (Reminder, OutboxMessage):
        result = await session.execute(
            update(model).where(_undelivered(model), model.claimed_until.is_not(None))
            .values(claimed_until=None))
        released += result.rowcount or 0
    return released


def _fenced(model: Deliverable, row_id: int, claim_until: datetime) -> ColumnElement[bool]:
    """The row, only while this claim still holds it (a snooze or a newer claim clears it)."""
    return and_(model.id == row_id, model.claimed_until == claim_until)


def _to_send(row: Reminder | OutboxMessage) -> bool:
    return row.sent_at is None if isinstance(row, Reminder) else row.status == PENDING


def interrupted(row: Reminder | OutboxMessage) -> bool:
    """A row still to send whose message left for the platform and recorded nothing after: its
    process died mid-send, and the platform has the message unless the network lost it."""
    return _to_send(row) and row.attempts > 0 and row.last_error is None


def stopped_before_the_wire(row: Reminder | OutboxMessage) -> bool:
    """A row whose last send started but whose process died before the message left it."""
    return _to_send(row) and row.attempts > 0 and row.last_error == STARTED


async def start_send(session: AsyncSession, model: Deliverable, row_id: int, claim_until: datetime,
                     now: datetime) -> datetime | None:
    """Count one more attempt and hold the row for the send (`LEASE`); the new lease, which fences
    the outcome, or None if the claim was lost meanwhile."""
    lease = now + LEASE
    result = await session.execute(update(model).where(_fenced(model, row_id, claim_until)).values(
        claimed_until=lease, attempts=model.attempts + 1, last_error=STARTED))
    return lease if result.rowcount else None


async def record_on_wire(session: AsyncSession, model: Deliverable, row_id: int, lease: datetime, *,
                         on_wire: bool = True) -> None:
    """The message is leaving for the platform (or, `on_wire=False`, that attempt failed and the
    next one has not left yet): what a crash from now on should make of the send. The request
    waits for this commit (see `commit_without_waiting_for_the_disk`)."""
    await commit_without_waiting_for_the_disk(session)
    await session.execute(update(model).where(_fenced(model, row_id, lease))
                          .values(last_error=None if on_wire else STARTED))


async def record_sent(session: AsyncSession, model: Deliverable, row_id: int, claim_until: datetime,
                      now: datetime, *, caveat: str | None = None) -> bool:
    """Delivered (`caveat`, e.g. `CUT_OFF`, kept in `last_error`); False if the claim was lost."""
    values: dict[str, Any] = {"sent_at": now, "claimed_until": None, "last_error": caveat}
    if model is OutboxMessage:
        values["status"] = "sent"
    result = await session.execute(update(model).where(_fenced(model, row_id, claim_until)).values(values))
    return bool(result.rowcount)


async def record_part(session: AsyncSession, row_id: int, claim_until: datetime, parts_sent: int) -> None:
    """An outbox message of several replies: how many are out, so a retry sends only the rest;
    the next part has not left yet."""
    await session.execute(update(OutboxMessage).where(_fenced(OutboxMessage, row_id, claim_until))
                          .values(parts_sent=parts_sent, last_error=STARTED))


async def record_hold(session: AsyncSession, model: Deliverable, row_id: int, claim_until: datetime,
                      until: datetime, *, error: str | None = None) -> None:
    """Not now: claimable again at `until` (quiet hours; a retry after `error`)."""
    values: dict[str, Any] = {"claimed_until": until}
    if error is not None:
        values["last_error"] = error[:500]
    await session.execute(update(model).where(_fenced(model, row_id, claim_until)).values(values))


async def record_given_up(session: AsyncSession, model: Deliverable, row_id: int, claim_until: datetime,
                          now: datetime, *, status: str, error: str) -> None:
    """Never to be sent: blocked, failed for good, or nothing left to say (`status`, for the outbox)."""
    values: dict[str, Any] = {"claimed_until": None, "last_error": error[:500]}
    if model is OutboxMessage:
        values["status"] = status
    else:
        values["sent_at"] = now  # delivery is over; the reminder itself stays pending in /reminders
    await session.execute(update(model).where(_fenced(model, row_id, claim_until)).values(values))


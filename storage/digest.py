"""The numbers of the managers' digest (SPEC §4), as SQL aggregates over one workspace.

Every figure is a COUNT/SUM/AVG with GROUP BY, computed by the database; only
aggregates and a few LIMITed lists come back, so a workspace of 100,000
customers costs the same memory as one of ten. Only live customers count
(deleted ones are gone from every figure). Periods are half-open `[start, end)`
in aware UTC; the caller turns "yesterday in Shanghai" into those bounds.

Which moment places a record in a period: interactions and deals by when they
happened (`occurred_at`, so a back-dated visit counts on its day), customers
and feedback by when they were recorded (`created_at`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage import offboarding, scoring
from storage.models import (REMINDER_PENDING, Customer, CustomerTag, Feedback, Identity, Interaction, Member,
                            Purchase, Reminder, UTCDateTime, Workspace)

#: How many customers the digest names per list (overdue, newly silent, at risk).
TOP = 10


@dataclass(frozen=True)
class RepCount:
    member_id: int
    name: str
    count: int


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    count: int
    total_minor: int


@dataclass(frozen=True)
class OverdueFollowup:
    number: int
    due_at: datetime
    rep: str
    customer_number: int | None  # None: a reminder about no customer in particular
    customer_name: str | None
    customer_company: str | None


@dataclass(frozen=True)
class CustomerLine:
    number: int
    name: str
    company: str | None
    owner: str
    tier: str | None
    #: Last contact, or when the customer was added if never contacted.
    silent_since: datetime
    ltv_minor: int | None


@dataclass(frozen=True)
class Handover:
    """A member removed in the period (`/team remove`): whose customers went to whom."""

    old: str
    new: str
    customers: int


@dataclass(frozen=True)
class DigestNumbers:
    start: datetime
    end: datetime
    currency: str
    interactions: int
    interactions_by_rep: list[RepCount]  # members who logged any, most first
    reps_without_interactions: int  # members with the rep role who logged none
    new_customers: int
    new_customers_by_rep: list[RepCount]  # by owner
    deals: int  # in every currency
    deals_in_currency: CurrencyTotal  # the workspace currency
    deals_other: list[CurrencyTotal]  # other currencies, counted apart
    feedback_average: float | None
    feedback_count: int
    overdue: int
    overdue_by_rep: list[RepCount]
    overdue_oldest: list[OverdueFollowup]
    newly_silent: int
    newly_silent_top: list[CustomerLine]  # tier A first, then longest silent
    at_risk: int
    at_risk_top: list[CustomerLine]  # tier A first, then highest lifetime value
    incomplete: int
    incomplete_by_rep: list[RepCount]  # by owner
    blocked_members: list[str]  # whose platform account blocked the bot
    handovers: tuple[Handover, ...] = ()  # members removed in the period, their customers handed over


@dataclass(frozen=True)
class WeekRevenue:
    week_start: date  # the local Monday
    total_minor: int


@dataclass(frozen=True)
class WeeklySeries:
    currency: str
    activity_by_rep: list[RepCount]  # interactions in the 7 days before `end`
    revenue_by_week: list[WeekRevenue]  # oldest first, in the workspace currency


async def digest_numbers(
    session: AsyncSession, workspace: Workspace, *, start: datetime, end: datetime, now: datetime
) -> DigestNumbers:
    """Everything the digest reports for `[start, end)`; overdue means due before `now`.

    The customers table is the big one: it is read in two passes, one for
    every per-owner count and one for the two named lists.
    """
    ws = workspace.id
    interactions, by_rep = await _per_member(session, Interaction.member_id, _interactions(ws, start, end))
    book = _BookConditions.of(session.get_bind().dialect.name, workspace, start, end)
    counts = await _customer_counts(session, book)
    deals = await _deals(session, workspace, start, end)
    in_currency = next((d for d in deals if d.currency == workspace.currency),
                       CurrencyTotal(workspace.currency, 0, 0))
    average, rated = (await session.execute(
        select(func.avg(Feedback.score), func.count())
        .join(Customer, Customer.id == Feedback.customer_id)
        .where(Feedback.workspace_id == ws, _live(), _within(Feedback.created_at, start, end))
    )).one()
    overdue, overdue_by_rep = await _per_member(session, Reminder.member_id, _overdue(ws, now))
    newly_silent_top, at_risk_top = await _named_customers(session, book)
    return DigestNumbers(
        start=start, end=end, currency=workspace.currency,
        interactions=interactions, interactions_by_rep=by_rep,
        reps_without_interactions=await _reps_other_than(session, ws, [rep.member_id for rep in by_rep]),
        new_customers=counts["new"][0], new_customers_by_rep=counts["new"][1],
        deals=sum(d.count for d in deals), deals_in_currency=in_currency,
        deals_other=[d for d in deals if d.currency != workspace.currency],
        feedback_average=None if average is None else float(average), feedback_count=rated,
        overdue=overdue, overdue_by_rep=overdue_by_rep, overdue_oldest=await _oldest_overdue(session, ws, now),
        newly_silent=counts["newly_silent"][0], newly_silent_top=newly_silent_top,
        at_risk=counts["at_risk"][0], at_risk_top=at_risk_top,
        incomplete=counts["incomplete"][0], incomplete_by_rep=counts["incomplete"][1],
        blocked_members=await _blocked_members(session, ws),
        handovers=await _handovers(session, ws, start, end),
    )


async def weekly_series(
    session: AsyncSession, workspace: Workspace, *, end: datetime, tz: ZoneInfo, weeks: int = 8
) -> WeeklySeries:
    """The weekly chart's data: activity per rep in the 7 local days before `end`,
    and revenue per local ISO week for the last `weeks` weeks (`weekly_revenue`)."""
    week_start = midnight((end - timedelta(microseconds=1)).astimezone(tz).date() - timedelta(days=6), tz)
    _, activity = await _per_member(session, Interaction.member_id, _interactions(workspace.id, week_start, end))
    revenue = await weekly_revenue(session, workspace, end=end, tz=tz, weeks=weeks)
    return WeeklySeries(workspace.currency, activity, revenue)


async def weekly_revenue(
    session: AsyncSession, workspace: Workspace, *, end: datetime, tz: ZoneInfo, weeks: int = 8
) -> list[WeekRevenue]:
    """Revenue in the workspace currency per local ISO week (Monday to Sunday), oldest first.

    The last week is the one holding the day before `end`, cut at `end`; weeks
    are bucketed in one query with a SUM(CASE …) per week, so the whole range
    is read once through the `(workspace_id, occurred_at)` index.
    """
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    mondays = [last_day - timedelta(days=last_day.weekday() + 7 * back) for back in reversed(range(weeks))]
    bounds = [midnight(monday, tz) for monday in mondays] + [end]
    weekly_sums = [
        func.coalesce(func.sum(case((_within(Purchase.occurred_at, lo, hi), Purchase.amount_minor), else_=0)), 0)
        for lo, hi in zip(bounds, bounds[1:])
    ]
    totals = (await session.execute(
        select(*weekly_sums).join(Customer, Customer.id == Purchase.customer_id)
        .where(Purchase.workspace_id == workspace.id, _live(), Purchase.currency == workspace.currency,
               _within(Purchase.occurred_at, bounds[0], end))
    )).one()
    return [WeekRevenue(monday, int(total)) for monday, total in zip(mondays, totals)]


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of a local day, in UTC."""
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(ZoneInfo("UTC"))


# --- the pieces ------------------------------------------------------------------

def _live() -> ColumnElement[bool]:
    return Customer.deleted_at.is_(None)


def _within(moment: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(moment >= start, moment < end)


def _interactions(ws: int, start: datetime, end: datetime) -> Select:
    """Interactions with live customers in the period, through the `(workspace_id, occurred_at)` index."""
    return (select(Interaction.member_id).join(Customer, Customer.id == Interaction.customer_id)
            .where(Interaction.workspace_id == ws, _live(), _within(Interaction.occurred_at, start, end)))


def _ranked(rows: Iterable[tuple[int | None, str | None, int]]) -> tuple[int, list[RepCount]]:
    """(total, counts per member, most first then by name) from (member_id, name, count) rows.

    Rows whose member is gone (NULL) count in the total but under no name.
    """
    counted = [(member_id, name or "", n) for member_id, name, n in rows if n]
    ranked = sorted((RepCount(m, name, n) for m, name, n in counted if m is not None),
                    key=lambda rep: (-rep.count, rep.name, rep.member_id))
    return sum(n for _, _, n in counted), ranked


async def _per_member(session: AsyncSession, member_column: Any, rows: Select) -> tuple[int, list[RepCount]]:
    """`_ranked` counts of the rows of `rows`, grouped by `member_column`."""
    grouped = (rows.with_only_columns(member_column.label("member_id"), func.count().label("n"))
               .group_by(member_column).subquery())
    return _ranked(await session.execute(
        select(grouped.c.member_id, Member.name, grouped.c.n).outerjoin(Member, Member.id == grouped.c.member_id)
    ))


@dataclass(frozen=True)
class _BookConditions:
    """What makes a live customer new, newly silent, at risk or incomplete in this period,
    and which rows a pass over the whole customer book reads (`every_customer`)."""

    new: ColumnElement[bool]
    newly_silent: ColumnElement[bool]
    at_risk: ColumnElement[bool]
    incomplete: ColumnElement[bool]
    every_customer: ColumnElement[bool]

    @classmethod
    def of(cls, dialect: str, workspace: Workspace, start: datetime, end: datetime) -> _BookConditions:
        return cls(
            every_customer=and_(_whole_workspace(dialect, workspace.id), _live()),
            new=_within(Customer.created_at, start, end),
            newly_silent=_newly_silent(dialect, workspace, start, end),
            at_risk=Customer.stage == "at_risk",
            incomplete=Customer.id.in_(
                select(CustomerTag.customer_id).where(CustomerTag.workspace_id == workspace.id,
                                                      CustomerTag.name == "incomplete", CustomerTag.auto.is_(True))
            ),
        )

    def counted(self) -> list[tuple[str, ColumnElement[bool]]]:
        """The conditions counted per owner, by name."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if f.name != "every_customer"]


def _whole_workspace(dialect: str, ws: int) -> ColumnElement[bool]:
    """`workspace_id = ws`, for a pass over (nearly) every customer of the workspace.

    SQLite, statistics or not, walks an index that starts with workspace_id
    and jumps from it to each row in index order; to read nearly every row a
    plain table scan costs a third of that. SQLite's idiom to keep an index
    out is to wrap the column (`workspace_id + 0`); PostgreSQL's planner
    picks the scan itself.
    """
    column = Customer.workspace_id + 0 if dialect == "sqlite" else Customer.workspace_id
    return column == ws


async def _customer_counts(session: AsyncSession, book: _BookConditions) -> dict[str, tuple[int, list[RepCount]]]:
    """Per condition of `book`: (total, per owner), all in one pass over the workspace's customers."""
    per_owner = (
        select(Customer.owner_id, *(func.count().filter(condition).label(name) for name, condition in book.counted()))
        .where(book.every_customer).group_by(Customer.owner_id).subquery()
    )
    rows = (await session.execute(
        select(per_owner, Member.name).outerjoin(Member, Member.id == per_owner.c.owner_id)
    )).mappings().all()
    return {name: _ranked((row["owner_id"], row["name"], row[name]) for row in rows) for name, _ in book.counted()}


def _silence() -> ColumnElement[datetime]:
    """When the customer's silence began: the last contact, or when added if never contacted."""
    return func.coalesce(Customer.last_contact_at, Customer.created_at)


def _newly_silent(dialect: str, workspace: Workspace, start: datetime, end: datetime) -> ColumnElement[bool]:
    """Silence crossed the cadence within the period, by the rule of the `silent`
    auto tag and /silent (whole days of silence > cadence): silent since +
    (cadence + 1) days ∈ [start, end).

    The cadence is the customer's own, else its tier's default (the rule of
    `storage.scoring.cadence_days`). With a tier's default the test is a range
    of constants, `silent since ∈ [start - days, end - days)`; only the
    customers with a cadence of their own need date arithmetic in SQL.
    Customers marked lost by hand are not news.
    """
    def silent_since_within(days: int) -> ColumnElement[bool]:
        crossing = timedelta(days=days + 1)
        return _within(_silence(), start - crossing, end - crossing)

    by_tier = [
        and_(Customer.tier.is_(None) if tier is None else Customer.tier == tier,
             silent_since_within(scoring.cadence_days(Customer(tier=tier, cadence_days=None), workspace)))
        for tier in ("A", "B", "C", None)
    ]
    own = type_coerce(_plus_days(dialect, _silence(), Customer.cadence_days + 1), UTCDateTime())
    return and_(Customer.lost_at.is_(None), case(
        (Customer.cadence_days.is_(None), or_(*by_tier)),
        else_=and_(own >= start, own < end),
    ))


def _plus_days(dialect: str, moment: Any, days: Any) -> ColumnElement[Any]:
    """`moment + days` as a stored timestamp, exact to the microsecond on both databases.

    SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' text: shift the date and time,
    then put the fraction back so the result compares as text with the bounds.
    """
    if dialect == "sqlite":
        shifted = func.strftime("%Y-%m-%d %H:%M:%S", moment, func.printf("%+d days", days))
        return shifted.concat(func.substr(moment, 20))
    return moment + func.make_interval(0, 0, 0, days)


async def _named_customers(
    session: AsyncSession, book: _BookConditions
) -> tuple[list[CustomerLine], list[CustomerLine]]:
    """The first `TOP` newly silent customers (tier A first, then longest silent) and the
    first `TOP` at risk (tier A first, then highest lifetime value), in one pass.

    Both rankings run in SQL over the customers in either list; only the
    ≤ 2 × `TOP` named rows come back.
    """
    tier_a_first = case((Customer.tier == "A", 0), else_=1)
    line = (Customer.number, Customer.name, Customer.company, Customer.owner_id, Customer.tier,
            _silence().label("silent_since"), Customer.ltv_minor)
    ranked = (
        select(
            *line, book.newly_silent.label("silent"), book.at_risk.label("risk"),
            func.row_number().over(partition_by=book.newly_silent,
                                   order_by=(tier_a_first, _silence(), Customer.number)).label("silent_rank"),
            func.row_number().over(partition_by=book.at_risk,
                                   order_by=(tier_a_first, func.coalesce(Customer.ltv_minor, -1).desc(),
                                             Customer.number)).label("risk_rank"),
        )
        .where(book.every_customer, or_(book.newly_silent, book.at_risk))
        .subquery()
    )
    c = ranked.c
    rows = (await session.execute(
        select(c.number, c.name, c.company, Member.name.label("owner"), c.tier, c.silent_since, c.ltv_minor,
               c.silent, c.risk, c.silent_rank, c.risk_rank)
        .join(Member, Member.id == c.owner_id)
        .where(or_(and_(c.silent.is_(True), c.silent_rank <= TOP), and_(c.risk.is_(True), c.risk_rank <= TOP)))
    )).all()

    def pick(flag: str, rank: str) -> list[CustomerLine]:
        chosen = sorted((row for row in rows if getattr(row, flag) and getattr(row, rank) <= TOP),
                        key=lambda row: getattr(row, rank))
        return [CustomerLine(*row[:7]) for row in chosen]

    return pick("silent", "silent_rank"), pick("risk", "risk_rank")


async def _reps_other_than(session: AsyncSession, ws: int, member_ids: list[int]) -> int:
    """How many members with the rep role are not among `member_ids` (the active ones, from
    the per-member aggregate: no second pass over the interactions)."""
    return await session.scalar(
        select(func.count()).select_from(Member)
        .where(Member.workspace_id == ws, Member.role == "rep", Member.id.not_in(member_ids))
    ) or 0


async def _deals(session: AsyncSession, workspace: Workspace, start: datetime, end: datetime) -> list[CurrencyTotal]:
    """Count and sum per currency; the workspace currency first, then by count."""
    rows = await session.execute(
        select(Purchase.currency, func.count(), func.sum(Purchase.amount_minor))
        .join(Customer, Customer.id == Purchase.customer_id)
        .where(Purchase.workspace_id == workspace.id, _live(), _within(Purchase.occurred_at, start, end))
        .group_by(Purchase.currency)
        .order_by((Purchase.currency != workspace.currency), func.count().desc(), Purchase.currency)
    )
    return [CurrencyTotal(currency, count, int(total)) for currency, count, total in rows]


def _overdue(ws: int, now: datetime) -> Select:
    """Pending reminders due before `now`, about a live customer or about no customer."""
    return (
        select(Reminder.member_id).outerjoin(Customer, Customer.id == Reminder.customer_id)
        .where(Reminder.workspace_id == ws, REMINDER_PENDING, Reminder.due_at < now,
               or_(Reminder.customer_id.is_(None), _live()))
    )


async def _oldest_overdue(session: AsyncSession, ws: int, now: datetime) -> list[OverdueFollowup]:
    rows = await session.execute(
        _overdue(ws, now)
        .with_only_columns(Reminder.number, Reminder.due_at, Member.name, Customer.number, Customer.name,
                           Customer.company)
        .join(Member, Member.id == Reminder.member_id)
        .order_by(Reminder.due_at, Reminder.number).limit(TOP)
    )
    return [OverdueFollowup(*row) for row in rows]


async def _blocked_members(session: AsyncSession, ws: int) -> list[str]:
    rows = await session.scalars(
        select(Member.name).where(Member.workspace_id == ws, Member.id.in_(
            select(Identity.member_id).where(Identity.workspace_id == ws, Identity.blocked_at.is_not(None))
        )).order_by(Member.name)
    )
    return list(rows)



async def _handovers(session: AsyncSession, ws: int, start: datetime, end: datetime) -> tuple[Handover, ...]:
    entries = await offboarding.handovers(session, ws, start, end)
    if not entries:
        return ()
    names = dict((await session.execute(select(Member.id, Member.name).where(Member.workspace_id == ws))).all())
    return tuple(Handover(names.get((e.after or {}).get("member_id"), "—"), names.get((e.after or {}).get("to"), "—"),
                          int((e.after or {}).get("customers", 0))) for e in entries)

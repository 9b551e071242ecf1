"""Derived customer data (SPEC §1): last contact, next follow-up, tier, LTV, stage, auto tags.

Each rule is written once, as set-based SQL over "the customers being
recomputed" (a `_Batch`): `refresh()` passes the few ids an event touched, the
nightly `recompute_workspace()` passes the whole workspace, so the two cannot
disagree. Per-customer facts are correlated subqueries (index seeks on
`(customer_id, …)`); only the ids of changed customers come back to Python.

Every value a rule takes from the batch (the workspace, its settings, the
clock, the ids) is a named bind parameter, so each statement is built once per
dialect and kind of batch and then only executed with the batch's `params`:
building SQLAlchemy expressions costs more than running them for a few ids.

Days are whole days, floored, from a moment to the injected `now`
(`_Batch.days_since`, exact to the microsecond on SQLite and PostgreSQL).
Windows that do not depend on the row ("the last 365 days") are a cutoff
computed in Python, so they can use the `(workspace_id, occurred_at)` indexes:
`days_since(t) < n` is the same as `t > now - n days`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    String,
    Select,
    Subquery,
    Time,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    false,
    func,
    inspect,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from storage.models import REMINDER_PENDING, Customer, CustomerTag, Feedback, Interaction, Purchase, Reminder, Workspace
from storage.prepared import Prepared, Rows

STAGES = ("lead", "prospect", "customer", "loyal", "at_risk", "churned")
AUTO_TAGS = ("vip", "new", "silent", "at-risk", "unhappy", "promoter", "incomplete")

#: The window of RFM, of "≥ 3 purchases" for loyal and of the feedback that blocks it.
WINDOW_DAYS = 365
NEW_DAYS = 30
#: The columns this module writes, reloaded on customers the caller's session holds.
DERIVED = ("last_contact_at", "next_followup_at", "ltv_minor", "tier", "stage")

customers = Customer.__table__
customer_tags = CustomerTag.__table__


def cadence_days(customer: Customer, workspace: Workspace) -> int:
    """How often this customer should hear from us: its own cadence, else its tier's default."""
    if customer.cadence_days is not None:
        return customer.cadence_days
    return {"A": workspace.cadence_a, "B": workspace.cadence_b, "C": workspace.cadence_c}.get(
        customer.tier or "", workspace.cadence_none
    )


@dataclass
class Refreshed:
    """What a refresh wrote: the auto tags each customer gained and lost (a reply shows them without
    reading the tags, before or after)."""

    gained: dict[int, set[str]] = field(default_factory=dict)
    lost: dict[int, set[str]] = field(default_factory=dict)


async def refresh(session: AsyncSession, workspace: Workspace, customer_ids: Iterable[int], now: datetime, *,
                  purchases_changed: bool = True) -> Refreshed:
    """Recompute every derived field and the auto tags of these customers, now.

    Called after each event that changes them. Their tier is scored against
    the whole workspace's distribution as it is now; other customers' tiers
    are left for the nightly recompute. An event that touched no purchase
    (`purchases_changed=False`: a log, a tag, feedback …) leaves the tier as it
    is, saving the workspace-wide RFM ranking. Deleted customers and ids of
    another workspace are ignored.
    """
    ids = tuple(sorted(set(customer_ids)))
    refreshed = Refreshed()
    if ids:
        await _recompute(session, _Batch.of(session, workspace, now, ids), tiers=purchases_changed, into=refreshed)
    return refreshed


async def recompute_workspace(session: AsyncSession, workspace: Workspace, now: datetime) -> int:
    """Recompute every live customer of the workspace in bulk (the nightly job).

    Returns how many customers changed stage, tier or auto tags.
    """
    return len(await _recompute(session, _Batch.of(session, workspace, now, None)))


async def _recompute(session: AsyncSession, batch: _Batch, *, tiers: bool = True,
                     into: Refreshed | None = None) -> set[int]:
    """Apply the rules in dependency order; the ids whose stage, tier or auto tags changed.

    Stage needs the new last contact and tier (the cadence depends on the
    tier), auto tags need the new tier and stage, hence these steps in order.
    Each statement returns what it wrote, so the customers the session holds
    take on the new values without being read again (`_update_held_customers`).
    """
    await session.flush()
    sql, params = _Statements.of(batch), batch.params
    # On the session's connection, not through the ORM: it would annotate each built-once statement
    # afresh and compute its cache key again (the held customers take the values below instead). So the
    # auto tags' DELETE does not make the session write its waiting audit entries first, which it does
    # before an ORM deletion: no entry names a tag row.
    connection = await session.connection()
    written: dict[int, dict[str, Any]] = {}
    _note_written(written, await sql.contacts_and_ltv.run(connection, params))
    changed: set[int] = set()
    if tiers:
        changed |= _note_written(written, await sql.tiers_scored.run(connection, params))
        changed |= _note_written(written, await sql.tiers_cleared.run(connection, params))
    changed |= _note_written(written, await sql.stages.run(connection, params))
    into = into if into is not None else Refreshed()
    for moved, statement in ((into.lost, sql.auto_tags_deleted), (into.gained, sql.auto_tags_inserted)):
        for customer_id, name in await statement.run(connection, params):
            moved.setdefault(customer_id, set()).add(name)
            changed.add(customer_id)
    await _update_held_customers(session, batch, written)
    return changed


def _note_written(written: dict[int, dict[str, Any]], result: Rows) -> set[int]:
    """Keep the derived values an UPDATE … RETURNING id, columns wrote; the ids it wrote (none from the
    whole-workspace pass, which writes last contacts without returning them)."""
    ids = set()
    for values in result.dicts():
        customer_id = values.pop("id")
        written.setdefault(customer_id, {}).update(values)
        ids.add(customer_id)
    return ids


@dataclass(frozen=True)
class _Batch:
    """The customers being recomputed, and the clock and dialect of this run.

    Its SQL names each value it takes (`params`), so a statement built from
    one batch runs for any other batch of the same `kind`.
    """

    workspace: Workspace
    now: datetime  # aware, UTC
    dialect: str
    ids: tuple[int, ...] | None  # None: every live customer of the workspace

    @classmethod
    def of(cls, session: AsyncSession, workspace: Workspace, now: datetime, ids: tuple[int, ...] | None) -> _Batch:
        return cls(workspace, now.astimezone(timezone.utc), session.get_bind().dialect.name, ids)

    @property
    def kind(self) -> tuple[str, str]:
        """The dialect, and whether the batch is the whole workspace, one customer or some: one
        customer (every event's refresh) is `id = ?`, not an IN list SQLAlchemy expands into the
        SQL afresh on every run (its post-compile pass over the statement's text)."""
        return self.dialect, "workspace" if self.ids is None else "one" if len(self.ids) == 1 else "some"

    @cached_property
    def params(self) -> dict[str, Any]:
        """The value of every parameter the batch's SQL names."""
        ws, now = self.workspace, self.now
        values: dict[str, Any] = {
            "workspace_id": ws.id, "currency": ws.currency, "lifetime_years": ws.lifetime_years,
            "cadence_a": ws.cadence_a, "cadence_b": ws.cadence_b, "cadence_c": ws.cadence_c,
            "cadence_none": ws.cadence_none, **{f"after_{days}": now - timedelta(days=days) for days in WINDOWS},
        }
        if self.dialect == "sqlite":
            values |= {"today": now.date().isoformat(), "clock": now.strftime("%H:%M:%S.%f")}
        else:
            values |= {"today": now.date(), "clock": now.time()}
        if self.ids is not None and len(self.ids) == 1:
            values["id"] = self.ids[0]
        elif self.ids is not None:
            values["ids"] = list(self.ids)
        # prefixed: a bind parameter may not share a name with a column of the table an UPDATE writes
        return {f"{PREFIX}{name}": value for name, value in values.items()}

    def value(self, name: str, type_: Any = None) -> Any:
        """The parameter `name`, holding this batch's value (so SQL built for one query runs as is)."""
        return bindparam(PREFIX + name, self.params[PREFIX + name], type_=type_)

    def customers(self) -> ColumnElement[bool]:
        """The batch's rows of `customers`: live, in the workspace, and among the ids if given.

        Ids are found by primary key: their workspace is checked as `workspace_id + 0`, which no
        index serves, because SQLite without statistics would otherwise walk the whole
        workspace's index and test each row against the ids (a 500-id refresh in a book of
        100,000 took 0.3 s instead of 10 ms)."""
        workspace = self.value("workspace_id", Integer)
        if self.ids is None:
            return and_(Customer.workspace_id == workspace, Customer.deleted_at.is_(None))
        return and_(self.among_ids(Customer.id), Customer.workspace_id + 0 == workspace, Customer.deleted_at.is_(None))

    def among_ids(self, column: Any) -> ColumnElement[bool]:
        """`column` (a customer id) among the batch's ids."""
        if self.kind[1] == "one":
            return column == bindparam(f"{PREFIX}id")
        return column.in_(bindparam(f"{PREFIX}ids", expanding=True))

    def within(self, moment: Any, days: int) -> ColumnElement[bool]:
        """`days_since(moment) < days`, as an index-friendly comparison with a constant."""
        assert days in WINDOWS, f"add {days} to WINDOWS"
        return moment > self.value(f"after_{days}", moment.type)

    def days_since(self, moment: Any) -> ColumnElement[int]:
        """Whole days from `moment` to now, floored: calendar days apart, less one if its clock is later.

        Exact on both databases (no floating point): SQLite compares the stored
        text 'YYYY-MM-DD HH:MM:SS.ffffff', PostgreSQL dates and times.
        """
        if self.dialect == "sqlite":
            dates_apart = func.julianday(self.value("today", String)) - func.julianday(func.date(moment))
            clock_later = func.substr(moment, 12) > self.value("clock", String)
        else:
            dates_apart = self.value("today", Date) - cast(moment, Date)
            clock_later = cast(moment, Time) > self.value("clock", Time)
        return cast(dates_apart, Integer) - case((clock_later, 1), else_=0)

    def cadence(self) -> ColumnElement[int]:
        """SQL twin of `cadence_days()`."""
        tier = Customer.tier
        default = case(*((tier == name, self.value(f"cadence_{name.lower()}", Integer)) for name in "ABC"),
                       else_=self.value("cadence_none", Integer))
        return func.coalesce(Customer.cadence_days, default)

    def silent_beyond(self, times: int) -> ColumnElement[bool]:
        """Silence (days since last contact, or since added) over `times` × the cadence."""
        silence = self.days_since(func.coalesce(Customer.last_contact_at, Customer.created_at))
        return silence > times * self.cadence()


#: The day windows of the rules (see `_Batch.within`).
WINDOWS = (WINDOW_DAYS,)
PREFIX = "batch_"


@dataclass(frozen=True)
class _Statements:
    """The statements of `_recompute`, built once per kind of batch."""

    contacts_and_ltv: Prepared
    tiers_scored: Prepared
    tiers_cleared: Prepared
    stages: Prepared
    auto_tags_deleted: Prepared
    auto_tags_inserted: Prepared

    @classmethod
    def of(cls, batch: _Batch) -> _Statements:
        built = _BUILT.get(batch.kind)
        if built is None:
            built = _BUILT[batch.kind] = cls(*map(Prepared, (
                _contacts_and_ltv(batch), *_tiers(batch), _stages(batch), *_auto_tags(batch))))
        return built


_BUILT: dict[tuple[str, str], _Statements] = {}


def _contacts_and_ltv(batch: _Batch) -> Any:
    """Last contact, next follow-up and LTV.

    For a batch of ids, one UPDATE whose SET reads each value by a correlated index seek, returning
    what it wrote (every row of the batch): on SQLite 20 µs for one customer, where the form below
    (UPDATE … FROM a subquery of the new values, writing only rows that differ) took 250 µs, a
    ninth of a whole /log. For the whole workspace (the nightly pass) that form, so that the rows
    which did not change are not written."""
    next_followup = _of_customer(select(func.min(Reminder.due_at)).where(REMINDER_PENDING), Reminder)
    if batch.ids is not None:
        return (
            update(customers)
            .where(batch.customers())
            .values(last_contact_at=_latest_interaction(), next_followup_at=next_followup,
                    ltv_minor=_lifetime_value(batch))
            .returning(Customer.id, Customer.last_contact_at, Customer.next_followup_at, Customer.ltv_minor)
        )
    followup = (
        select(Reminder.customer_id, func.min(Reminder.due_at).label("at"))
        .where(Reminder.workspace_id == batch.value("workspace_id", Integer), REMINDER_PENDING,
               Reminder.customer_id.in_(select(Customer.id).where(batch.customers())))
        .group_by(Reminder.customer_id)
        .subquery()
    )
    new = (
        select(Customer.id, _latest_interaction().label("last_contact"), followup.c.at.label("next_followup"),
               _lifetime_value(batch).label("ltv"))
        .select_from(customers.outerjoin(followup, followup.c.customer_id == Customer.id))
        .where(batch.customers())
        .subquery()
    )
    return (
        update(customers)
        .where(Customer.id == new.c.id, or_(
            Customer.last_contact_at.is_distinct_from(new.c.last_contact),
            Customer.next_followup_at.is_distinct_from(new.c.next_followup),
            Customer.ltv_minor.is_distinct_from(new.c.ltv),
        ))
        .values(last_contact_at=new.c.last_contact, next_followup_at=new.c.next_followup, ltv_minor=new.c.ltv)
    )


def _latest_interaction() -> Any:
    return _of_customer(select(func.max(Interaction.occurred_at)), Interaction)


def _of_customer(query: Select[Any], model: Any) -> Any:
    """`query` over one customer's rows of `model`, as a correlated scalar subquery.

    An index seek per customer: cheap for a refresh of a few, linear for the nightly pass.
    """
    return query.where(model.customer_id == Customer.id).correlate(Customer).scalar_subquery()


def _lifetime_value(batch: _Batch) -> Any:
    """LTV from the customer's purchases in the workspace currency, in integer minor units.

    Average order value × orders per year × lifetime years simplifies to
    total × lifetime / max(1, years since the first purchase); with years as
    days / 365 and rounding half up that is integer arithmetic, exact on both
    databases (amounts are non-negative). NULL without such a purchase.
    """
    total = cast(func.sum(Purchase.amount_minor), BigInteger)
    days = batch.days_since(func.min(Purchase.occurred_at))
    span = case((days > 365, days), else_=365)
    ltv = (total * (batch.value("lifetime_years", Integer) * (2 * 365)) + span) // (2 * span)
    return _of_customer(select(ltv).where(Purchase.currency == batch.value("currency", String)), Purchase)


def _tiers(batch: _Batch) -> tuple[Any, Any]:
    """Tiers of the batch's buyers from the workspace-wide RFM, then NULL for the others; each
    returns the ids it wrote.

    Driven from the scored buyers (a primary-key join), then the ones who
    stopped buying are cleared: a join from customers to the window-function
    subquery would be a nested scan on SQLite.
    """
    tiers = _workspace_tiers(batch)
    scored = (
        update(customers)
        .where(Customer.id == tiers.c.customer_id, batch.customers(),
               Customer.tier.is_distinct_from(tiers.c.tier))
        .values(tier=tiers.c.tier)
        .returning(Customer.id, Customer.tier)
    )
    bought_recently = exists().where(Purchase.customer_id == Customer.id,
                                     batch.within(Purchase.occurred_at, WINDOW_DAYS))
    cleared = (
        update(customers)
        .where(batch.customers(), Customer.tier.is_not(None), ~bought_recently)
        .values(tier=None)
        .returning(Customer.id, Customer.tier)
    )
    return scored, cleared


def _stages(batch: _Batch) -> Any:
    """Stage from the new last contact and tier, written only where it differs; returns the ids written."""
    new = select(Customer.id, _stage(batch).label("stage")).where(batch.customers()).subquery()
    return (
        update(customers)
        .where(Customer.id == new.c.id, Customer.stage != new.c.stage)
        .values(stage=new.c.stage)
        .returning(Customer.id, Customer.stage)
    )


def _workspace_tiers(batch: _Batch) -> Subquery:
    """(customer_id, tier) of every live buyer of the workspace in the window: RFM by CUME_DIST.

    Always the whole workspace, whatever the batch: a quintile is a position
    among all buyers. R ranks days since the latest purchase (fewer is better),
    F the number of purchases, M what they spent in the workspace currency.
    """
    buyers = (
        select(
            Purchase.customer_id,
            batch.days_since(func.max(Purchase.occurred_at)).label("days"),
            func.count().label("orders"),
            func.sum(case((Purchase.currency == batch.value("currency", String), Purchase.amount_minor),
                          else_=0)).label("spent"),
        )
        .join(Customer, Customer.id == Purchase.customer_id)
        .where(Purchase.workspace_id == batch.value("workspace_id", Integer),
               batch.within(Purchase.occurred_at, WINDOW_DAYS),
               Customer.deleted_at.is_(None))
        .group_by(Purchase.customer_id)
        .subquery()
    )
    ranked = select(
        buyers.c.customer_id,
        func.cume_dist().over(order_by=buyers.c.days.desc()).label("r"),
        func.cume_dist().over(order_by=buyers.c.orders).label("f"),
        func.cume_dist().over(order_by=buyers.c.spent).label("m"),
    ).subquery()
    points = _quintile(ranked.c.r) + _quintile(ranked.c.f) + _quintile(ranked.c.m)
    tier = case((points >= 12, "A"), (points >= 8, "B"), else_="C")
    return select(ranked.c.customer_id, tier.label("tier")).subquery()


def _quintile(share: Any) -> ColumnElement[int]:
    """ceil(5 × cume_dist) without ceil (SQLite has none); exact, as k/n never sits near a fifth."""
    return case((share > 0.8, 5), (share > 0.6, 4), (share > 0.4, 3), (share > 0.2, 2), else_=1)


def _stage(batch: _Batch) -> ColumnElement[str]:
    """The lifecycle stage: the first rule that holds wins.

    Silence only counts against customers we have dealt with: a lead nobody
    has contacted yet is a lead, not churned.
    """
    contacted = Customer.last_contact_at.is_not(None)
    has_bought = exists().where(Purchase.customer_id == Customer.id)
    dealt_with = or_(contacted, has_bought)
    recent_purchases = _of_customer(
        select(func.count()).where(batch.within(Purchase.occurred_at, WINDOW_DAYS)), Purchase)
    unhappy_recently = exists().where(Feedback.customer_id == Customer.id, Feedback.score <= 2,
                                      batch.within(Feedback.created_at, WINDOW_DAYS))
    return case(
        (or_(Customer.lost_at.is_not(None), and_(dealt_with, batch.silent_beyond(4))), "churned"),
        (or_(and_(dealt_with, batch.silent_beyond(2)), _latest_feedback_score() <= 2), "at_risk"),
        (and_(recent_purchases >= 3, ~unhappy_recently), "loyal"),
        (has_bought, "customer"),
        (contacted, "prospect"),
        else_="lead",
    )


def _latest_feedback_score() -> Any:
    """The score of the customer's newest feedback (ties: the later row), NULL when none."""
    newest_first = select(Feedback.score).order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(1)
    return _of_customer(newest_first, Feedback)


def _blank(column: Any) -> ColumnElement[bool]:
    return func.coalesce(column, "") == ""


def _auto_tag_rules(batch: _Batch) -> dict[str, ColumnElement[bool]]:
    """When each auto tag holds, over a customer row whose tier and stage are already new."""
    latest = _latest_feedback_score()
    return {
        "vip": Customer.tier == "A",
        "new": batch.days_since(Customer.created_at) <= NEW_DAYS,
        "silent": batch.silent_beyond(1),
        "at-risk": Customer.stage == "at_risk",
        "unhappy": latest <= 2,
        "promoter": latest == 5,
        "incomplete": or_(and_(_blank(Customer.phone), _blank(Customer.email)), _blank(Customer.company)),
    }


def _auto_tags(batch: _Batch) -> tuple[Any, Any]:
    """Delete the auto tags that no longer hold, then insert the missing ones; each returns the ids
    it touched.

    An auto tag no rule gives (a retired rule) no longer holds. Manual tags
    (auto=False) are never touched. The insert skips rows a concurrent refresh
    already added, so the nightly job and a live event never collide on the
    unique (customer_id, name, auto).
    """
    rules = _auto_tag_rules(batch)
    holds = func.coalesce(case(*((CustomerTag.name == name, rule) for name, rule in rules.items()), else_=false()),
                          false())
    no_longer_holds = exists().where(Customer.id == CustomerTag.customer_id, batch.customers(), ~holds)
    # a refresh reads the few customers' tags by customer (their workspace is checked on the customer):
    # naming the workspace here makes SQLite read every auto tag of the book
    tags_of_batch = (CustomerTag.workspace_id == batch.value("workspace_id", Integer) if batch.ids is None
                     else batch.among_ids(CustomerTag.customer_id))
    deleted = (
        delete(customer_tags)
        .where(CustomerTag.auto.is_(True), tags_of_batch, no_longer_holds)
        .returning(CustomerTag.customer_id, CustomerTag.name)
    )
    missing = union_all(*(
        select(batch.value("workspace_id", Integer), Customer.id, literal(name, String), true())
        .where(batch.customers(), rule, ~_has_auto_tag(name))
        for name, rule in rules.items()
    ))
    inserted = (
        _insert_or_skip(batch.dialect)
        .from_select(["workspace_id", "customer_id", "name", "auto"], missing)
        .on_conflict_do_nothing()
        .returning(CustomerTag.customer_id, CustomerTag.name)
    )
    return deleted, inserted


def _has_auto_tag(name: str) -> Any:
    return exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.name == name,
                          CustomerTag.auto.is_(True))


def _insert_or_skip(dialect: str) -> Any:
    """INSERT into customer_tags with the dialect's ON CONFLICT support."""
    return (sqlite_insert if dialect == "sqlite" else postgresql_insert)(customer_tags)


async def _update_held_customers(session: AsyncSession, batch: _Batch, written: dict[int, dict[str, Any]]) -> None:
    """Give batch customers the session holds their new derived values, so callers see them: those the
    statements returned (what they did not return did not change); read again only when the session
    had expired them, or after a whole-workspace pass, which does not return its last contacts."""
    for held in list(session.identity_map.values()):
        if not (isinstance(held, Customer) and held.workspace_id == batch.workspace.id and (
                batch.ids is None or held.id in batch.ids)):
            continue
        if batch.ids is None or inspect(held).unloaded & set(DERIVED):
            await session.refresh(held, attribute_names=DERIVED)
            continue
        for name, value in written.get(held.id, {}).items():
            set_committed_value(held, name, value)

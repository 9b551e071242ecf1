"""The daily silent-customer sweep, database side (SPEC §4): whom each rep is told about.

One query per workspace over the rule of `storage.followups.silent_customers`
(past the cadence, not lost, not snoozed or nudged within the last cadence): a
window function ranks each owner's silent customers (tier A first, then longest
silent) and counts them, and only the first few per owner come back. The filter
is index ranges on when silence began or passes the cadence (`ix_customers_sweep_*`
on `Customer`), so the cost follows the customers found, not the table
(bench/silent_sweep.py measures it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import followups
from storage.models import Customer, Workspace

#: Customers named per rep in one message; the rest are counted ("and N more — /silent").
SHOWN = 15


@dataclass(frozen=True)
class RepSweep:
    member_id: int
    customer_ids: list[int]  # tier A first, then longest silent; at most `shown`
    total: int  # all of this owner's silent customers


async def sweep_query(
    session: AsyncSession, workspace: Workspace, now: datetime, *, shown: int = SHOWN, member_id: int | None = None
) -> Select:
    """The one statement of a sweep: (owner id, customer id, owner's total) of the named customers, in order.

    Apart from `sweep_lists` so that bench/silent_sweep.py can show its plan.
    """
    query, _ = await followups._silent_query(session, workspace, member_id, now)
    tier_a_first = case((Customer.tier == "A", 0), else_=1)
    ranked = query.with_only_columns(
        Customer.id, Customer.owner_id,
        func.row_number().over(partition_by=Customer.owner_id,
                               order_by=(tier_a_first, followups.silent_since(), Customer.number)).label("rank"),
        func.count().over(partition_by=Customer.owner_id).label("total"),
    ).subquery()
    return (select(ranked.c.owner_id, ranked.c.id, ranked.c.total).where(ranked.c.rank <= shown)
            .order_by(ranked.c.owner_id, ranked.c.rank))


async def sweep_lists(
    session: AsyncSession, workspace: Workspace, now: datetime, *, shown: int = SHOWN, member_id: int | None = None
) -> list[RepSweep]:
    """Per owner (or for one), the silent customers to name and how many there are, by member id."""
    rows = await session.execute(await sweep_query(session, workspace, now, shown=shown, member_id=member_id))
    lists: dict[int, RepSweep] = {}
    for owner_id, customer_id, total in rows:
        lists.setdefault(owner_id, RepSweep(owner_id, [], total)).customer_ids.append(customer_id)
    return list(lists.values())


async def mark_nudged(session: AsyncSession, workspace_id: int, customer_ids: list[int], now: datetime) -> None:
    """These customers were named to their owner: not again within their cadence."""
    if customer_ids:
        await session.execute(update(Customer).where(Customer.workspace_id == workspace_id,
                                                     Customer.id.in_(customer_ids)).values(silent_nudged_at=now))

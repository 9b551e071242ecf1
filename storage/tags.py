"""Manual tags (SPEC §1 "needs and preferences") and tag counts.

Names arrive already standardised (`standardise.tag`). Auto tags belong to
`storage.scoring`: their names can be neither added nor removed by hand.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from storage import audit
from storage.models import Customer, CustomerTag
from storage.prepared import Prepared
from storage.rows import insert_row
from storage.scoring import AUTO_TAGS
from storage.standardise import InvalidValue


#: Built once (read by every /tag and card of tags), the customer bound at execution.
_MANUAL_TAGS = Prepared(select(CustomerTag.name).where(CustomerTag.customer_id == bindparam("customer_id"),
                                                        CustomerTag.auto.is_(False)).order_by(CustomerTag.name))
_TOUCHED = Prepared(update(Customer).where(Customer.id == bindparam("customer_id")).values(updated_at=bindparam("now")))


async def manual_tags(session: AsyncSession, customer_id: int) -> list[str]:
    return [name for name, in await _MANUAL_TAGS.run(session, {"customer_id": customer_id})]


def refuse_auto(names: Iterable[str]) -> None:
    """Auto tag names are the system's; raise `InvalidValue('auto_tag', name)` for the first one given."""
    for name in names:
        if name in AUTO_TAGS:
            raise InvalidValue("auto_tag", name)


async def change_tags(
    session: AsyncSession,
    customer: Customer,
    *,
    add: Iterable[str],
    remove: Iterable[str],
    member_id: int,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Add and remove manual tags; audit the before → after lists; return (added, removed)."""
    add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
    refuse_auto([*add, *remove])
    before = await manual_tags(session, customer.id)
    added = [name for name in add if name not in before]
    removed = [name for name in remove if name in before]
    if not added and not removed:
        return [], []
    if removed:
        await session.execute(delete(CustomerTag).where(
            CustomerTag.customer_id == customer.id, CustomerTag.auto.is_(False), CustomerTag.name.in_(removed)))
    for name in added:  # new rows nothing reads back as objects (storage.rows)
        await insert_row(session, CustomerTag(workspace_id=customer.workspace_id, customer_id=customer.id, name=name,
                                              auto=False))
    await _TOUCHED.run(session, {"customer_id": customer.id, "now": now})  # not a search-indexed column
    set_committed_value(customer, "updated_at", now)
    after = sorted(set(before) - set(removed) | set(added))
    audit.record(session, workspace_id=customer.workspace_id, member_id=member_id, action="tag",
                 customer_id=customer.id, at=now, before={"tags": before}, after={"tags": after})
    return added, removed


async def tag_counts(
    session: AsyncSession, workspace_id: int, customers: Select[tuple[Customer]]
) -> list[tuple[str, bool, int]]:
    """(name, auto, number of customers) over `customers` (a query, used as a subquery), most used first."""
    count = func.count(CustomerTag.customer_id.distinct())
    rows = await session.execute(
        select(CustomerTag.name, CustomerTag.auto, count)
        .where(CustomerTag.workspace_id == workspace_id,
               CustomerTag.customer_id.in_(customers.with_only_columns(Customer.id)))
        .group_by(CustomerTag.name, CustomerTag.auto)
        .order_by(count.desc(), CustomerTag.name)
    )
    return [(name, bool(auto), n) for name, auto, n in rows]

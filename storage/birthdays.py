"""Customers' birthdays coming up: what the owner's morning message names (`birthday_days`).

Birthdays are stored with their year; what matters is the month and day, so the
query asks for the next few (month, day) pairs of the calendar. A 29 February
birthday is kept on the 28th in a year that has no 29th.
"""
from __future__ import annotations

import calendar
from datetime import date, timedelta

from sqlalchemy import extract, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Customer

#: Most birthdays named to one owner in one message.
SHOWN = 15


def days_until(today: date, days: int) -> dict[int, int]:
    """`month * 100 + day` → days from `today` until it, for today and the next `days - 1` days."""
    ahead: dict[int, int] = {}
    for offset in range(days):
        day = today + timedelta(days=offset)
        ahead[day.month * 100 + day.day] = offset
        if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
            ahead[229] = offset
    return ahead


async def coming(session: AsyncSession, workspace_id: int, today: date, days: int,
                 *, shown: int = SHOWN) -> dict[int, list[tuple[int, int]]]:
    """Per owner, (customer id, days until the birthday) of live customers whose birthday falls in
    the next `days` days (today included), soonest first; nothing when `days` is 0."""
    ahead = days_until(today, days)
    if not ahead:
        return {}
    month_day = extract("month", Customer.birthday) * 100 + extract("day", Customer.birthday)
    rows = await session.execute(
        select(Customer.owner_id, Customer.id, Customer.number, month_day.label("month_day"))
        .where(Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None), Customer.lost_at.is_(None),
               Customer.birthday.is_not(None), month_day.in_(list(ahead))))
    per_owner: dict[int, list[tuple[int, int, int]]] = {}
    for owner_id, customer_id, number, key in rows:
        per_owner.setdefault(owner_id, []).append((ahead[int(key)], number, customer_id))
    return {owner: [(customer_id, until) for until, _, customer_id in sorted(found)[:shown]]
            for owner, found in per_owner.items()}

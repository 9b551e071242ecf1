"""One recorded interaction, deal or feedback, by its number on the customer's card: read, change, remove.

An entry's number counts that customer's entries of its kind in the order they
were recorded (`log 1` is the first interaction ever logged), so a number read
off the card keeps naming the same entry when a back-dated one is added; only
removing an earlier entry moves it down by one. Changes and removals are
audited (`log_edit`, `deal_delete`, …) with the before values, so /history
shows what was corrected; the caller refreshes the derived data.
"""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage import audit
from storage.models import Feedback, Interaction, Purchase

Entry = Interaction | Purchase | Feedback
MODELS: dict[str, type[Entry]] = {"log": Interaction, "deal": Purchase, "feedback": Feedback}
#: What an edit may change, per kind; the audit trail keeps these before → after.
EDITABLE = {"log": ("channel", "summary"), "deal": ("amount_minor", "currency", "note"),
            "feedback": ("score", "comment")}


def kind_of(row: Entry) -> str:
    return next(kind for kind, model in MODELS.items() if isinstance(row, model))


async def numbered(session: AsyncSession, kind: str, customer_id: int, number: int) -> Entry | None:
    """The customer's `number`th entry of `kind` (1 = the first recorded), or None."""
    if number < 1:
        return None
    model = MODELS[kind]
    return await session.scalar(
        select(model).where(model.customer_id == customer_id).order_by(model.id).offset(number - 1).limit(1))


async def number_of(session: AsyncSession, row: Entry) -> int:
    return await session.scalar(_counted_up_to(type(row)), {"customer_id": row.customer_id, "entry_id": row.id}) or 0


async def latest(session: AsyncSession, kind: str, customer_id: int) -> tuple[Entry, int] | None:
    """The customer's most recently recorded entry of `kind` with its number, or None."""
    found = (await session.execute(_latest(MODELS[kind]), {"customer_id": customer_id})).first()
    return (found[0], found[1]) if found is not None else None


# Every card reads the latest deal and feedback with their numbers: statements built once per kind.


@cache
def _counted_up_to(model: type[Entry]) -> Select:
    return select(func.count()).select_from(model).where(model.customer_id == bindparam("customer_id"),
                                                         model.id <= bindparam("entry_id"))


@cache
def _latest(model: type[Entry]) -> Select:
    """The newest entry and, in the same statement, its number (the entries up to it)."""
    earlier = aliased(model)
    number = (select(func.count()).select_from(earlier)
              .where(earlier.customer_id == model.customer_id, earlier.id <= model.id).scalar_subquery())
    return (select(model, number).where(model.customer_id == bindparam("customer_id"))
            .order_by(model.id.desc()).limit(1))


def snapshot(row: Entry) -> dict[str, Any]:
    """What the audit trail keeps of an entry: its id as `entry` and its editable values, texts whole
    (a command takes at most 2,000 characters), so /undo can put a correction back as it was."""
    return {"entry": row.id, **{name: getattr(row, name) for name in EDITABLE[kind_of(row)]}}


def change(
    session: AsyncSession, row: Entry, values: dict[str, Any], *, member_id: int, now: datetime
) -> dict[str, Any]:
    """Set the editable `values` that differ, audit them as `<kind>_edit`; the new values of those changed."""
    kind = kind_of(row)
    before = snapshot(row)
    for name, value in values.items():
        if name not in EDITABLE[kind]:
            raise ValueError(f"{name} is not an editable field of a {kind}")
        setattr(row, name, value)
    after = snapshot(row)
    changed_before, changed_after = audit.changes(before, after)
    if "currency" in changed_after:  # the amount goes with its currency, so /history can show `¥15,000 → $15,000`
        changed_before["amount_minor"], changed_after["amount_minor"] = before["amount_minor"], after["amount_minor"]
    if changed_after:
        audit.record(session, workspace_id=row.workspace_id, member_id=member_id, action=f"{kind}_edit",
                     customer_id=row.customer_id, before={"entry": row.id, **changed_before},
                     after={"entry": row.id, **changed_after}, at=now)
    return changed_after


async def remove(session: AsyncSession, row: Entry, *, member_id: int, now: datetime) -> None:
    """Delete the entry, audited as `<kind>_delete` with what it held."""
    audit.record(session, workspace_id=row.workspace_id, member_id=member_id, action=f"{kind_of(row)}_delete",
                 customer_id=row.customer_id, before=snapshot(row), at=now)
    await session.delete(row)
    await session.flush()

"""Folding one customer record into another (`/merge`), losing nothing.

Every interaction, purchase, feedback and reminder of the dropped record moves
to the kept one, and so do its manual tags (without doubling a tag both have).
The kept record's values win; its empty fields are filled from the dropped one,
and where both hold different values, the dropped one's are appended to the
kept record's preferences ("merged from #7: phone …"). The dropped record's
audit trail is re-pointed to the kept one, a single `merge` entry keeps a full
snapshot of the dropped record, and then the dropped row is deleted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.models import AuditEntry, Customer, CustomerTag, Feedback, Interaction, Purchase, Reminder

#: What moves, by the name a reply counts it under.
RELATED = {"interactions": Interaction, "purchases": Purchase, "feedback": Feedback, "reminders": Reminder}
#: Basic information and preferences compared field by field (the owner stays the kept record's).
MERGED_FIELDS = tuple(name for name in audit.CUSTOMER_FIELDS if name != "owner_id")

#: Words for the note on the kept record: (dropped record's number, {field: its differing value}) → text.
DescribeConflicts = Callable[[int, dict[str, str]], str]


class CannotMerge(ValueError):
    """A record into itself, or records of two workspaces: never merged."""


@dataclass
class MergeResult:
    moved: dict[str, int] = field(default_factory=dict)  # rows moved per kind (RELATED's names and "tags")
    filled: list[str] = field(default_factory=list)  # fields of the kept record filled from the dropped one
    conflicts: dict[str, str] = field(default_factory=dict)  # the dropped record's differing values


async def related_counts(session: AsyncSession, customer_id: int) -> dict[str, int]:
    """How many rows of each kind (and manual tags) a customer has: what a merge would move."""
    counts = {}
    for kind, model in {**RELATED, "tags": CustomerTag}.items():
        query = select(func.count()).select_from(model).where(model.customer_id == customer_id)
        if model is CustomerTag:
            query = query.where(CustomerTag.auto.is_(False))
        counts[kind] = await session.scalar(query) or 0
    return counts


async def merge_customers(
    session: AsyncSession, keep: Customer, drop: Customer, *, member_id: int | None, now: datetime,
    describe: DescribeConflicts,
) -> MergeResult:
    """Fold `drop` into `keep` and delete `drop`; derived data and the search index are the caller's."""
    if keep.id == drop.id or keep.workspace_id != drop.workspace_id:
        raise CannotMerge(f"cannot merge #{drop.number} into #{keep.number}")
    values, result = _field_plan(keep, drop)
    if result.conflicts:
        values["prefs"] = _noted(values.get("prefs", keep.prefs), describe(drop.number, result.conflicts))
    if drop.created_at < keep.created_at:  # the relationship is as old as its older record
        values["created_at"] = drop.created_at
    dropped = {"number": drop.number, **audit.snapshot(drop, (*audit.CUSTOMER_FIELDS, "created_at", "lost_at")),
               "tags": await _manual_tags(session, drop.id)}
    result.moved = await _move_related(session, keep.id, drop.id)
    await session.execute(update(AuditEntry).where(AuditEntry.customer_id == drop.id).values(customer_id=keep.id))
    before = audit.snapshot(keep, tuple(values))
    for name, value in values.items():
        setattr(keep, name, value)
    changed_before, changed_after = audit.changes(before, audit.snapshot(keep, tuple(values)))
    keep.updated_at = now
    audit.record(session, workspace_id=keep.workspace_id, member_id=member_id, action="merge", customer_id=keep.id,
                 before={**changed_before, "merged": dropped},
                 after={**changed_after, "merged_from": drop.number, "moved": result.moved}, at=now)
    await session.delete(drop)
    await session.flush()
    return result


def fold_in(keep: Customer, values: dict[str, Any], describe: Callable[[dict[str, str]], str]) -> tuple[dict[str, Any], MergeResult]:
    """What a new record's cleaned `values` change in `keep` when "same person?" is answered Merge,
    by /merge's rule: its gaps are filled, and values that differ (the new name 王方 beside 王芳)
    are appended to its preferences in `describe`'s words. Nothing is written here."""
    probe = Customer(**{name: value for name, value in values.items() if name in MERGED_FIELDS})
    fills, result = _field_plan(keep, probe)
    if result.conflicts:
        fills["prefs"] = _noted(fills.get("prefs", keep.prefs), describe(result.conflicts))
    return fills, result


def _noted(prefs: str | None, note: str) -> str:
    return "\n".join(filter(None, [prefs, note]))


def _field_plan(keep: Customer, drop: Customer) -> tuple[dict[str, Any], MergeResult]:
    """Gaps of `keep` that `drop` fills, and `drop`'s values that differ from `keep`'s."""
    fills: dict[str, Any] = {}
    result = MergeResult()
    for name in MERGED_FIELDS:
        kept, dropped = getattr(keep, name), getattr(drop, name)
        if _blank(dropped):
            continue
        if _blank(kept):
            fills[name] = dropped
            result.filled.append(name)
        elif _folded(kept) != _folded(dropped):
            result.conflicts[name] = str(audit.snapshot(drop, (name,))[name])
    return fills, result


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _folded(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


async def _manual_tags(session: AsyncSession, customer_id: int) -> list[str]:
    query = select(CustomerTag.name).where(CustomerTag.customer_id == customer_id, CustomerTag.auto.is_(False))
    return list(await session.scalars(query.order_by(CustomerTag.name)))


async def _move_related(session: AsyncSession, keep_id: int, drop_id: int) -> dict[str, int]:
    """Re-point every dependent row; manual tags `keep` already has stay behind and go with `drop`."""
    moved = {}
    for kind, model in RELATED.items():
        result = await session.execute(update(model).where(model.customer_id == drop_id).values(customer_id=keep_id))
        moved[kind] = result.rowcount
    kept_tags = select(CustomerTag.name).where(CustomerTag.customer_id == keep_id, CustomerTag.auto.is_(False))
    result = await session.execute(
        update(CustomerTag)
        .where(CustomerTag.customer_id == drop_id, CustomerTag.auto.is_(False), CustomerTag.name.not_in(kept_tags))
        .values(customer_id=keep_id)
    )
    moved["tags"] = result.rowcount
    return moved

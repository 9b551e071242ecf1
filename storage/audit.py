"""The audit trail: who changed what, when, before → after (`/history`)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, Customer

#: Customer fields a person can change; the audit log keeps these before → after.
CUSTOMER_FIELDS = (
    "name", "company", "title", "phone", "email", "address", "region", "industry",
    "size", "gender", "birthday", "source", "prefs", "cadence_days", "owner_id",
)


def plain(value: Any) -> Any:
    """A value as the audit log's JSON holds it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, (date, datetime)) else value


def snapshot(customer: Customer, fields: tuple[str, ...] = CUSTOMER_FIELDS) -> dict[str, Any]:
    return {name: plain(getattr(customer, name)) for name in fields}


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the keys whose value changed, as (before, after)."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def record(
    session: AsyncSession,
    *,
    workspace_id: int,
    member_id: int | None,
    action: str,
    at: datetime,
    customer_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        workspace_id=workspace_id,
        member_id=member_id,
        customer_id=customer_id,
        action=action,
        before={k: plain(v) for k, v in before.items()} if before else None,
        after={k: plain(v) for k, v in after.items()} if after else None,
        at=at,
    )
    session.add(entry)
    return entry

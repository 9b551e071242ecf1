"""The audit trail: who changed what, when, before → after (`/history`)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables

from storage.models import AuditEntry, Customer
from storage.prepared import Prepared

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
) -> None:
    """Add an entry to the trail. Entries wait in the session and go out together as one INSERT
    (`_write_pending`): as the transaction commits, or before a statement that reads or writes the
    trail or deletes anything (a row they name could go)."""
    session.info.setdefault(_PENDING, []).append({
        "workspace_id": workspace_id, "member_id": member_id, "customer_id": customer_id, "action": action,
        "before": {k: plain(v) for k, v in before.items()} if before else None,
        "after": {k: plain(v) for k, v in after.items()} if after else None,
        "at": at,
    })


_PENDING = "audit entries waiting"
_TRAIL = AuditEntry.__table__
#: Built once, every column bound (on the database thread sqlite3 runs it: storage.prepared).
_INSERT_ENTRIES = Prepared(insert(AuditEntry).values({name: bindparam(name, type_=_TRAIL.c[name].type) for name in (
    "workspace_id", "member_id", "customer_id", "action", "before", "after", "at")}))


def _write_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:  # on the connection: no autoflush, so this may run inside a flush
        _INSERT_ENTRIES.run_sync(session.connection(), rows)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _write_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    if _PENDING in state.session.info and (
            state.is_delete or _TRAIL in find_tables(state.statement, include_crud=True)):
        _write_pending(state.session)


@event.listens_for(Session, "before_flush")
def _before_deletes(session: Session, _context: Any, _instances: Any) -> None:
    if session.deleted:
        _write_pending(session)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)

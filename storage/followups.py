"""Revisit reminders: creating them, and the queries behind /reminders, /done, /snooze, /silent."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, workspaces
from storage.models import Reminder, Workspace


async def create_reminder(
    session: AsyncSession,
    workspace: Workspace,
    *,
    member_id: int,
    created_by: int | None,
    customer_id: int | None,
    due_at: datetime,
    explicit_time: bool,
    note: str,
    now: datetime,
) -> Reminder:
    """A pending reminder for `member_id`, numbered within the workspace, audited."""
    reminder = Reminder(
        workspace_id=workspace.id,
        number=await workspaces.next_number(session, workspace.id, "reminder"),
        customer_id=customer_id, member_id=member_id, created_by=created_by,
        due_at=due_at, explicit_time=explicit_time, note=note[:1000], status="pending",
        created_at=now, attempts=0,
    )
    session.add(reminder)
    await session.flush()
    audit.record(session, workspace_id=workspace.id, member_id=created_by, action="remind",
                 customer_id=customer_id, after={"reminder": reminder.number, "due_at": due_at, "note": note[:200]}, at=now)
    return reminder

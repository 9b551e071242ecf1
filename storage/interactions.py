"""The interaction log (SPEC §1 "behaviour"): every call, visit, meeting and note with a customer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.rows import insert_row
from storage.standardise import visible
from storage.models import Customer, Interaction

#: How much of a summary the audit entry keeps (the interaction row keeps all of it).
AUDIT_SUMMARY = 200


async def add_interaction(
    session: AsyncSession,
    customer: Customer,
    *,
    member_id: int,
    channel: str,
    summary: str,
    occurred_at: datetime,
    now: datetime,
) -> Interaction:
    """Record one contact with `customer`, audited; derived data is the caller's `refresh`."""
    summary = visible(summary)
    interaction = Interaction(
        workspace_id=customer.workspace_id, customer_id=customer.id, member_id=member_id,
        channel=channel, summary=summary, occurred_at=occurred_at, created_at=now,
    )
    await insert_row(session, interaction)
    audit.record(session, workspace_id=customer.workspace_id, member_id=member_id, action="log",
                 customer_id=customer.id, at=now,
                 after={"entry": interaction.id, "channel": channel, "summary": summary[:AUDIT_SUMMARY], "occurred_at": occurred_at})
    return interaction

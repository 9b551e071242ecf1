"""Purchases and satisfaction feedback (SPEC §1 "transactions" and "feedback").

Both are events that move a customer's tier, LTV, stage or auto tags; the
caller refreshes the derived data once the row is in.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.standardise import visible
from storage.models import Customer, Feedback, Purchase

SCORES = range(1, 6)
#: How much of a free-text note the audit entry keeps (the row keeps all of it).
AUDIT_NOTE = 200


async def add_purchase(
    session: AsyncSession,
    customer: Customer,
    *,
    member_id: int,
    amount_minor: int,
    currency: str,
    note: str,
    occurred_at: datetime,
    now: datetime,
) -> Purchase:
    """Record a purchase in minor units (cents/分), audited."""
    if amount_minor <= 0:
        raise ValueError("a purchase needs a positive amount")
    note = visible(note)
    purchase = Purchase(
        workspace_id=customer.workspace_id, customer_id=customer.id, member_id=member_id,
        amount_minor=amount_minor, currency=currency, note=note, occurred_at=occurred_at, created_at=now,
    )
    session.add(purchase)
    await session.flush()
    audit.record(session, workspace_id=customer.workspace_id, member_id=member_id, action="deal",
                 customer_id=customer.id, at=now,
                 after={"entry": purchase.id, "amount_minor": amount_minor, "currency": currency, "note": note[:AUDIT_NOTE],
                        "occurred_at": occurred_at})
    return purchase


async def add_feedback(
    session: AsyncSession, customer: Customer, *, member_id: int, score: int, comment: str, now: datetime
) -> Feedback:
    """Record a satisfaction score from 1 to 5 with an optional comment, audited."""
    if score not in SCORES:
        raise ValueError(f"feedback score {score} is not 1–5")
    comment = visible(comment)
    feedback = Feedback(
        workspace_id=customer.workspace_id, customer_id=customer.id, member_id=member_id,
        score=score, comment=comment, created_at=now,
    )
    session.add(feedback)
    await session.flush()
    audit.record(session, workspace_id=customer.workspace_id, member_id=member_id, action="feedback",
                 customer_id=customer.id, at=now, after={"entry": feedback.id, "score": score, "comment": comment[:AUDIT_NOTE]})
    return feedback

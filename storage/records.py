"""A customer record's life after it was added: handing it over, deleting, restoring, forgetting.

Deleting is soft (`deleted_at`): the record leaves every list, search and
lookup, its pending reminders are cancelled, and `/restore` brings it back.
Forgetting is for good: the record and everything recorded about the person
are erased, and the audit trail keeps only that something was erased.
"""
from __future__ import annotations

import json
import re
from datetime import datetime

from sqlalchemy import delete, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, customers
from storage.models import (REMINDER_PENDING, AuditEntry, Conversation, Customer, CustomerTag, Feedback, Interaction,
                            PendingChoice, ProcessedUpdate, Purchase, Reminder)

PENDING = "pending"
CANCELLED = "cancelled"
#: A phone is recognised in stored text by its last digits, however it was typed.
_PHONE_TAIL = 8


async def hand_over(
    session: AsyncSession, customer: Customer, owner_id: int, *, member_id: int, now: datetime
) -> int:
    """Make `owner_id` the owner (audited); the old owner's pending reminders for it go along.

    Returns how many reminders moved.
    """
    previous = customer.owner_id
    customers.apply(session, customer, {"owner_id": owner_id}, member_id=member_id, now=now, action="assign")
    moved = await session.execute(
        update(Reminder)
        .where(Reminder.customer_id == customer.id, Reminder.member_id == previous, REMINDER_PENDING)
        .values(member_id=owner_id)
    )
    return moved.rowcount


async def soft_delete(session: AsyncSession, customer: Customer, *, member_id: int, now: datetime) -> int:
    """Hide the customer everywhere (audited) and cancel its pending reminders; returns how many."""
    customers.apply(session, customer, {"deleted_at": now}, member_id=member_id, now=now, action="delete")
    cancelled = await session.execute(
        update(Reminder).where(Reminder.customer_id == customer.id, REMINDER_PENDING)
        .values(status=CANCELLED)
    )
    return cancelled.rowcount


def restore(session: AsyncSession, customer: Customer, *, member_id: int, now: datetime) -> None:
    """Bring a deleted customer back (audited); its cancelled reminders stay cancelled."""
    customers.apply(session, customer, {"deleted_at": None}, member_id=member_id, now=now, action="restore")


async def forget(session: AsyncSession, customer: Customer, *, member_id: int, now: datetime) -> None:
    """Erase the customer and every record of the person, for good.

    Deleted: the customer row, its interactions, purchases, feedback, tags and
    reminders, and pending buttons or guided forms that mention the person.
    Scrubbed: the before/after values of every audit entry about it, and kept
    answers (replies held for a redelivery, handlers.kept_replies) that mention
    the person. Kept: one `forget` entry naming only the record's number. The
    caller then has the database drop its own copies (`Database.erase_traces`).
    """
    customer_id, workspace_id, number = customer.id, customer.workspace_id, customer.number
    needles = _identifying_text(customer)
    await session.execute(
        update(AuditEntry).where(AuditEntry.customer_id == customer_id).values(before=null(), after=null())
    )
    for model in (Interaction, Purchase, Feedback, CustomerTag, Reminder):  # also FK cascades; explicit on purpose
        await session.execute(delete(model).where(model.customer_id == customer_id))
    await _drop_mentions(session, workspace_id, needles)
    await session.delete(customer)
    await session.flush()
    audit.record(session, workspace_id=workspace_id, member_id=member_id, action="forget",
                 after={"number": number}, at=now)


def _identifying_text(customer: Customer) -> tuple[list[str], list[str]]:
    """(words, digit strings) that would identify the person in stored text."""
    words = [value.casefold() for value in (customer.name, customer.email) if value]
    digits = [re.sub(r"\D", "", customer.phone)[-_PHONE_TAIL:]] if customer.phone else []
    return words, digits


async def _drop_mentions(session: AsyncSession, workspace_id: int, needles: tuple[list[str], list[str]]) -> None:
    """Delete the workspace's short-lived button state and guided forms that mention the person, and
    blank the kept answers that do (they have no workspace; there are few: most leave in milliseconds)."""
    words, digits = needles
    for model, columns in ((PendingChoice, ("payload",)), (Conversation, ("form", "values"))):
        for row in await session.scalars(select(model).where(model.workspace_id == workspace_id)):
            text = json.dumps([getattr(row, c) for c in columns], ensure_ascii=False).casefold()
            if _mentions(text, words, digits):
                await session.delete(row)
    for kept in await session.scalars(select(ProcessedUpdate).where(ProcessedUpdate.unanswered.is_not(None))):
        if _mentions(kept.unanswered.casefold(), words, digits):
            kept.unanswered = None


def _mentions(text: str, words: list[str], digits: list[str]) -> bool:
    bare_digits = re.sub(r"\D", "", text)
    return any(w in text for w in words) or any(d in bare_digits for d in digits)


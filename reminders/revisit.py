"""A revisit reminder as delivered: what, whom to call, and the Done / Snooze / Log buttons.

The buttons carry the reminder's and customer's database ids
(handlers.followups.reminder_buttons), so they work on every platform and after
a restart.
"""
from __future__ import annotations

from handlers.cards import customer_label
from handlers.context import Context
from handlers.followups import reminder_buttons
from handlers.messages import Field, Reply
from storage.models import Customer, Reminder


async def revisit_message(ctx: Context, reminder: Reminder, *, late: bool) -> list[Reply] | None:
    """`⏰ Revisit <customer> — <note>` with the phone and last contact; None if the customer is gone."""
    customer = await ctx.session.get(Customer, reminder.customer_id) if reminder.customer_id is not None else None
    if reminder.customer_id is not None and (customer is None or customer.deleted_at is not None):
        return None
    if customer is not None:
        heading = ctx.t("delivery.revisit", customer=customer_label(customer))
    else:
        heading = ctx.t("delivery.reminder", number=reminder.number)
    lines = [ctx.t("delivery.late", when=ctx.fmt_time(reminder.due_at))] if late else []
    lines.append(f"{heading} — {reminder.note}" if reminder.note else heading)
    fields = []
    if customer is not None:
        if customer.phone:
            fields.append(Field(ctx.t("field.phone"), customer.phone))
        fields.append(Field(ctx.t("card.last_contact"), ctx.fmt_time(customer.last_contact_at)))
    return [Reply(text="\n".join(lines), fields=fields, buttons=reminder_buttons(ctx, reminder))]

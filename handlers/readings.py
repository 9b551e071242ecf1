"""How a date the member typed was read, shown beside the reminder it set.

The reply always gives the date, the weekday in words and the time
(`Context.fmt_time`); when the reading chose something the words did not say
(the 1st of 'next month', the Monday of 'next week', 15:00 for '三点'), one more
line says so, and a Move button opens a form to type another time.
"""
from __future__ import annotations

from handlers.context import Context
from handlers.messages import Button
from handlers.parsing import When
from handlers.registry import payload

MOVE_ACTION = "rmov"


def reading_note(ctx: Context, when: When) -> str:
    """'No day was given, so it is the 1st.' / '3:00 was read as 15:00…', or '' when nothing was assumed."""
    local = ctx.local(when.at)
    notes = [ctx.t(f"when.assumed.{key}", time=f"{local:%H:%M}", hour12=f"{local.hour - 12}:{local:%M}")
             for key in when.assumed]
    return " ".join(notes)


def move_button(ctx: Context, reminder_id: int) -> Button:
    """Opens the form to give reminder `reminder_id` another time."""
    return Button(ctx.t("reminder.move_button"), payload(MOVE_ACTION, reminder_id))

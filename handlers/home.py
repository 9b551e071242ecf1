"""My day: what a rep has to do today, on one screen (Slack's App Home tab; /today everywhere).

The heading (with what is due, and buttons that open the add and log forms: a
modal on Slack, the guided flow elsewhere); each reminder due today or
overdue as a reply of its own with Done / Snooze / Log, so a press redraws
only that one (a Telegram message, a part of the Slack message or tab);
customers gone silent, each with Log / Snooze / Lost; the member's latest
logged activity, with a hint. In a chat that is three messages and one per
reminder.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select

from handlers import guided
from handlers.cards import customer_label, shortened
from handlers.context import Context
from handlers.customers import add_form
from handlers.errors import UserError
from handlers.followups import ListView, reminder_buttons, reminder_line, reminder_list, silent_buttons, silent_list
from handlers.interactions import log_form
from handlers.messages import Button, Reply
from handlers.registry import Result, action, command, payload
from storage import followups
from storage.models import Customer, Interaction

HOME_COMMAND = "today"
#: Reminders listed one by one; beyond that, a button opens /reminders.
SHOWN_REMINDERS = 5
#: Pending reminders read to count those due today (more than a rep has in a day).
REMINDERS_READ = 200
SHOWN_SILENT = 5
SHOWN_ACTIVITY = 3
SUMMARY_CHARS = 80


@command(HOME_COMMAND, aliases=("home", "myday", "今天", "我的一天"), menu=False)
async def today(ctx: Context, args: str) -> Result:
    return await my_day(ctx)


async def my_day(ctx: Context) -> list[Reply]:
    due = await _due_today(ctx)
    silent_total = await followups.count_silent_customers(ctx.session, ctx.scope, ctx.me.id, ctx.now)
    summary = ctx.t("home.summary", date=_day(ctx), due=len(due), silent=silent_total)
    heading = Reply(
        title=ctx.t("home.title", name=ctx.me.name or "—"),
        text=summary if due else f"{summary}\n{ctx.t('home.no_due')}",
        buttons=[[Button(ctx.t("home.add"), payload("home", "add"), "primary"),
                  Button(ctx.t("home.log"), payload("home", "log"))]],
    )
    return [heading, *_reminders(ctx, due), await _silent(ctx, silent_total), await _activity(ctx)]


def _day(ctx: Context) -> str:
    local = ctx.local(ctx.now)
    return f"{ctx.t(f'weekday.{local.weekday()}')} {local:%Y-%m-%d}"


def _end_of_today(ctx: Context) -> datetime:
    local = ctx.local(ctx.now)
    return datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=ctx.tz)


async def _due_today(ctx: Context) -> list[followups.PendingReminder]:
    """My pending reminders due before midnight (overdue ones first)."""
    rows = await followups.pending_reminders(ctx.session, ctx.ws.id, ctx.me.id, limit=REMINDERS_READ)
    end = _end_of_today(ctx)
    return [row for row in rows if row.reminder.due_at < end]


def _reminders(ctx: Context, due: list[followups.PendingReminder]) -> list[Reply]:
    """One reply per reminder, so each has its own Done / Snooze / Log."""
    replies = []
    for row in due[:SHOWN_REMINDERS]:
        line = reminder_line(ctx, row.reminder, row.customer)
        if row.reminder.due_at < ctx.now:
            line = f"{ctx.t('home.overdue')} {line}"
        replies.append(Reply(text=line, buttons=reminder_buttons(ctx, row.reminder)))
    if len(due) > SHOWN_REMINDERS:
        replies.append(Reply(text=ctx.t("home.more_due", count=len(due) - SHOWN_REMINDERS),
                             buttons=[[Button(ctx.t("home.all_reminders"), payload("home", "reminders"))]]))
    return replies


async def _silent(ctx: Context, total: int) -> Reply:
    rows = await followups.silent_customers(ctx.session, ctx.scope, ctx.me.id, ctx.now, SHOWN_SILENT)
    buttons = [silent_buttons(ctx, row.customer) for row in rows]
    if total > SHOWN_SILENT:
        buttons.append([Button(ctx.t("home.all_silent", count=total), payload("home", "silent"))])
    return Reply(
        title=ctx.t("home.silent_title", count=total),
        text="" if rows else ctx.t("silent.none_mine"),
        items=[ctx.t("home.silent_row", customer=customer_label(row.customer), days=row.silent_days)
               for row in rows],
        buttons=buttons,
    )


async def _activity(ctx: Context) -> Reply:
    """What I logged last, on customers I can still see, under the hint to log (or how to start)."""
    visible = ctx.scope.customers().with_only_columns(Customer.id)
    rows = await ctx.session.execute(
        select(Interaction, Customer).join(Customer, Customer.id == Interaction.customer_id)
        .where(Interaction.member_id == ctx.me.id, Customer.id.in_(visible))
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(SHOWN_ACTIVITY)
    )
    items = [
        ctx.t("home.activity_row", when=ctx.fmt_time(interaction.occurred_at),
              channel=ctx.t(f"channel.{interaction.channel}"), customer=customer_label(customer),
              summary=shortened(interaction.summary, SUMMARY_CHARS) or "—")
        for interaction, customer in rows
    ]
    return Reply(title=ctx.t("home.activity_title"), text=ctx.t("home.hint" if items else "home.no_activity"),
                 items=items)


@action("home")
async def home_button(ctx: Context, args: list[str]) -> Result:
    """The buttons of "my day": the add or log form, or the whole reminder or silent list."""
    which = args[0] if args else ""
    if which == "add":
        return await guided.start(ctx, add_form(ctx))
    if which == "log":
        return await guided.start(ctx, log_form(ctx, None))
    if which == "reminders":
        return await reminder_list(ctx, ListView(team=False))
    if which == "silent":
        return await silent_list(ctx, ListView(team=False))
    raise UserError("error.choice_expired")

"""The daily silent-customer sweep (SPEC §4): one message per rep, once per cadence period.

The same morning message names the rep's customers whose birthday is within the
workspace's `birthday_days` (today included), for a greeting: the simplest
loyalty habit there is. A rep with only birthdays that day gets only those.

At each workspace's sweep time, one transaction finds every owner's silent
customers (storage.sweep), adds one outbox row per owner who has access (keyed by workspace,
local date and member, so it exists once), marks the customers it names as
nudged, and moves the workspace's next sweep to the next local day: a crash
either does all of it or none. The message is written when it is sent, from the
ids in the row, leaving out customers someone dealt with in the meantime.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from handlers.cards import customer_label
from handlers.context import Context
from handlers.followups import _silent_row, silent_buttons
from handlers.messages import Button, Reply
from handlers.registry import payload
from storage import birthdays, offboarding, schedule, scoring, sweep
from storage.db import Database
from storage.followups import SilentCustomer
from storage.models import Customer, OutboxMessage

KIND = "sweep"


async def sweep_due_workspaces(db: Database, now: datetime) -> int:
    """Sweep every workspace whose sweep time has come (one transaction each); how many."""
    swept = 0
    while True:
        async with db.transaction() as session:
            claimed = await schedule.claim_sweep(session, now)
            if claimed is None:
                return swept
            workspace, due = claimed
            day = schedule.local_date(due, schedule.zone(workspace.timezone))
            gone = await offboarding.without_access(session, workspace.id)
            silent = {rep.member_id: rep for rep in await sweep.sweep_lists(session, workspace, now)}
            soon = await birthdays.coming(session, workspace.id, day, workspace.birthday_days)
            for member_id in sorted(silent.keys() | soon.keys()):
                if member_id in gone:  # their customers stay un-nudged: a restore or a handover gets them
                    continue
                rep = silent.get(member_id)
                named = rep.customer_ids if rep else []
                added = await schedule.enqueue(
                    session, key=f"{KIND}:{workspace.id}:{day}:{member_id}", kind=KIND,
                    workspace_id=workspace.id, member_id=member_id,
                    payload={"customers": named, "total": rep.total if rep else 0,
                             "birthdays": soon.get(member_id, []), "day": day.isoformat()},
                    due_at=due, now=now,
                )
                if added is not None:  # a second sweep the same day (times changed) names nobody
                    await sweep.mark_nudged(session, workspace.id, named, now)
            schedule.advance_sweep(workspace, now)
        swept += 1


async def sweep_message(ctx: Context, row: OutboxMessage, *, late: bool) -> list[Reply] | None:
    """The rep's morning message: silent customers with Log / Snooze / Mark lost each, then the
    birthdays coming up; None if the silent ones were all dealt with and no birthday is near."""
    named: list[int] = list(row.payload.get("customers", []))
    soon = {int(customer_id): int(until) for customer_id, until in row.payload.get("birthdays", [])}
    found = {c.id: c for c in await ctx.session.scalars(
        select(Customer).where(Customer.workspace_id == ctx.ws.id, Customer.id.in_([*named, *soon]),
                               Customer.deleted_at.is_(None), Customer.lost_at.is_(None)))}
    still = [found[i] for i in named if i in found and not _dealt_with(found[i], row.created_at)]
    greet = [found[i] for i in soon if i in found]
    replies = []
    lines = [ctx.t("delivery.late", when=ctx.fmt_time(row.due_at))] if late else []
    if still:
        total = max(len(still), int(row.payload.get("total", len(named))) - (len(named) - len(still)))
        items = [_silent_row(ctx, _silent(ctx, customer), False) for customer in still]
        if total > len(still):
            items.append(ctx.t("sweep.more", count=total - len(still)))
        replies.append(Reply(title=ctx.t("sweep.title", count=total), text="\n".join([*lines, ctx.t("sweep.intro")]),
                             items=items, buttons=[silent_buttons(ctx, customer) for customer in still]))
        lines = []
    if greet:
        replies.append(Reply(
            title=ctx.t("birthdays.title", count=len(greet)), text="\n".join([*lines, ctx.t("birthdays.intro")]),
            items=[ctx.t("birthdays.item", customer=customer_label(c), when=_when(ctx, soon[c.id], c.birthday))
                   for c in greet],
            buttons=[[Button(customer_label(c), payload("show", c.id))] for c in greet]))
    return replies or None


def _when(ctx: Context, until: int, born: date) -> str:
    """`today`, `tomorrow`, `in 3 days`, with the day of the month: when to send the greeting."""
    day = ctx.t("birthdays.day", month=born.month, day=born.day)
    return ctx.t(f"birthdays.in.{min(until, 2)}", days=until, day=day)


def _dealt_with(customer: Customer, swept_at: datetime) -> bool:
    """Contacted or snoozed since the sweep named it."""
    return any(moment is not None and moment > swept_at
               for moment in (customer.last_contact_at, customer.silent_nudged_at))


def _silent(ctx: Context, customer: Customer) -> SilentCustomer:
    since = customer.last_contact_at or customer.created_at
    return SilentCustomer(customer, ctx.me.name, (ctx.now - since).days, scoring.cadence_days(customer, ctx.ws))

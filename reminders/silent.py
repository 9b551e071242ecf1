"""The daily silent-customer sweep (SPEC §4): one message per rep, once per cadence period.

At each workspace's sweep time, one transaction finds every owner's silent
customers (storage.sweep), adds one outbox row per owner who has access (keyed by workspace,
local date and member, so it exists once), marks the customers it names as
nudged, and moves the workspace's next sweep to the next local day: a crash
either does all of it or none. The message is written when it is sent, from the
ids in the row, leaving out customers someone dealt with in the meantime.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from handlers.context import Context
from handlers.followups import _silent_row, silent_buttons
from handlers.messages import Reply
from storage import offboarding, schedule, scoring, sweep
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
            for rep in await sweep.sweep_lists(session, workspace, now):
                if rep.member_id in gone:  # their customers stay un-nudged: a restore or a handover gets them
                    continue
                added = await schedule.enqueue(
                    session, key=f"{KIND}:{workspace.id}:{day}:{rep.member_id}", kind=KIND,
                    workspace_id=workspace.id, member_id=rep.member_id,
                    payload={"customers": rep.customer_ids, "total": rep.total, "day": day.isoformat()},
                    due_at=due, now=now,
                )
                if added is not None:  # a second sweep the same day (times changed) names nobody
                    await sweep.mark_nudged(session, workspace.id, rep.customer_ids, now)
            schedule.advance_sweep(workspace, now)
        swept += 1


async def sweep_message(ctx: Context, row: OutboxMessage, *, late: bool) -> list[Reply] | None:
    """The rep's silent customers with Log / Snooze / Mark lost each; None if all were dealt with."""
    named: list[int] = list(row.payload.get("customers", []))
    found = {c.id: c for c in await ctx.session.scalars(
        select(Customer).where(Customer.workspace_id == ctx.ws.id, Customer.id.in_(named),
                               Customer.deleted_at.is_(None), Customer.lost_at.is_(None)))}
    still = [found[i] for i in named if i in found and not _dealt_with(found[i], row.created_at)]
    if not still:
        return None
    total = max(len(still), int(row.payload.get("total", len(named))) - (len(named) - len(still)))
    lines = [ctx.t("delivery.late", when=ctx.fmt_time(row.due_at))] if late else []
    lines.append(ctx.t("sweep.intro"))
    items = [_silent_row(ctx, _silent(ctx, customer), False) for customer in still]
    if total > len(still):
        items.append(ctx.t("sweep.more", count=total - len(still)))
    return [Reply(title=ctx.t("sweep.title", count=total), text="\n".join(lines), items=items,
                  buttons=[silent_buttons(ctx, customer) for customer in still])]


def _dealt_with(customer: Customer, swept_at: datetime) -> bool:
    """Contacted or snoozed since the sweep named it."""
    return any(moment is not None and moment > swept_at
               for moment in (customer.last_contact_at, customer.silent_nudged_at))


def _silent(ctx: Context, customer: Customer) -> SilentCustomer:
    since = customer.last_contact_at or customer.created_at
    return SilentCustomer(customer, ctx.me.name, (ctx.now - since).days, scoring.cadence_days(customer, ctx.ws))

"""Keeping the customer book straight: /assign, /dupes, /merge, /delete, /restore, /forget, /history.

Destructive commands (merge, delete, forget) only ask: the question stores
what it is about with `ctx.remember`, and the confirm button (`rec:<token>:y`)
re-reads the customers through the member's scope and re-checks access before
anything changes, so a stale or foreign button does nothing. Buttons carry
customer ids, never `#numbers`, which repeat across workspaces.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from sqlalchemy import func, select

from handlers.cards import customer_card, customer_label, field_label
from handlers.context import Context
from handlers.customers import member_named, saved
from handlers.errors import UserError
from handlers.i18n import catalogue
from handlers.lookup import customer_by_id, take_customer
from handlers.messages import Button, Reply
from handlers.paging import PAGE_SIZE, page_buttons
from handlers.parsing import tokenize
from handlers.registry import Result, action, command, payload
from storage import dedupe, merge, records, workspaces
from storage.models import AuditEntry, Customer, Member

#: Where a duplicate reason is worded: the "same person?" reasons of /add, plus one of /dupes.
REASON_KEYS = {"phone": "dupe.phone", "email": "dupe.email", "name": "dupe.name", "same_name": "dupes.same_name"}
#: Audit keys /history does not list as changes: the action says them, or another key shows them.
IMPLIED_KEYS = {"deleted_at", "merged_from", "currency", "entry", "undid"}
#: Audit keys whose values are catalogue words (`channel.call`, `history.status.done`).
WORDED_VALUES = {"channel": "channel", "status": "history.status"}
VALUE_CHARS = 60


# --- /assign ----------------------------------------------------------------------

@command("assign", aliases=("分配", "转交"))
async def assign(ctx: Context, args: str) -> Result:
    customer, rest = await take_customer(ctx, tokenize(args), "assign")
    if not rest:
        raise UserError("error.assign_usage")
    owner_id = await member_named(ctx, " ".join(token.text for token in rest))
    previous = await ctx.session.get(Member, customer.owner_id)
    new = await ctx.session.get(Member, owner_id)
    assert previous is not None and new is not None
    if owner_id == customer.owner_id:
        return Reply(text=ctx.t("assign.already", customer=customer_label(customer), owner=new.name))
    moved = await records.hand_over(ctx.session, customer, owner_id, member_id=ctx.me.id, now=ctx.now)
    await saved(ctx, customer)
    lines = [ctx.t("assign.done", customer=customer_label(customer), old=previous.name, new=new.name)]
    if moved:
        lines.append(ctx.t("assign.reminders", count=moved, new=new.name))
    return Reply(text="\n".join(lines))


# --- /dupes, /merge -----------------------------------------------------------------

@command("dupes", role="manager", aliases=("duplicates", "查重"))
async def dupes(ctx: Context, args: str, page: int = 0) -> Result:
    pairs = await dedupe.likely_duplicates(ctx.session, ctx.ws.id)
    if not pairs:
        return Reply(text=ctx.t("dupes.none"))
    shown = pairs[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    wanted = {record.id for pair in shown for record in (pair.keep, pair.drop)}
    by_id = {c.id: c for c in await ctx.session.scalars(ctx.scope.customers().where(Customer.id.in_(wanted)))}
    text = ctx.t("dupes.count", count=len(pairs))
    if len(pairs) >= dedupe.MAX_PAIRS:
        text += "\n" + ctx.t("dupes.capped", count=dedupe.MAX_PAIRS)
    return Reply(
        text=text,
        items=[
            ctx.t("dupes.pair", keep=customer_label(by_id[p.keep.id]), drop=customer_label(by_id[p.drop.id]),
                  why=ctx.listed([ctx.t(REASON_KEYS[r]) for r in p.reasons]))
            for p in shown
        ],
        buttons=[[Button(ctx.t("dupes.merge_button", keep=p.keep.number, drop=p.drop.number),
                         payload("mgq", p.keep.id, p.drop.id))] for p in shown]
        + await page_buttons(ctx, "dupes", args, page, len(pairs)),
    )


@action("mgq", role="manager")
async def merge_button(ctx: Context, args: list[str]) -> Result:
    """A "Merge #a ← #b" button of /dupes: asks, like /merge #a #b."""
    keep_id, drop_id = (args + ["", ""])[:2]
    return await _ask_merge(ctx, await customer_by_id(ctx, keep_id, "merge"), await customer_by_id(ctx, drop_id, "merge"))


@command("merge", role="manager", aliases=("合并",))
async def merge_command(ctx: Context, args: str) -> Result:
    keep, rest = await take_customer(ctx, tokenize(args), "merge")
    if not rest:
        raise UserError("error.merge_usage")
    drop, rest = await take_customer(ctx, rest, "merge")
    if rest:
        raise UserError("error.merge_usage")
    return await _ask_merge(ctx, keep, drop)


async def _ask_merge(ctx: Context, keep: Customer, drop: Customer) -> Reply:
    if keep.id == drop.id:
        raise UserError("error.merge_self", customer=customer_label(keep))
    moves = _counts(ctx, await merge.related_counts(ctx.session, drop.id))
    text = ctx.t("merge.confirm", keep=customer_label(keep), drop=customer_label(drop), moves=moves,
                 keep_number=keep.number, number=drop.number)
    return await _confirm(ctx, {"op": "merge", "keep": keep.id, "drop": drop.id}, text, ctx.t("merge.yes"))


async def _merge_confirmed(ctx: Context, stored: dict[str, Any]) -> Reply:
    keep = await customer_by_id(ctx, stored["keep"], "merge")
    drop = await customer_by_id(ctx, stored["drop"], "merge")
    workspace_id, drop_id, drop_number = ctx.ws.id, drop.id, drop.number

    def describe(number: int, conflicts: dict[str, str]) -> str:
        values = [f"{field_label(ctx, name)} {value}" for name, value in conflicts.items()]
        return ctx.t("merge.note", number=number, values=ctx.listed(values))

    result = await merge.merge_customers(ctx.session, keep, drop, member_id=ctx.me.id, now=ctx.now, describe=describe)
    ctx.after_commit(lambda: ctx.services.search.note_removed(workspace_id, drop_id))
    await saved(ctx, keep)
    lines = [ctx.t("merge.done", number=drop_number, keep=customer_label(keep), moves=_counts(ctx, result.moved))]
    if result.filled:
        lines.append(ctx.t("merge.filled", fields=ctx.listed([field_label(ctx, name) for name in result.filled])))
    if result.conflicts:
        lines.append(ctx.t("merge.kept_in_prefs", number=drop_number))
    card = await customer_card(ctx, keep, note="\n".join(lines))
    card.edit = True
    return card


def _counts(ctx: Context, counts: dict[str, int]) -> str:
    shown = [ctx.t(f"merge.kind.{kind}", count=count) for kind, count in counts.items() if count]
    return " · ".join(shown) or ctx.t("merge.nothing")


# --- /delete, /restore, /forget -----------------------------------------------------------

@command("delete", role="manager", aliases=("删除",))
async def delete(ctx: Context, args: str) -> Result:
    customer = await _only_customer(ctx, args, "delete")
    text = ctx.t("delete.confirm", customer=customer_label(customer), number=customer.number)
    return await _confirm(ctx, {"op": "delete", "customer": customer.id}, text, ctx.t("delete.yes"))


async def _delete_confirmed(ctx: Context, stored: dict[str, Any]) -> Reply:
    customer = await customer_by_id(ctx, stored["customer"], "delete")
    cancelled = await records.soft_delete(ctx.session, customer, member_id=ctx.me.id, now=ctx.now)
    workspace_id, customer_id = ctx.ws.id, customer.id
    ctx.after_commit(lambda: ctx.services.search.note_removed(workspace_id, customer_id))
    lines = [ctx.t("delete.done", customer=customer_label(customer), number=customer.number)]
    if cancelled:
        lines.append(ctx.t("delete.reminders", count=cancelled))
    return Reply(text="\n".join(lines), edit=True)


@command("restore", role="manager", aliases=("undelete", "恢复"))
async def restore(ctx: Context, args: str) -> Result:
    try:
        customer = await _only_customer(ctx, args, "restore", deleted=True)
    except UserError as problem:
        if problem.key != "error.no_customer":
            raise
        live = await _only_customer(ctx, args, "restore")  # a live one: say so; neither: the first error
        raise UserError("restore.not_deleted", customer=customer_label(live)) from None
    records.restore(ctx.session, customer, member_id=ctx.me.id, now=ctx.now)
    await saved(ctx, customer)
    return await customer_card(ctx, customer, note=ctx.t("restore.done", customer=customer_label(customer)))


@command("forget", role="admin", aliases=("遗忘",))
async def forget(ctx: Context, args: str) -> Result:
    customer, deleted = await _live_or_deleted(ctx, args, "forget")
    text = ctx.t("forget.confirm", customer=customer_label(customer))
    return await _confirm(ctx, {"op": "forget", "customer": customer.id, "deleted": deleted}, text,
                          ctx.t("forget.yes"))


async def _forget_confirmed(ctx: Context, stored: dict[str, Any]) -> Reply:
    customer = await customer_by_id(ctx, stored["customer"], "forget", deleted=stored["deleted"])
    workspace_id, customer_id, number = ctx.ws.id, customer.id, customer.number
    await records.forget(ctx.session, customer, member_id=ctx.me.id, now=ctx.now)
    ctx.after_commit(lambda: ctx.services.search.note_removed(workspace_id, customer_id))
    ctx.erased = True
    return Reply(text=ctx.t("forget.done", number=number), edit=True)


# --- confirmations ------------------------------------------------------------------------

CONFIRMED: dict[str, Callable[[Context, dict[str, Any]], Awaitable[Reply]]] = {
    "merge": _merge_confirmed, "delete": _delete_confirmed, "forget": _forget_confirmed,
}


async def _confirm(ctx: Context, what: dict[str, Any], text: str, yes: str) -> Reply:
    token = await ctx.remember("confirm", what)
    return Reply(text=text, private=True, buttons=[[  # the asker's question, not the channel's
        Button(yes, payload("rec", token, "y"), "danger"),
        Button(ctx.t("common.cancel"), payload("rec", token, "n")),
    ]])


@action("rec", role="manager")
async def confirmed(ctx: Context, args: list[str]) -> Result:
    """The answer to a merge/delete/forget question, from the member who was asked, in their workspace."""
    token, answer = (args + ["", ""])[:2]
    stored = await ctx.recall(token, "confirm", consume=True)
    if answer != "y":
        return Reply(text=ctx.t("common.cancelled"), edit=True)
    return await CONFIRMED[stored["op"]](ctx, stored)


# --- /history ----------------------------------------------------------------------------

@command("history", aliases=("历史",))
async def history(ctx: Context, args: str, page: int = 0) -> Result:
    customer, _ = await _live_or_deleted(ctx, args, "view")
    about = (AuditEntry.workspace_id == ctx.ws.id, AuditEntry.customer_id == customer.id)
    total = await ctx.session.scalar(select(func.count()).select_from(AuditEntry).where(*about)) or 0
    entries = await ctx.session.scalars(
        select(AuditEntry).where(*about).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset(page * PAGE_SIZE).limit(PAGE_SIZE)
    )
    names = {m.id: m.name for m in await workspaces.members(ctx.session, ctx.ws.id)}
    return Reply(
        title=ctx.t("history.title", customer=customer_label(customer)),
        text="" if total else ctx.t("history.none"),
        items=[_history_line(ctx, entry, names) for entry in entries],
        buttons=await page_buttons(ctx, "history", args, page, total),
    )


def _history_line(ctx: Context, entry: AuditEntry, names: dict[int, str]) -> str:
    """`when · who · what — Field: old → new; …`"""
    before, after = entry.before or {}, entry.after or {}
    what = action_label(ctx, entry.action, number=after.get("merged_from", "?"), undid=after.get("undid"))
    who = names.get(entry.member_id, "—") if entry.member_id else "—"
    currency = after.get("currency") or before.get("currency") or ctx.ws.currency  # a removed deal: before only
    old_currency = before.get("currency") or currency  # a corrected deal: `¥15,000 → $15,000`
    changes = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if key in IMPLIED_KEYS or isinstance(old, dict) or isinstance(new, dict) or (_blank(old) and _blank(new)):
            continue
        change, was = shown_value(ctx, key, new, names, currency), shown_value(ctx, key, old, names, old_currency)
        if entry.before is not None and (old != new or was != change):  # an unchanged key says what it was about
            change = f"{was} → {change}"
        changes.append(ctx.t("history.change", field=field_label(ctx, key), change=change))
    line = f"{ctx.fmt_time(entry.at)} · {who} · {what}"
    return f"{line} — {ctx.t('history.change_sep').join(changes)}" if changes else line


def action_label(ctx: Context, action: str, *, number: object = "?", undid: str | None = None) -> str:
    """What an audit entry did, in the member's words (`logged an interaction`, `undid: recorded a deal`)."""
    key = f"history.action.{action}"
    if not _known(key):
        return action
    return ctx.t(key, number=number, action=action_label(ctx, undid) if undid else "?")


def shown_value(ctx: Context, key: str, value: Any, names: dict[int, str], currency: str) -> str:
    """An audited value as people read it: names, money, local times, words in their language."""
    if _blank(value):
        return "—"
    if key == "owner_id":
        return names.get(value, "—")
    if key == "amount_minor":
        return ctx.fmt_money(value, currency)
    if isinstance(value, list):
        return ctx.listed([str(item) for item in value])
    if key in WORDED_VALUES and _known(f"{WORDED_VALUES[key]}.{value}"):
        return ctx.t(f"{WORDED_VALUES[key]}.{value}")
    moment = _moment(value)
    if moment is not None:
        return ctx.fmt_time(moment)
    text = " ".join(str(value).split())
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"


def _moment(value: Any) -> datetime | None:
    """An ISO timestamp as the audit log stores it (`2026-11-18T07:00:00+00:00`), else None."""
    if not isinstance(value, str) or value[10:11] != "T":
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _known(key: str) -> bool:
    return key in catalogue("en")


# --- finding the customer --------------------------------------------------------------------

async def _only_customer(ctx: Context, args: str, action_name: str, *, deleted: bool = False) -> Customer:
    """The one customer `args` names, checked for the action; anything after it is a mistake."""
    customer, rest = await take_customer(ctx, tokenize(args), action_name, deleted=deleted)
    if rest:
        raise UserError("error.one_customer", extra=args[rest[0].start:][:40])
    return customer


async def _live_or_deleted(ctx: Context, args: str, action_name: str) -> tuple[Customer, bool]:
    """A live customer, else a deleted one (forget and history reach both); and whether it is deleted."""
    try:
        return await _only_customer(ctx, args, action_name), False
    except UserError as problem:
        if problem.key != "error.no_customer":
            raise
        return await _only_customer(ctx, args, action_name, deleted=True), True

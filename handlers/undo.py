"""/undo: the member takes back their own last change to a customer (storage.undo says which).

The reply names exactly what was undone, and how the customer's tier, stage and
auto tags moved back; a refusal says why, and changes nothing.
"""
from __future__ import annotations

from typing import Any

from handlers.cards import customer_label, entry_label, field_label, stars
from handlers.context import Context
from handlers.customers import saved
from handlers.errors import UserError
from handlers.interactions import derived, derived_after, derived_fields, echo
from handlers.messages import Reply
from handlers.records import action_label, shown_value
from handlers.registry import Result, command
from storage import entries, undo, workspaces
from storage.models import AuditEntry, Customer


@command("undo", aliases=("撤销", "撤回"))
async def undo_command(ctx: Context, args: str) -> Result:
    if args.strip():
        raise UserError("error.undo_no_arguments")
    try:
        plan = await undo.check(ctx.session, ctx.scope, now=ctx.now)
        customer = plan.customer
        before = derived(customer)
        await undo.apply(ctx.session, ctx.scope, plan, now=ctx.now)
    except undo.Refused as refusal:
        raise await _refusal(ctx, refusal) from None
    names = {m.id: m.name for m in await workspaces.members(ctx.session, ctx.ws.id)}
    lines = [await _undone_line(ctx, customer, entry, names) for entry in plan.entries]
    if "add" in plan.actions:
        workspace_id, customer_id = ctx.ws.id, customer.id
        ctx.after_commit(lambda: ctx.services.search.note_removed(workspace_id, customer_id))
        return Reply(text="\n".join(lines))
    refreshed = await saved(ctx, customer, purchases_changed=any(action.startswith("deal") for action in plan.actions))
    return Reply(text="\n".join(lines), fields=derived_fields(ctx, before, derived_after(customer, refreshed)))


async def _undone_line(ctx: Context, customer: Customer, entry: AuditEntry, names: dict[int, str]) -> str:
    """What one audit entry of the change was, now taken back, in the member's words."""
    before, after = entry.before or {}, entry.after or {}
    label = customer_label(customer)
    if entry.action == "log":
        return ctx.t("undo.done.log", customer=label, channel=ctx.t(f"channel.{after['channel']}"),
                     summary=echo(after.get("summary", "")))
    if entry.action == "deal":
        return ctx.t("undo.done.deal", customer=label, amount=ctx.fmt_money(after["amount_minor"], after["currency"]))
    if entry.action == "feedback":
        return ctx.t("undo.done.feedback", customer=label, stars=stars(after["score"]))
    if entry.action == "tag":
        tags = " ".join(f"#{name}" for name in before.get("tags", [])) or "—"
        return ctx.t("undo.done.tag", customer=label, tags=tags)
    if entry.action == "remind":
        return ctx.t("undo.done.remind", customer=label, number=after.get("reminder", "?"))
    if entry.action == "add":
        return ctx.t("undo.done.add", customer=label)
    currency = after.get("currency") or before.get("currency") or ctx.ws.currency

    def back(key: str) -> str:
        was, now = (shown_value(ctx, key, values.get(key), names, currency) for values in (after, before))
        return ctx.t("history.change", field=field_label(ctx, key), change=f"{was} → {now}")

    changes = ctx.t("history.change_sep").join(back(key) for key in after if key not in ("entry", "currency"))
    if entry.action == "edit":
        return ctx.t("undo.done.edit", customer=label, changes=changes)
    kind = entry.action.removesuffix("_edit")
    row = await ctx.session.get(entries.MODELS[kind], after["entry"])
    number = await entries.number_of(ctx.session, row)
    return ctx.t("undo.done.entry_edit", entry=entry_label(ctx, kind, number), customer=label, changes=changes)


async def _refusal(ctx: Context, refusal: undo.Refused) -> UserError:
    """The refusal in the member's words: what the last change was, and why it stays."""
    details = refusal.details
    entry: AuditEntry | None = details.get("entry")
    if entry is None:
        return UserError(f"undo.{refusal.reason}")
    customer = await ctx.session.scalar(ctx.scope.customers().where(Customer.id == entry.customer_id)) \
        or await ctx.session.scalar(ctx.scope.customers(deleted=True).where(Customer.id == entry.customer_id))
    what = action_label(ctx, entry.action, number=(entry.after or {}).get("merged_from", "?"),
                        undid=(entry.after or {}).get("undid"))
    params: dict[str, Any] = {"what": what, "customer": customer_label(customer) if customer else "—",
                              "when": ctx.fmt_time(entry.at)}
    if refusal.reason == "too_old":
        params["minutes"] = details["minutes"]
    if refusal.reason == "someone_else":
        names = {m.id: m.name for m in await workspaces.members(ctx.session, ctx.ws.id)}
        params["who"] = names.get(details.get("member_id"), ctx.t("undo.someone"))
    return UserError(f"undo.{refusal.reason}", **params)

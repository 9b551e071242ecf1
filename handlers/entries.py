"""/entry: correct or remove one interaction, deal or feedback by its number on the card.

    /entry <customer> log 3                    show it, with Edit / Delete
    /entry <customer> log 3 call: new summary  change it, in /log's words
    /entry <customer> deal 1 1500 [note]       … in /deal's words
    /entry <customer> feedback 1 4 [comment]   … in /feedback's words
    /entry <customer> deal 1 delete            ask, then remove it

The card's Edit button opens the same correction as a form (a Slack modal with
the values filled in, a guided flow elsewhere, where each question says what
the entry holds now and Skip keeps it). Whoever recorded an entry may change
it, a manager any (`Scope.may_change_entry`). Removing asks first like
/delete: the question is remembered with `ctx.remember`, the buttons carry the
customer's and the entry's ids, and the confirmation reads the entry and its
customer again through the member's scope. Every change refreshes the
customer, so tier, stage and auto tags follow at once.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from handlers import guided
from handlers.cards import (card_buttons, customer_label, entry_buttons, entry_label, entry_line, field_label, shortened,
                            stars)
from handlers.context import Context
from handlers.customers import saved
from handlers.deals import read_amount, read_score
from handlers.errors import UserError
from handlers.interactions import (MAX_TEXT, channel_named, derived, derived_after, derived_fields, free_text,
                                   read_channel)
from handlers.lookup import take_customer
from handlers.messages import Button, Form, FormField, FormSubmission, Reply
from handlers.parsing import CHANNELS, Token, parse_amount, tokenize
from handlers.records import shown_value
from handlers.registry import Result, action, button_number, command, form, payload
from storage import entries, workspaces
from storage.deals import SCORES
from storage.models import Customer

#: The kind words /entry takes, in both languages.
KIND_WORDS = {"log": "log", "interaction": "log", "记录": "log", "互动": "log",
              "deal": "deal", "成交": "deal", "订单": "deal",
              "feedback": "feedback", "反馈": "feedback", "评价": "feedback"}
DELETE_WORDS = {"delete", "remove", "删除", "删掉"}


@command("entry", aliases=("条目", "更正"))
async def entry_command(ctx: Context, args: str) -> Result:
    tokens = tokenize(args)
    at = _kind_at(tokens)
    customer, extra = await take_customer(ctx, tokens[:at] if at else tokens, "view")
    if not at or extra:
        raise UserError("error.entry_usage")
    kind, number = KIND_WORDS[tokens[at].text.casefold()], int(tokens[at + 1].text.lstrip("#"))
    row = await entries.numbered(ctx.session, kind, customer.id, number)
    label = entry_label(ctx, kind, number)
    if row is None:
        raise UserError("entry.none", entry=label, customer=customer_label(customer))
    _require_author(ctx, customer, row, label)
    what = tokens[at + 2:]
    if not what:
        return Reply(text=entry_line(ctx, row, label), buttons=[entry_buttons(ctx, row, label)])
    if len(what) == 1 and what[0].text.casefold() in DELETE_WORDS:
        return await _ask_delete(ctx, customer, row, label)
    return await _change(ctx, customer, row, label, _new_values(ctx, kind, args, what))


def _kind_at(tokens: list[Token]) -> int:
    """Where `<kind> <number>` follows the customer (0: nowhere): the first such pair after the first word,
    so a customer's name of several words stays whole and the amount after the number is not read as a phone."""
    for i in range(1, len(tokens) - 1):
        if not tokens[i].quoted and tokens[i].text.casefold() in KIND_WORDS \
                and button_number(tokens[i + 1].text.lstrip("#")) is not None:
            return i
    return 0


def _new_values(ctx: Context, kind: str, text: str, tokens: list[Token]) -> dict[str, Any]:
    """What the words after the number change, read like the command that recorded the entry;
    a part left out stays as it is (`deal 1 1500` keeps the note)."""
    if kind == "log":
        channel, summary = read_channel(text, tokens)
        values = {"channel": channel} if channel else {}
        if summary:
            values["summary"] = ctx.as_typed(summary)
        return values
    if kind == "deal":
        money, used = read_amount(tokens, ctx.ws.currency)
        note = ctx.as_typed(free_text(text, tokens[used:]))
        return {"amount_minor": money.minor, "currency": money.currency} | ({"note": note} if note else {})
    score = read_score(tokens[0].text) if not tokens[0].quoted else None
    if score is None:
        raise UserError("error.entry_score")
    comment = ctx.as_typed(free_text(text, tokens[1:]))
    return {"score": score} | ({"comment": comment} if comment else {})


async def _change(ctx: Context, customer: Customer, row: entries.Entry, label: str, values: dict[str, Any]) -> Reply:
    before_values = entries.snapshot(row)
    before = derived(customer)
    changed = entries.change(ctx.session, row, values, member_id=ctx.me.id, now=ctx.now)
    if not changed:
        return Reply(text=ctx.t("entry.unchanged", entry=label, customer=customer_label(customer)))
    refreshed = await saved(ctx, customer, purchases_changed=entries.kind_of(row) == "deal")
    names = {m.id: m.name for m in await workspaces.members(ctx.session, ctx.ws.id)}
    after_values = entries.snapshot(row)

    def shown(values: dict[str, Any], key: str) -> str:
        if key == "amount_minor":  # with its own currency: `¥12,000 → 300 USD`
            return ctx.fmt_money(values["amount_minor"], values["currency"])
        return shown_value(ctx, key, values[key], names, ctx.ws.currency)

    keys = dict.fromkeys("amount_minor" if key == "currency" else key for key in changed)
    changes = [ctx.t("history.change", field=field_label(ctx, key),
                     change=f"{shown(before_values, key)} → {shown(after_values, key)}") for key in keys]
    text = ctx.t("entry.changed", entry=label, customer=customer_label(customer),
                 changes=ctx.t("history.change_sep").join(changes))
    return Reply(text=text, fields=derived_fields(ctx, before, derived_after(customer, refreshed)),
                 buttons=[card_buttons(ctx, customer)])


# --- the card's buttons and the delete question ------------------------------------------------

@action("eedit")
async def edit_button(ctx: Context, args: list[str]) -> Result:
    """Edit on the card: the entry's correction form, its current values filled in."""
    customer, row, label = await _entry_by_id(ctx, args)
    return await guided.start(ctx, entry_form(ctx, customer, row, label))


def entry_form(ctx: Context, customer: Customer, row: entries.Entry, label: str) -> Form:
    """What an entry holds, one field each; a field left empty (or skipped) keeps its value."""
    kind = entries.kind_of(row)

    def now(value: str) -> str:
        return ctx.t("form.entry.now", value=shortened(value, 80) if value else "—")

    if kind == "log":
        fields = (
            FormField("channel", ctx.t("form.log.channel"), initial=row.channel,
                      hint=now(ctx.t(f"channel.{row.channel}")),
                      options=tuple((c, ctx.t(f"channel.{c}")) for c in CHANNELS)),
            FormField("summary", ctx.t("form.log.summary"), multiline=True, initial=row.summary, hint=now(row.summary)),
        )
    elif kind == "deal":
        amount = ctx.fmt_money(row.amount_minor, row.currency)
        fields = (FormField("amount", ctx.t("form.entry.amount"), initial=amount, hint=now(amount)),
                  FormField("note", ctx.t("form.entry.note"), multiline=True, initial=row.note, hint=now(row.note)))
    else:
        fields = (FormField("score", ctx.t("form.entry.score"), initial=str(row.score), hint=now(stars(row.score)),
                            options=tuple((str(n), stars(n)) for n in SCORES)),
                  FormField("comment", ctx.t("form.entry.comment"), multiline=True, initial=row.comment,
                            hint=now(row.comment)))
    return Form(name="entry", title=ctx.t("form.entry.title", entry=label, customer=customer.name[:40]),
                fields=fields, submit_label=ctx.t("form.save"),
                context={"customer": str(customer.id), "kind": kind, "id": str(row.id)})


def _form_value(ctx: Context, key: str, value: str) -> dict[str, Any]:
    """The column values one answer of the form stands for (none when left empty); `UserError` if wrong."""
    if not value:
        return {}
    if len(value) > MAX_TEXT:
        raise UserError("error.activity_too_long", limit=MAX_TEXT)
    if key == "channel":
        channel = channel_named(ctx, value)
        if channel is None:
            raise UserError("form.log.pick_channel")
        return {"channel": channel}
    if key == "amount":
        money = parse_amount(value, ctx.ws.currency)
        return {"amount_minor": money.minor, "currency": money.currency}
    if key == "score":
        score = read_score(value)
        if score is None:
            raise UserError("error.entry_score")
        return {"score": score}
    return {key: value}  # summary, note, comment


async def check_entry_answer(ctx: Context, key: str, value: str) -> str | None:
    try:
        _form_value(ctx, key, value.strip())
    except UserError as problem:
        return ctx.t(problem.key, **problem.params)
    return None


@form("entry", check=check_entry_answer)
async def submit_entry(ctx: Context, submission: FormSubmission) -> Result:
    """The correction form: every answer checked (each error beside its field), then saved like /entry."""
    context = submission.context
    customer, row, label = await _entry_by_id(ctx, [context.get("customer", ""), context.get("kind", ""),
                                                    context.get("id", "")])
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in submission.values.items():
        try:
            values |= _form_value(ctx, key, (value or "").strip())
        except UserError as problem:
            errors[key] = ctx.t(problem.key, **problem.params)
    if errors:
        return Reply(form_errors=errors)
    return await _change(ctx, customer, row, label, values)


@action("edel")
async def delete_button(ctx: Context, args: list[str]) -> Result:
    customer, row, label = await _entry_by_id(ctx, args)
    return await _ask_delete(ctx, customer, row, label)


async def _ask_delete(ctx: Context, customer: Customer, row: entries.Entry, label: str) -> Reply:
    token = await ctx.remember("entry", {"customer": customer.id, "kind": entries.kind_of(row), "id": row.id})
    text = ctx.t("entry.delete_confirm", entry=label, customer=customer_label(customer),
                 what=entry_line(ctx, row, label))
    return Reply(text=text, private=True, buttons=[[
        Button(ctx.t("entry.delete_yes"), payload("edc", token, "y"), "danger"),
        Button(ctx.t("common.cancel"), payload("edc", token, "n")),
    ]])


@action("edc")
async def delete_confirmed(ctx: Context, args: list[str]) -> Result:
    """The answer to "remove this entry?", from the member who was asked; access is checked again."""
    token, answer = (args + ["", ""])[:2]
    stored = await ctx.recall(token, "entry", consume=True)
    if answer != "y":
        return Reply(text=ctx.t("common.cancelled"), edit=True)
    customer, row, label = await _entry_by_id(ctx, [str(stored["customer"]), stored["kind"], str(stored["id"])])
    before = derived(customer)
    summary = entry_line(ctx, row, label)
    kind = entries.kind_of(row)
    await entries.remove(ctx.session, row, member_id=ctx.me.id, now=ctx.now)
    refreshed = await saved(ctx, customer, purchases_changed=kind == "deal")
    return Reply(text=ctx.t("entry.deleted", entry=label, customer=customer_label(customer), what=summary),
                 fields=derived_fields(ctx, before, derived_after(customer, refreshed)), edit=True)


# --- finding and describing an entry ---------------------------------------------------------

async def _entry_by_id(ctx: Context, args: list[str]) -> tuple[Customer, entries.Entry, str]:
    """The entry a button names, with its customer and label, only if this member may change it;
    an id of another book, a hidden customer or a removed entry is just an expired button."""
    raw_customer, kind, raw_id = (args + ["", "", ""])[:3]
    customer_id, row_id, model = button_number(raw_customer), button_number(raw_id), entries.MODELS.get(kind)
    customer = row = None
    if customer_id is not None:
        customer = await ctx.session.scalar(ctx.scope.customers().where(Customer.id == customer_id))
    if customer is not None and model is not None and row_id is not None:
        row = await ctx.session.scalar(select(model).where(model.id == row_id, model.customer_id == customer.id))
    if row is None or customer is None:
        raise UserError("error.choice_expired")
    label = entry_label(ctx, kind, await entries.number_of(ctx.session, row))
    _require_author(ctx, customer, row, label)
    return customer, row, label


def _require_author(ctx: Context, customer: Customer, row: entries.Entry, label: str) -> None:
    if not ctx.scope.may_change_entry(customer, row.member_id):
        raise UserError("entry.not_yours", entry=label)

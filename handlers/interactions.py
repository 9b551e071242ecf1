"""/log, its form and the card's Log button; and what every activity command shares.

Shared by /log, /deal, /feedback and /tag: the customer behind a button or a
form's context, the `at:` and `next:` clauses, free text, and showing how an
event moved the customer's derived data (tier, LTV, stage, auto tags).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from handlers import guided
from handlers.cards import card_buttons, customer_label
from handlers.context import Context
from handlers.customers import saved
from handlers.errors import UserError
from handlers.lookup import NeedChoice, customer_by_id, find_customer, take_customer
from handlers.messages import Button, Field, Form, FormField, FormSubmission, Reply
from handlers.parsing import CHANNELS, Token, When, parse_channel, parse_when, split_clauses, split_when, tokenize
from handlers.readings import move_button, reading_note
from handlers.registry import Result, action, command, form
from storage import followups, interactions
from storage.models import Customer
from storage.scoring import Refreshed

#: Longest summary, note or comment a command accepts (a chat message, not a document).
MAX_TEXT = 2000
#: How much of a summary, note or comment the confirmation repeats.
ECHO = 80
_CHANNEL_COLON = re.compile(r"([^\s:]+)\s*:")


# --- shared by the activity commands ---------------------------------------------------

def free_text(text: str, tokens: list[Token]) -> str:
    """The text as typed from the first of `tokens` on, refused when over `MAX_TEXT`."""
    rest = text[tokens[0].start:].strip() if tokens else ""
    if len(rest) > MAX_TEXT:
        raise UserError("error.activity_too_long", limit=MAX_TEXT)
    return rest


def back_dated(ctx: Context, clauses: dict[str, str]) -> datetime:
    """When it happened: `at: <when>` read as a past moment, else now; a future `at:` is refused."""
    if "at" not in clauses:
        return ctx.now
    moment = parse_when(clauses["at"], now=ctx.now, tz=ctx.tz, past=True).at
    if moment > ctx.now:
        raise UserError("error.activity_at_future", text=clauses["at"][:40])
    return moment


@dataclass(frozen=True)
class FollowUp:
    """A `next:` clause: when, and the words after the date, which become the reminder's note."""

    when: When
    note: str = ""


def next_followup(ctx: Context, clauses: dict[str, str]) -> FollowUp | None:
    """The `next: <when> [note]` follow-up, which must not be in the past.

    `next: friday bring samples` is friday with the note 'bring samples'; only a
    clause that does not start with a date is an error, and the error names it.
    """
    if "next" not in clauses:
        return None
    when, note = split_when(clauses["next"], now=ctx.now, tz=ctx.tz)
    if when.at < ctx.now:
        raise UserError("error.activity_next_past", text=clauses["next"][:40])
    return FollowUp(when, ctx.as_typed(note) if note else "")


def echo(text: str) -> str:
    """A short quote of what the member typed, for the confirmation."""
    return f"“{text[:ECHO]}{'…' if len(text) > ECHO else ''}”"


async def plan_followup(ctx: Context, customer: Customer, follow_up: FollowUp, summary: str) -> tuple[str, Button]:
    """A revisit reminder for the member (its note: the words after the date, else the summary);
    the lines that tell them, and the button that moves it."""
    when = follow_up.when
    reminder = await followups.create_reminder(
        ctx.session, ctx.ws, member_id=ctx.me.id, created_by=ctx.me.id, customer_id=customer.id,
        due_at=when.at, explicit_time=when.explicit_time, note=follow_up.note or summary, now=ctx.now,
    )
    lines = [ctx.t("activity.next", when=ctx.fmt_time(when.at), number=reminder.number),
             follow_up.note and ctx.t("activity.next_note", note=echo(follow_up.note)), reading_note(ctx, when)]
    return "\n".join(filter(None, lines)), move_button(ctx, reminder.id)


@dataclass(frozen=True)
class Derived:
    """A customer's derived data at one moment, to show what an event changed; after the event, also
    the auto tags it gained and lost."""

    stage: str
    tier: str | None
    ltv_minor: int | None
    gained: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


def derived(customer: Customer) -> Derived:
    return Derived(customer.stage, customer.tier, customer.ltv_minor)


def derived_after(customer: Customer, refreshed: Refreshed) -> Derived:
    """The derived data after `saved()`: the refresh gave the customer its new values and said which
    auto tags moved (what its statements returned), so neither is read again."""
    return Derived(customer.stage, customer.tier, customer.ltv_minor,
                   tuple(sorted(refreshed.gained.get(customer.id, ()))), tuple(sorted(refreshed.lost.get(customer.id, ()))))


def derived_fields(ctx: Context, before: Derived, after: Derived, *, always: tuple[str, ...] = ()) -> list[Field]:
    """`old → new` for each derived value that changed; those named in `always` also when unchanged."""
    shown = {
        "tier": (ctx.t("card.tier"), lambda d: ctx.t(f"tier.{d.tier}") if d.tier else "—"),
        "ltv": (ctx.t("card.ltv"),
                lambda d: "—" if d.ltv_minor is None else ctx.fmt_money(d.ltv_minor, ctx.ws.currency)),
        "stage": (ctx.t("card.stage"), lambda d: ctx.t(f"stage.{d.stage}")),
    }
    fields = []
    for key, (label, show) in shown.items():
        old, new = show(before), show(after)
        if old != new:
            fields.append(Field(label, f"{old} → {new}"))
        elif key in always:
            fields.append(Field(label, new))
    gained = [f"+{ctx.t(f'autotag.{t}')}" for t in after.gained]
    lost = [f"−{ctx.t(f'autotag.{t}')}" for t in after.lost]
    if gained or lost:
        fields.append(Field(ctx.t("card.auto_tags"), " ".join(gained + lost)))
    return fields


# --- /log -------------------------------------------------------------------------------

def read_channel(text: str, tokens: list[Token]) -> tuple[str | None, str]:
    """(channel, summary) from the words after the customer.

    `call: …` / `电话：…` always names the channel; a bare channel word only when
    more text follows it (`/log 李伟 电话 聊了报价`), so `/log 李伟 call` stays a note.
    """
    summary = free_text(text, tokens)
    if not tokens or tokens[0].quoted:
        return None, summary
    if (colon := _CHANNEL_COLON.match(summary)) and (channel := parse_channel(colon[1])):
        return channel, summary[colon.end():].strip()
    if len(tokens) > 1 and (channel := parse_channel(tokens[0].text)):
        return channel, free_text(text, tokens[1:])
    return None, summary


@command("log", aliases=("记录",))
async def log(ctx: Context, args: str) -> Result:
    if not args:
        return await guided.start(ctx, log_form(ctx, None))
    body, clauses = split_clauses(args)
    occurred_at, follow_up = back_dated(ctx, clauses), next_followup(ctx, clauses)
    customer, rest = await take_customer(ctx, tokenize(body), "log")
    channel, summary = read_channel(body, rest)
    summary = ctx.as_typed(summary)
    if channel is None and not summary:
        raise UserError("error.log_usage")
    return await save_log(ctx, customer, channel=channel or "note", summary=summary,
                          occurred_at=occurred_at, follow_up=follow_up)


async def save_log(
    ctx: Context, customer: Customer, *, channel: str, summary: str, occurred_at: datetime,
    follow_up: FollowUp | None,
) -> Reply:
    """Record the interaction (and the next follow-up), refresh the customer, confirm."""
    before = derived(customer)
    await interactions.add_interaction(ctx.session, customer, member_id=ctx.me.id, channel=channel,
                                       summary=summary, occurred_at=occurred_at, now=ctx.now)
    lines = [ctx.t("log.saved", customer=customer_label(customer), channel=ctx.t(f"channel.{channel}"),
                   when=ctx.fmt_time(occurred_at))]
    if summary:
        lines.append(echo(summary))
    buttons = [card_buttons(ctx, customer)]
    if follow_up is not None:
        planned, move = await plan_followup(ctx, customer, follow_up, summary)
        lines.append(planned)
        buttons.append([move])
    refreshed = await saved(ctx, customer, purchases_changed=False)
    return Reply(text="\n".join(lines), fields=derived_fields(ctx, before, derived_after(customer, refreshed)),
                 buttons=buttons)


# --- the Log form (Slack modal, guided flow elsewhere) -------------------------------------

def log_form(ctx: Context, customer: Customer | None) -> Form:
    """Channel, summary and next follow-up; also which customer when none is given."""
    fields = [] if customer else [
        FormField("customer", ctx.t("form.log.customer"), required=True, hint=ctx.t("form.log.customer_hint"))]
    fields += [
        FormField("channel", ctx.t("form.log.channel"), options=tuple((c, ctx.t(f"channel.{c}")) for c in CHANNELS)),
        FormField("summary", ctx.t("form.log.summary"), required=True, multiline=True,
                  hint=ctx.t("form.log.summary_hint")),
        FormField("next", ctx.t("card.next_followup"), hint=ctx.t("form.log.next_hint")),
    ]
    return Form(
        name="log",
        title=ctx.t("form.log.title_for", customer=customer.name[:40]) if customer else ctx.t("form.log.title"),
        fields=tuple(fields),
        submit_label=ctx.t("form.save"),
        context={"customer_id": str(customer.id)} if customer else {},
    )


@action("flog")
async def log_button(ctx: Context, args: list[str]) -> Result:
    customer = await customer_by_id(ctx, args[0] if args else "", "log")
    return await guided.start(ctx, log_form(ctx, customer))


def channel_named(ctx: Context, text: str) -> str | None:
    """A channel from a form: its key, a channel word, or its label in the member's language."""
    if not text:
        return "note"
    labels = {ctx.t(f"channel.{c}").casefold(): c for c in CHANNELS}
    return text if text in CHANNELS else parse_channel(text) or labels.get(text.casefold())


async def check_log_answer(ctx: Context, key: str, value: str) -> str | None:
    """One answer of the Log form: the same checks as `submit_log`, field by field."""
    errors: dict[str, str] = {}
    if key == "customer":
        await _form_customer(ctx, FormSubmission("log", {"customer": value}, {}), errors)
    elif key == "summary" and len(value) > MAX_TEXT:
        errors[key] = ctx.t("error.activity_too_long", limit=MAX_TEXT)
    elif key == "next":
        try:
            next_followup(ctx, {"next": value})
        except UserError as problem:
            errors[key] = ctx.t(problem.key, **problem.params)
    return errors.get(key)


async def _form_customer(ctx: Context, submission: FormSubmission, errors: dict[str, str]) -> Customer | None:
    if "customer_id" in submission.context:
        return await customer_by_id(ctx, submission.context["customer_id"], "log")
    ref = submission.values.get("customer", "").strip()
    if not ref:
        errors["customer"] = ctx.t("guided.required")
        return None
    try:
        customer = await find_customer(ctx, Token(ref, False, 0, len(ref)))
    except UserError as problem:
        errors["customer"] = ctx.t(problem.key, **problem.params)
        return None
    except NeedChoice:
        errors["customer"] = ctx.t("form.log.be_specific", ref=ref[:40])
        return None
    ctx.scope.require("log", customer)
    return customer


@form("log", check=check_log_answer)
async def submit_log(ctx: Context, submission: FormSubmission) -> Result:
    """Check every field at once (each error beside its field), then save like /log."""
    values = {key: (value or "").strip() for key, value in submission.values.items()}
    errors: dict[str, str] = {}
    customer = await _form_customer(ctx, submission, errors)
    channel = channel_named(ctx, values.get("channel", ""))
    if channel is None:
        errors["channel"] = ctx.t("form.log.pick_channel")
    summary = values.get("summary", "")
    if not summary:
        errors["summary"] = ctx.t("guided.required")
    elif len(summary) > MAX_TEXT:
        errors["summary"] = ctx.t("error.activity_too_long", limit=MAX_TEXT)
    follow_up = None
    try:
        follow_up = next_followup(ctx, {"next": values["next"]} if values.get("next") else {})
    except UserError as problem:
        errors["next"] = ctx.t(problem.key, **problem.params)
    if errors or customer is None or channel is None:
        return Reply(form_errors=errors)
    return await save_log(ctx, customer, channel=channel, summary=summary, occurred_at=ctx.now, follow_up=follow_up)

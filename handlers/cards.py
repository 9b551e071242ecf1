"""The customer card: everything /show promises, in one reply with Log / Remind / Tag."""
from __future__ import annotations

from sqlalchemy import bindparam, func, select

from handlers.context import Context
from handlers.i18n import catalogue
from handlers.messages import Button, Field, Reply
from handlers.registry import payload
from storage import entries
from storage.customers import missing_fields
from storage.models import Customer, CustomerTag, Feedback, Interaction, Member, Purchase
from storage.prepared import Prepared
from storage.scoring import AUTO_TAGS

LAST_INTERACTIONS = 5
#: An interaction's summary on the card, in characters: five whole notes could fill several messages.
CARD_SUMMARY_CHARS = 200
_BASIC = ("company", "title", "phone", "email", "address", "region", "industry", "size", "gender", "source")


def shortened(text: str, limit: int) -> str:
    """Free text as one line of at most `limit` characters, "…" where it was cut."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def customer_label(customer: Customer) -> str:
    """`#12 李伟 · Acme`: how a customer is named in lists and buttons."""
    company = f" · {customer.company}" if customer.company else ""
    return f"#{customer.number} {customer.name}{company}"[:60]


async def customer_card(ctx: Context, customer: Customer, *, note: str = "", new: bool = False) -> Reply:
    """The customer's card. `new`: added in this transaction, so it has no log, deal or feedback to read."""
    fields = [Field(ctx.t(f"field.{name}"), str(getattr(customer, name)))
              for name in _BASIC if getattr(customer, name)]
    if customer.birthday:
        fields.append(Field(ctx.t("field.birthday"), customer.birthday.isoformat()))
    owner = await ctx.session.get(Member, customer.owner_id)
    fields.append(Field(ctx.t("field.owner"), owner.name if owner else "—"))
    manual, auto = await tags_of(ctx, customer.id)
    if manual:
        fields.append(Field(ctx.t("card.tags"), " ".join(f"#{t}" for t in manual)))
    if auto:
        fields.append(Field(ctx.t("card.auto_tags"), " ".join(ctx.t(f"autotag.{t}") for t in auto)))
    fields.append(Field(ctx.t("card.stage"), ctx.t(f"stage.{customer.stage}")))
    if customer.tier:
        fields.append(Field(ctx.t("card.tier"), ctx.t(f"tier.{customer.tier}")))
    if customer.ltv_minor is not None:
        fields.append(Field(ctx.t("card.ltv"), ctx.fmt_money(customer.ltv_minor, ctx.ws.currency)))
    fields.append(Field(ctx.t("card.last_contact"), ctx.fmt_time(customer.last_contact_at)))
    fields.append(Field(ctx.t("card.next_followup"), ctx.fmt_time(customer.next_followup_at)))
    deals = "" if new else await deal_totals(ctx, customer.id)
    if deals:
        fields.append(Field(ctx.t("card.deals"), deals))
    latest = {kind: None if new else await entries.latest(ctx.session, kind, customer.id) for kind in entries.MODELS}
    for kind, key in (("deal", "card.latest_deal"), ("feedback", "card.feedback")):
        if latest[kind]:
            row, number = latest[kind]
            fields.append(Field(ctx.t(key), entry_line(ctx, row, entry_label(ctx, kind, number))))
    if customer.prefs:
        fields.append(Field(ctx.t("field.prefs"), customer.prefs))
    lines = [note] if note else []
    missing = missing_fields(customer)
    if missing:
        lines.append(ctx.t("card.missing", fields=ctx.listed(ctx.t(f"field.{m}") for m in missing)))
    return Reply(
        title=f"#{customer.number} {customer.name}",
        text="\n".join(lines),
        fields=fields,
        items=[] if new else await recent_interactions(ctx, customer.id),
        buttons=[card_buttons(ctx, customer)] + [entry_buttons(ctx, found[0], entry_label(ctx, kind, found[1]))
                                                 for kind, found in latest.items() if found],
    )


def entry_label(ctx: Context, kind: str, number: int) -> str:
    """How an entry is numbered on the card: `log 3`, `deal 1`, `记录 3`, `反馈 1`."""
    return ctx.t(f"entry.label.{kind}", number=number)


def entry_buttons(ctx: Context, row: entries.Entry, label: str) -> list[Button]:
    """Edit / Delete for one entry (handlers.entries); the buttons carry its customer's id (which book
    it is in, handlers.identity), its kind and its id, all checked again when pressed."""
    where = (row.customer_id, entries.kind_of(row), row.id)
    return [Button(ctx.t("button.entry_edit", entry=label), payload("eedit", *where)),
            Button(ctx.t("button.entry_delete", entry=label), payload("edel", *where), "danger")]


def auto_tag_labels(ctx: Context) -> str:
    """The auto tags as the member reads them (`重要客户、新客户、…` or `vip, new, …`)."""
    return ctx.listed(ctx.t(f"autotag.{name}") for name in AUTO_TAGS)


def card_buttons(ctx: Context, customer: Customer) -> list[Button]:
    return [
        Button(ctx.t("button.log"), payload("flog", customer.id), "primary"),
        Button(ctx.t("button.remind"), payload("frem", customer.id)),
        Button(ctx.t("button.tag"), payload("ftag", customer.id)),
    ]


# The card's reads, built once with the customer bound at execution: a statement built per call
# costs its building and its cache key on every card.
_TAGS = Prepared(select(CustomerTag.name, CustomerTag.auto).where(CustomerTag.customer_id == bindparam("customer_id"))
                  .order_by(CustomerTag.name))
_DEAL_TOTALS = Prepared(select(Purchase.currency, func.count(), func.sum(Purchase.amount_minor))
                        .where(Purchase.customer_id == bindparam("customer_id"))
                        .group_by(Purchase.currency).order_by(Purchase.currency))
_NUMBERS = (select(Interaction.id, func.row_number().over(order_by=Interaction.id).label("number"))
            .where(Interaction.customer_id == bindparam("customer_id")).subquery())
_RECENT = Prepared(
    select(Interaction.occurred_at, Interaction.channel, Interaction.summary, Member.name, _NUMBERS.c.number)
    .join(_NUMBERS, _NUMBERS.c.id == Interaction.id).outerjoin(Member, Member.id == Interaction.member_id)
    .order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(bindparam("last")))


async def tags_of(ctx: Context, customer_id: int) -> tuple[list[str], list[str]]:
    rows = await _TAGS.run(ctx.session, {"customer_id": customer_id})
    manual, auto = [], []
    for name, is_auto in rows:
        (auto if is_auto else manual).append(name)
    return manual, auto


async def deal_totals(ctx: Context, customer_id: int) -> str:
    rows = await _DEAL_TOTALS.run(ctx.session, {"customer_id": customer_id})
    return ", ".join(ctx.t("card.deals_total", count=n, total=ctx.fmt_money(total, cur)) for cur, n, total in rows)


def stars(score: int) -> str:
    """A 1–5 score as `★★★★☆`."""
    return "★" * score + "☆" * (5 - score)


def entry_line(ctx: Context, row: entries.Entry, label: str) -> str:
    """One entry in a line, after its label: `deal 1 · ¥12,000 · 2026-11-18 “licence”`,
    `feedback 2 · ★★★★☆ 2026-11-18 “quick”`, `log 3 · 2026-11-18 Wed 15:00 · call “asked for a quote”`."""
    if isinstance(row, Purchase):
        head, text = f"{ctx.fmt_money(row.amount_minor, row.currency)} · {ctx.fmt_date(row.occurred_at)}", row.note
    elif isinstance(row, Feedback):
        head, text = f"{stars(row.score)} {ctx.fmt_date(row.created_at)}", row.comment
    else:
        head, text = f"{ctx.fmt_time(row.occurred_at)} · {ctx.t(f'channel.{row.channel}')}", row.summary
    quoted = f" “{shortened(text, CARD_SUMMARY_CHARS)}”" if text else ""
    return f"{label} · {head}{quoted}"


async def recent_interactions(ctx: Context, customer_id: int) -> list[str]:
    """The latest few, each with its number (`log 3`: the third logged, see storage.entries)."""
    rows = await _RECENT.run(ctx.session, {"customer_id": customer_id, "last": LAST_INTERACTIONS})
    return [
        ctx.t("card.interaction", entry=entry_label(ctx, "log", number), when=ctx.fmt_time(occurred_at),
              channel=ctx.t(f"channel.{channel}"), who=who or "—", summary=shortened(summary, CARD_SUMMARY_CHARS))
        for occurred_at, channel, summary, who, number in rows
    ]


def field_label(ctx: Context, name: str) -> str:
    """A customer field's (or another audited key's) name in the member's language."""
    key = {"owner_id": "field.owner", "cadence_days": "field.cadence"}.get(name, f"field.{name}")
    if key in catalogue("en"):
        return ctx.t(key)
    return ctx.t(f"history.key.{name}") if f"history.key.{name}" in catalogue("en") else name

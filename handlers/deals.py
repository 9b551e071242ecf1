"""/deal and /feedback: what a customer bought and how satisfied they are.

Both move derived data at once (tier, LTV and stage for a deal; stage and the
unhappy / promoter / at-risk auto tags for feedback), and the reply says how.
"""
from __future__ import annotations

import re

from handlers.cards import card_buttons, customer_label, stars
from handlers.context import Context
from handlers.customers import saved
from handlers.dates import cn_number
from handlers.errors import UserError
from handlers.interactions import (
    back_dated,
    derived,
    derived_after,
    derived_fields,
    echo,
    free_text,
    next_followup,
    plan_followup,
)
from handlers.lookup import take_customer
from handlers.messages import Reply
from handlers.parsing import Money, Token, parse_amount, split_clauses, tokenize
from handlers.registry import Result, command
from storage import deals


# --- /deal -------------------------------------------------------------------------------

def read_amount(tokens: list[Token], currency: str) -> tuple[Money, int]:
    """The amount in the first one or two words (`12000`, `300 USD`, `¥ 12000`), and how many it took."""
    if len(tokens) > 1 and not tokens[0].quoted:
        try:
            return parse_amount(f"{tokens[0].text} {tokens[1].text}", currency), 2
        except UserError:
            pass
    return parse_amount(tokens[0].text, currency), 1


@command("deal", aliases=("成交",))
async def deal(ctx: Context, args: str) -> Result:
    body, clauses = split_clauses(args)
    occurred_at, follow_up = back_dated(ctx, clauses), next_followup(ctx, clauses)
    customer, rest = await take_customer(ctx, tokenize(body), "deal")
    if not rest:
        raise UserError("error.deal_usage")
    money, used = read_amount(rest, ctx.ws.currency)
    note = ctx.as_typed(free_text(body, rest[used:]))
    before = derived(customer)
    await deals.add_purchase(ctx.session, customer, member_id=ctx.me.id, amount_minor=money.minor,
                             currency=money.currency, note=note, occurred_at=occurred_at, now=ctx.now)
    lines = [ctx.t("deal.saved", amount=ctx.fmt_money(money.minor, money.currency),
                   customer=customer_label(customer), date=ctx.fmt_date(occurred_at))]
    if note:
        lines.append(echo(note))
    buttons = [card_buttons(ctx, customer)]
    if follow_up is not None:
        planned, move = await plan_followup(ctx, customer, follow_up, note)
        lines.append(planned)
        buttons.append([move])
    after = derived_after(customer, await saved(ctx, customer))
    return Reply(text="\n".join(lines), fields=derived_fields(ctx, before, after, always=("tier", "ltv", "stage")),
                 buttons=buttons)


# --- /feedback ------------------------------------------------------------------------------

_SCORE = re.compile(r"(?P<n>[0-9]|[一二两三四五])\s*(?:/\s*5|分|星|stars?)?", re.I)
_STARS = "★⭐"


def read_score(word: str) -> int | None:
    """1–5 from `4`, `4/5`, `4分`, `四星`, `★★★★` or `★★★★☆`; None when it is not a score."""
    if word and all(ch in _STARS + "☆" for ch in word):
        score = sum(ch in _STARS for ch in word)
    elif m := _SCORE.fullmatch(word):
        score = cn_number(m["n"]) or 0
    else:
        return None
    return score if 1 <= score <= 5 else None


@command("feedback", aliases=("反馈",))
async def feedback(ctx: Context, args: str) -> Result:
    tokens = tokenize(args)
    customer, rest = await take_customer(ctx, tokens, "feedback")
    score = read_score(rest[0].text) if rest and not rest[0].quoted else None
    if score is None:
        raise UserError("error.feedback_usage")
    comment = ctx.as_typed(free_text(args, rest[1:]))
    before = derived(customer)
    await deals.add_feedback(ctx.session, customer, member_id=ctx.me.id, score=score, comment=comment, now=ctx.now)
    after = derived_after(customer, await saved(ctx, customer, purchases_changed=False))
    lines = [ctx.t("feedback.saved", customer=customer_label(customer), stars=stars(score), score=score)]
    if comment:
        lines.append(echo(comment))
    return Reply(text="\n".join(lines), fields=derived_fields(ctx, before, after),
                 buttons=[card_buttons(ctx, customer)])

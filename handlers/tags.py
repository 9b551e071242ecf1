"""/tag (and the card's Tag button) and /tags.

Tag names are standardised (`VIP`, `ｖｉｐ` and `vip` are one tag). Auto tags
are kept by the system, so their names — in any language the bot speaks —
can be neither added nor removed by hand.
"""
from __future__ import annotations

import re
from functools import cache

from handlers import guided
from handlers.cards import card_buttons, customer_label, tags_of
from handlers.context import Context
from handlers.customers import invalid_text, saved
from handlers.errors import UserError
from handlers.i18n import LOCALES, t
from handlers.lookup import customer_by_id, take_customer
from handlers.messages import Field, Form, FormField, FormSubmission, Reply
from handlers.parsing import Token, fold, tokenize
from handlers.registry import Result, action, command, form
from storage import standardise, tags
from storage.models import Customer
from storage.scoring import AUTO_TAGS
from storage.standardise import InvalidValue

#: Manual tags /tags lists before saying how many more there are.
MAX_LISTED = 50
_SEPARATORS = re.compile(r"[,;、，；]+")
_MINUS = "-−"


@cache
def auto_tag_names() -> frozenset[str]:
    """Auto tags by their names and their labels in every language (`vip`, `重要客户`, `at-risk` …)."""
    labels = {standardise.tag(t(locale, f"autotag.{name}")) for locale in LOCALES for name in AUTO_TAGS}
    return frozenset(AUTO_TAGS) | labels


def read_tag_changes(tokens: list[Token]) -> tuple[list[str], list[str]]:
    """(to add, to remove) from `vip -cold 重点,hot`; a later mention of a tag wins."""
    wanted: dict[str, bool] = {}
    for token in tokens:
        parts = [token.text] if token.quoted else _SEPARATORS.split(token.text)
        for part in filter(None, parts):
            remove, bare = part[0] in _MINUS, part.lstrip(_MINUS + "+")
            if not bare:
                raise InvalidValue("tag", part)
            name = standardise.tag(bare)
            if name in auto_tag_names():
                raise InvalidValue("auto_tag", name)
            wanted.pop(name, None)
            wanted[name] = not remove
    return [n for n, add in wanted.items() if add], [n for n, add in wanted.items() if not add]


async def apply_tag_changes(ctx: Context, customer: Customer, changes: tuple[list[str], list[str]]) -> Reply:
    added, removed = await tags.change_tags(ctx.session, customer, add=changes[0], remove=changes[1],
                                            member_id=ctx.me.id, now=ctx.now)
    await saved(ctx, customer, purchases_changed=False)
    lines = []
    if added:
        lines.append(ctx.t("tag.added", tags=" ".join(f"#{n}" for n in added)))
    if removed:
        lines.append(ctx.t("tag.removed", tags=" ".join(f"#{n}" for n in removed)))
    manual, auto = await tags_of(ctx, customer.id)
    return Reply(
        title=customer_label(customer),
        text="\n".join(lines) or ctx.t("tag.unchanged"),
        fields=[Field(ctx.t("card.tags"), " ".join(f"#{n}" for n in manual) or "—"),
                Field(ctx.t("card.auto_tags"), " ".join(ctx.t(f"autotag.{n}") for n in auto) or "—")],
        buttons=[card_buttons(ctx, customer)],
    )


@command("tag", aliases=("标签", "打标签"))
async def tag(ctx: Context, args: str) -> Result:
    customer, rest = await take_customer(ctx, tokenize(args), "tag")
    if not rest:
        raise UserError("error.tag_usage")
    return await apply_tag_changes(ctx, customer, read_tag_changes(rest))


@command("tags", aliases=("标签列表", "所有标签"))
async def all_tags(ctx: Context, args: str) -> Result:
    counts = await tags.tag_counts(ctx.session, ctx.ws.id, ctx.scope.customers())
    if not counts:
        return Reply(text=ctx.t("tags.none"))
    manual = [ctx.t("tags.row", tag=f"#{name}", count=n) for name, auto, n in counts if not auto]
    auto = [ctx.t("tags.row", tag=ctx.t(f"autotag.{name}"), count=n) for name, is_auto, n in counts
            if is_auto and name in AUTO_TAGS]
    lines = [ctx.t("tags.manual")] + (manual[:MAX_LISTED] or [ctx.t("tags.no_manual")])
    if len(manual) > MAX_LISTED:
        lines.append(ctx.t("tags.more", count=len(manual) - MAX_LISTED))
    lines += ["", ctx.t("tags.auto")] + (auto or ["—"])
    return Reply(title=ctx.t("tags.title"), text="\n".join(lines))


# --- the Tag form -------------------------------------------------------------------------

@action("ftag")
async def tag_button(ctx: Context, args: list[str]) -> Result:
    customer = await customer_by_id(ctx, args[0] if args else "", "tag")
    manual, _ = await tags_of(ctx, customer.id)
    current = " ".join(f"#{n}" for n in manual) or "—"
    return await guided.start(ctx, Form(
        name="tag",
        title=ctx.t("form.tag.title", customer=customer.name[:40]),
        fields=(FormField("tags", ctx.t("card.tags"), required=True, hint=ctx.t("form.tag.hint", current=current)),),
        submit_label=ctx.t("form.save"),
        context={"customer_id": str(customer.id)},
    ))


def _tags_problem(ctx: Context, text: str) -> tuple[tuple[list[str], list[str]] | None, str | None]:
    """The tag changes a Tag form answer asks for, or what is wrong with it."""
    tokens = tokenize(fold(text))
    if not tokens:
        return None, ctx.t("guided.required")
    try:
        return read_tag_changes(tokens), None
    except InvalidValue as problem:
        return None, invalid_text(ctx, problem)


async def check_tag_answer(ctx: Context, key: str, value: str) -> str | None:
    return _tags_problem(ctx, value)[1] if key == "tags" else None


@form("tag", check=check_tag_answer)
async def submit_tag(ctx: Context, submission: FormSubmission) -> Result:
    customer = await customer_by_id(ctx, submission.context.get("customer_id", ""), "tag")
    changes, problem = _tags_problem(ctx, submission.values.get("tags") or "")
    if changes is None:
        return Reply(form_errors={"tags": problem or ""})
    return await apply_tag_changes(ctx, customer, changes)

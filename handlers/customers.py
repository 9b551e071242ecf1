"""Customers: /add (with the "same person?" check and the guided form), /show, /edit, /find."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select

from handlers import guided
from handlers.cards import auto_tag_labels, customer_card, customer_label, field_label
from handlers.context import Context
from handlers.errors import UserError
from handlers.i18n import LOCALES, t
from handlers.lookup import customer_by_id, join_phone_runs, take_customer
from handlers.messages import Button, Form, FormField, FormSubmission, Reply
from handlers.paging import PAGE_SIZE, page_buttons
from handlers.parsing import Token, classify_ref, parse_duration_days, split_fields, tokenize
from handlers.registry import Result, action, command, form, payload
from storage import customers, merge, scoring, standardise
from storage.models import Customer, CustomerTag, Member
from storage.standardise import InvalidValue

ADD_FORM_FIELDS = ("name", "company", "title", "phone", "email", "region", "industry", "source")
#: A run of digits this long in /add is meant as a phone (and checked as one), not as part of the name.
PHONE_MIN_DIGITS = 5
_PHONE_SHAPED = re.compile(r"\+?[0-9().\-\s]+")


def invalid_text(ctx: Context, problem: InvalidValue) -> str:
    return ctx.t(problem.key, **problem.params, value=problem.value[:80], auto_tags=auto_tag_labels(ctx))


# --- /add ----------------------------------------------------------------------

def parse_add(ctx: Context, text: str) -> dict[str, str]:
    """`<name> [phone] [email] [field=value …]`: phones and e-mails are recognised anywhere."""
    positional, fields = typed_fields(ctx, tokenize(text))
    name_words = []
    for token in join_phone_runs(positional):
        word = token.text
        kind = None if token.quoted else classify_ref(word).kind
        if kind == "name" and not token.quoted and _PHONE_SHAPED.fullmatch(word) \
                and sum(ch.isdigit() for ch in word) >= PHONE_MIN_DIGITS:
            kind = "phone"  # `/add 测试 12345`: refused as a phone like /edit's 电话=12345, not a name
        if kind in ("phone", "email") and kind not in fields:
            fields[kind] = word
        else:
            name_words.append(word)
    if name_words:
        if "name" in fields:
            raise UserError("error.add_usage")
        fields["name"] = " ".join(name_words)
    if fields and not fields.get("name"):
        raise UserError("error.add_usage")
    return fields


def typed_fields(ctx: Context, tokens: list[Token]) -> tuple[list[Token], dict[str, str]]:
    """`split_fields`, with text fields as the member typed them: commands are read width-folded,
    but `公司=华东贸易（上海）` keeps its full-width brackets (storage keeps what it is given)."""
    positional, fields = split_fields(tokens)
    return positional, {k: ctx.as_typed(v) if k in customers.TEXT_FIELDS else v for k, v in fields.items()}


@command("add", parse=parse_add, aliases=("new", "添加", "新增"))
async def add(ctx: Context, raw: dict[str, str]) -> Result:
    if not raw:
        return await guided.start(ctx, add_form(ctx))
    return await add_customer(ctx, raw, force=False)


async def add_customer(ctx: Context, raw: dict[str, str], *, force: bool) -> Reply:
    values = customers.clean_fields(raw, ctx.ws, ctx.now)
    if not force:
        dupes = await customers.possible_duplicates(
            ctx.session, ctx.scope, name=values["name"], company=values.get("company"),
            phone=values.get("phone"), email=values.get("email"),
        )
        if dupes.shown:
            return await _ask_same_person(ctx, raw, *dupes.shown[0])
        if dupes.colleague_has:  # a customer this rep may not see: said to exist, never shown
            raise UserError("customer.colleague_has")
    customer = await customers.create(ctx.session, ctx.ws, values, owner_id=ctx.me.id, created_by=ctx.me.id, now=ctx.now)
    await saved(ctx, customer, purchases_changed=False)
    return await customer_card(ctx, customer, note=ctx.t("customer.added", customer=customer_label(customer)), new=True)


async def saved(ctx: Context, customer: Customer, *, purchases_changed: bool = True) -> scoring.Refreshed:
    """After any change to a customer: derived data now, search index once committed; the auto tags
    the refresh moved.

    `purchases_changed=False` for events that touch no purchase: the tier is kept (scoring.refresh)."""
    refreshed = await scoring.refresh(ctx.session, ctx.ws, [customer.id], ctx.now, purchases_changed=purchases_changed)
    workspace_id, customer_id, name, company = ctx.ws.id, customer.id, customer.name, customer.company
    ctx.after_commit(lambda: ctx.services.search.note_saved(workspace_id, customer_id, name, company))
    return refreshed


async def _ask_same_person(ctx: Context, raw: dict[str, str], existing: Customer, why: str) -> Reply:
    token = await ctx.remember("dup", {"raw": raw, "existing": existing.id})
    return Reply(
        text=ctx.t("customer.same_person", customer=customer_label(existing), why=ctx.t(f"dupe.{why}")),
        private=True,
        buttons=[[
            Button(ctx.t("dupe.use"), payload("dup", token, "use"), "primary"),
            Button(ctx.t("dupe.add"), payload("dup", token, "add")),
            Button(ctx.t("dupe.merge"), payload("dup", token, "merge")),
        ]],
    )


@action("dup")
async def same_person(ctx: Context, args: list[str]) -> Result:
    token, answer = (args + ["", ""])[:2]
    stored = await ctx.recall(token, "dup", consume=True)
    if answer == "add":
        return _edited(await add_customer(ctx, stored["raw"], force=True))
    existing = await ctx.session.scalar(ctx.scope.customers().where(Customer.id == stored["existing"]))
    if existing is None:
        raise UserError("error.choice_expired")
    if answer == "merge":
        ctx.scope.require("edit", existing)
        values = customers.clean_fields(stored["raw"], ctx.ws, ctx.now)

        fills, result = merge.fold_in(existing, values, lambda conflicts: ctx.t("customer.also_given", values=_given(ctx, conflicts)))
        customers.apply(ctx.session, existing, fills, member_id=ctx.me.id, now=ctx.now, action="fill")
        await saved(ctx, existing)
        lines = [ctx.t("customer.filled", fields=ctx.listed(field_label(ctx, k) for k in result.filled))] if result.filled else []
        if result.conflicts:  # the new name (王方 for 王芳) or phone is kept, and said to be
            lines.append(ctx.t("customer.kept_in_prefs", values=_given(ctx, result.conflicts)))
        return _edited(await customer_card(ctx, existing, note="\n".join(lines) or ctx.t("customer.nothing_to_fill")))
    return _edited(await customer_card(ctx, existing))


def _given(ctx: Context, values: dict[str, str]) -> str:
    return ctx.listed(f"{field_label(ctx, k)} {v}" for k, v in values.items())


def _edited(reply: Reply) -> Reply:
    reply.edit = True
    return reply


def add_form(ctx: Context) -> Form:
    return Form(
        name="add",
        title=ctx.t("form.add.title"),
        submit_label=ctx.t("form.save"),
        fields=tuple(
            FormField(key, ctx.t(f"field.{key}"), required=key == "name", hint=ctx.t(f"form.hint.{key}"))
            for key in ADD_FORM_FIELDS
        ),
    )


def field_errors(ctx: Context, raw: dict[str, str]) -> dict[str, str]:
    """Per-field messages for a form: every bad field at once, not just the first."""
    errors = {}
    for key, value in raw.items():
        try:
            customers.clean_fields({key: value}, ctx.ws, ctx.now)
        except InvalidValue as problem:
            errors[key] = invalid_text(ctx, problem)
    return errors


async def check_add_answer(ctx: Context, key: str, value: str) -> str | None:
    return field_errors(ctx, {key: value}).get(key)


@form("add", check=check_add_answer)
async def submit_add(ctx: Context, submission: FormSubmission) -> Result:
    raw = {k: v.strip() for k, v in submission.values.items() if k in customers.FIELDS and v and v.strip()}
    if not raw.get("name"):
        return Reply(form_errors={"name": ctx.t("guided.required")})
    errors = field_errors(ctx, raw)
    if errors:
        return Reply(form_errors=errors)
    return await add_customer(ctx, raw, force=False)


# --- /show, /edit ----------------------------------------------------------------

@command("show", aliases=("card", "查看", "客户"))
async def show(ctx: Context, args: str) -> Result:
    customer, rest = await take_customer(ctx, tokenize(args), "view")
    return await customer_card(ctx, customer)


@command("edit", aliases=("修改", "编辑"))
async def edit(ctx: Context, args: str) -> Result:
    customer, rest = await take_customer(ctx, tokenize(args), "edit")
    positional, raw = typed_fields(ctx, rest)
    if positional and raw:  # words after a value: `prefs=likes tea` meant one value with a space
        key = next(reversed(raw))
        words = " ".join(token.text for token in positional)
        raise UserError("error.edit_quote", example=f'{key}="{raw[key]} {words}"'[:80])
    if not raw:
        raise UserError("error.edit_usage")
    if "owner" in raw:
        raise UserError("error.edit_owner")
    values = customers.clean_fields(raw, ctx.ws, ctx.now)
    changed = customers.apply(ctx.session, customer, values, member_id=ctx.me.id, now=ctx.now)
    await saved(ctx, customer, purchases_changed=False)
    return await customer_card(ctx, customer, note=_edit_note(ctx, raw, changed))


def _edit_note(ctx: Context, raw: dict[str, str], changed: dict[str, Any]) -> str:
    """Name only the fields that changed as updated, and the rest as already holding those values."""
    stored_as = customers.STORED_AS
    updated = [ctx.t(f"field.{k}") for k in raw if stored_as.get(k, k) in changed]
    same = [ctx.t(f"field.{k}") for k in raw if stored_as.get(k, k) not in changed]
    lines = [ctx.t("customer.edited", fields=ctx.listed(updated))] if updated else []
    if same:
        lines.append(ctx.t("customer.unchanged", fields=ctx.listed(same)))
    return "\n".join(lines)


# --- /find ---------------------------------------------------------------------------

FILTER_KEYS = {
    "tag": "tag", "标签": "tag", "region": "region", "地区": "region", "industry": "industry",
    "行业": "industry", "company": "company", "公司": "company", "stage": "stage", "阶段": "stage",
    "tier": "tier", "等级": "tier", "owner": "owner", "负责人": "owner", "silent": "silent", "沉默": "silent",
}
#: `tag:vip` as the spec writes it, or `tag=vip` as /edit and /settings take their fields.
FILTER = re.compile(r"(?P<key>[^:=]+)[:=](?P<value>.*)", re.DOTALL)


@dataclass
class FindQuery:
    raw: str
    text: str = ""
    filters: dict[str, str] = field(default_factory=dict)


def parse_find(ctx: Context, text: str) -> FindQuery:
    query = FindQuery(raw=text)
    words = []
    for token in tokenize(text):
        parts = FILTER.fullmatch(token.text)
        if parts and not token.quoted and parts["key"].casefold() in FILTER_KEYS:
            if not parts["value"]:
                raise UserError("error.find_filter", filter=token.text)
            query.filters[FILTER_KEYS[parts["key"].casefold()]] = parts["value"]
        else:
            words.append(token.text)
    query.text = " ".join(words)
    return query


@command("find", parse=parse_find, aliases=("search", "list", "查找", "搜索"))
async def find(ctx: Context, query: FindQuery, page: int = 0) -> Result:
    if not query.text and not query.filters:
        raise UserError("error.find_usage")
    references = _by_reference(ctx, query.text) if query.text else []
    ranked: list[int] = []
    if query.text:
        matches = await ctx.services.search.search(ctx.session, ctx.ws.id, query.text, limit=200)
        ranked = [m.customer_id for m in matches if m.score >= 60]
    if query.text and not references and not query.filters:  # the search's ids alone (most /finds)
        found = list(await ctx.session.scalars(*ctx.scope.among(ranked)))
    else:
        select_ = ctx.scope.customers()
        for key, value in query.filters.items():
            select_ = select_.where(await _filter(ctx, key, value))
        if query.text:
            select_ = select_.where(or_(Customer.id.in_(ranked), *references))
        # by the ids the search ranked: `number + 0` keeps the planners (SQLite's, PostgreSQL's without
        # fresh statistics) from walking the whole book in number order to skip the sort of a few rows
        order = Customer.number + 0 if query.text else Customer.number
        found = list(await ctx.session.scalars(select_.order_by(order).limit(1000)))
    if ranked:
        order = {cid: i for i, cid in enumerate(ranked)}
        found.sort(key=lambda c: order.get(c.id, -1))  # a number, e-mail or phone match first
    if not found:
        return Reply(text=ctx.t("find.none", query=query.raw[:80]))
    shown = found[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    return Reply(
        text=ctx.t("find.count", count=len(found)),
        items=[_row(ctx, c) for c in shown],
        buttons=[[Button(customer_label(c), payload("show", c.id))] for c in shown]
        + await page_buttons(ctx, "find", query.raw, page, len(found)),
    )


#: A typed phone or a part of one: digits and the marks people write between them.
_PHONE_QUERY = re.compile(r"[\d+\-().\s]+")
MIN_PHONE_DIGITS = 4


def _by_reference(ctx: Context, text: str) -> list[Any]:
    """Conditions finding what /show finds by `#number`, e-mail or phone, plus a phone by 4+ of its digits
    (`5678`): a name search alone never matches them."""
    ref = classify_ref(text)
    if ref.kind == "id":
        return [Customer.number == int(ref.value)]
    if ref.kind == "email":
        return [Customer.email == standardise.email(ref.value)]
    digits = "".join(ch for ch in ref.value if ch.isdigit())
    if not _PHONE_QUERY.fullmatch(ref.value) or len(digits) < MIN_PHONE_DIGITS:
        return []
    conditions = [Customer.phone.contains(digits)]  # E.164 keeps the typed digits but a trunk 0
    try:
        conditions.append(Customer.phone == standardise.phone(ref.value, ctx.ws.phone_region))
    except InvalidValue:
        pass  # only a part of a number
    return conditions


def _row(ctx: Context, customer: Customer) -> str:
    parts = [customer_label(customer)]
    if customer.region:
        parts.append(customer.region)
    parts.append(ctx.t(f"stage.{customer.stage}"))
    if customer.last_contact_at:
        parts.append(ctx.t("find.last_contact", when=ctx.fmt_date(customer.last_contact_at)))
    return " · ".join(parts)


async def _filter(ctx: Context, key: str, value: str) -> Any:
    if key == "tag":
        name = standardise.tag(value)
        return exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.name == name)
    if key in ("region", "industry", "company"):
        column = getattr(Customer, key)
        return or_(*(func.lower(column).contains(spelling.lower(), autoescape=True)
                     for spelling in standardise.spellings(value)))
    if key == "stage":
        return Customer.stage == _stage_name(ctx, value)
    if key == "tier":
        if value.upper() not in ("A", "B", "C"):
            raise UserError("error.find_filter", filter=f"tier:{value}")
        return Customer.tier == value.upper()
    if key == "owner":
        return Customer.owner_id == await member_named(ctx, value, among="any")
    days = parse_duration_days(value)
    cutoff = ctx.now - timedelta(days=days)
    return or_(Customer.last_contact_at < cutoff, and_(Customer.last_contact_at.is_(None), Customer.created_at < cutoff))


def _stage_name(ctx: Context, value: str) -> str:
    wanted = value.casefold().replace("-", "_")
    for stage in scoring.STAGES:
        names = {stage} | {t(locale, f"stage.{stage}").casefold() for locale in LOCALES}
        if wanted in names:
            return stage
    raise UserError("error.find_filter", filter=f"stage:{value}")


async def member_named(ctx: Context, name: str, *, among: str = "active", exact: bool = False) -> int:
    """`me`, `@name` or a member's name (case-insensitive; a part of it too, unless `exact`) → member id,
    in this workspace, among its `active` members (the default), those who lost access (`removed`)
    or `any`."""
    if name.casefold() in ("me", "我") and among != "removed":
        return ctx.me.id
    wanted = name.lstrip("@").casefold()
    query = select(Member).where(Member.workspace_id == ctx.ws.id)
    if among != "any":
        query = query.where(Member.removed_at.is_(None) if among == "active" else Member.removed_at.is_not(None))
    rows = list(await ctx.session.scalars(query))
    matches = [m for m in rows if m.name.casefold() == wanted]
    if not matches and not exact:
        matches = [m for m in rows if wanted in m.name.casefold()]
    if len(matches) != 1:
        raise UserError("error.no_member", name=name[:60])
    return matches[0].id


@action("show")
async def show_button(ctx: Context, args: list[str]) -> Result:
    return await customer_card(ctx, await customer_by_id(ctx, args[0] if args else "", "view"))

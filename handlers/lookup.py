"""Turning a customer reference (`#12`, a phone, an e-mail, a name) into a customer.

Names match exactly first, then fuzzily through the search index (pinyin and
initials included). When the best match is not clear, `NeedChoice` is raised:
the dispatcher stores the command and asks "which one?", and the answer runs
the command again with `#number` in place of the name.
"""
from __future__ import annotations

import re
from itertools import takewhile

from sqlalchemy import bindparam, func, select

from handlers.context import Context
from handlers.errors import UserError
from handlers.parsing import Token, classify_ref
from handlers.registry import button_number
from storage import standardise
from storage.held import Entities
from storage.models import Customer

CLEAR_SCORE = 90
CLEAR_LEAD = 10
MAX_CHOICES = 6
MAX_NAME_WORDS = 4


_PHONE_PART = re.compile(r"^\+?[\d().\-]*\d[\d().\-]*$")


FULL_NUMBER_DIGITS = 10


def join_phone_runs(tokens: list[Token]) -> list[Token]:
    """Runs of unquoted digit groups as one token: `+86 138 0013 8000` is one phone.

    A run stops once it holds a full number (10+ digits), so the amount in
    `/deal 13800138000 12000` stays an amount.
    """
    joined: list[Token] = []
    for token in tokens:
        previous = joined[-1] if joined else None
        if (previous is not None and _phone_part(token) and _phone_part(previous)
                and sum(ch.isdigit() for ch in previous.text) < FULL_NUMBER_DIGITS):
            joined[-1] = Token(f"{previous.text} {token.text}", False, previous.start, token.end)
        else:
            joined.append(token)
    return joined


def _phone_part(token: Token) -> bool:
    return not token.quoted and bool(_PHONE_PART.match(token.text.replace(" ", "")))


class NeedChoice(Exception):
    """Several customers fit the reference at `start:end` of the command's arguments."""

    def __init__(self, candidates: list[Customer], start: int, end: int) -> None:
        super().__init__("which customer?")
        self.candidates = candidates
        self.choices: list[tuple[int, str]] = []  # (id, label) of each, filled in by the core before a rollback
        self.start, self.end = start, end
        self.text, self.offset = "", 0  # filled in by the dispatcher


async def take_customer(
    ctx: Context, tokens: list[Token], action: str, *, deleted: bool = False
) -> tuple[Customer, list[Token]]:
    """The customer the leading tokens name, checked for `action`, and the tokens after it.

    An unquoted name of several words counts when a customer is called so,
    the longest such name winning (several customers called so: "which
    one?"); every candidate is looked up in one query.
    """
    tokens = join_phone_runs(tokens)
    if not tokens:
        raise UserError("error.need_customer")
    first = tokens[0]
    if first.quoted or deleted:
        leading = [first]
    else:  # the unquoted words before any quoted one: the candidates for a name of several words
        leading = list(takewhile(lambda token: not token.quoted, tokens[:MAX_NAME_WORDS]))
    named = await _named_exactly(ctx, [" ".join(w.text for w in leading[:count]) for count in
                                       range(1, len(leading) + 1)], deleted=deleted)
    customer, used = None, 1
    for count in range(len(leading), 1, -1):
        if len(named[count - 1]) == 1:
            customer, used = named[count - 1][0], count
            break
        if named[count - 1]:
            raise NeedChoice(named[count - 1], first.start, leading[count - 1].end)
    if customer is None:
        customer = await find_customer(ctx, first, deleted=deleted, exact=named[0])
    ctx.scope.require(action, customer)
    return customer, tokens[used:]


async def find_customer(
    ctx: Context, token: Token, *, deleted: bool = False, exact: list[Customer] | None = None
) -> Customer:
    """The customer `token` refers to; `exact` holds the customers named exactly so, if already looked up."""
    ref = classify_ref(token.text) if not token.quoted else None
    if ref is None or ref.kind == "name":  # the everyday case: no statement to build (≈ 80 µs)
        if exact is None:
            exact = (await _named_exactly(ctx, [token.text], deleted=deleted))[0]
        return await _by_name(ctx, token, exact, deleted=deleted)
    query = ctx.scope.customers(deleted=deleted)
    if ref.kind == "id":
        found = await ctx.session.scalar(query.where(Customer.number == int(ref.value)))
    elif ref.kind == "email":
        found = await ctx.session.scalar(query.where(Customer.email == standardise.email(ref.value)).limit(1))
    else:
        number = standardise.phone(ref.value, ctx.ws.phone_region)
        found = await ctx.session.scalar(query.where(Customer.phone == number).limit(1))
    if found is None:
        raise UserError("error.no_customer", ref=token.text[:80])
    return found


async def _named_exactly(ctx: Context, names: list[str], *, deleted: bool = False) -> list[list[Customer]]:
    """For each name, the (first few) customers called exactly that, ignoring case: one query for all."""
    keys = [standardise.fold(name).lower() for name in names]
    distinct = sorted(set(keys))
    rows = await _named_statement(ctx, deleted, len(distinct)).run(
        ctx.session, {f"key{n}": key for n, key in enumerate(distinct)})
    by_key: dict[str, list[Customer]] = {}
    for found, found_key in rows:
        by_key.setdefault(found_key, []).append(found)
    return [by_key.get(k, []) for k in keys]


_NAMED: dict[tuple[object, ...], Entities] = {}
_NAMED_KEPT = 1024  # queries kept: per workspace, own-only member, deleted or not, and number of names


def _named_statement(ctx: Context, deleted: bool, names: int) -> Entities:
    """`_named_exactly`'s query for this scope and number of names, built once: building it (a windowed
    subquery) cost more than running it. The names are its parameters, one each (`key0`, `key1` …): an
    IN list of one expanding parameter would be written into the SQL afresh on every run."""
    scope = ctx.scope
    which = (scope.workspace_id, scope.member_id if scope.sees_only_own else None, deleted, names)
    statement = _NAMED.get(which)
    if statement is None:
        key = func.lower(Customer.name)
        ranked = (
            scope.customers(deleted=deleted).with_only_columns(
                Customer.id, key.label("key"),
                func.row_number().over(partition_by=key, order_by=Customer.number).label("n"))
            .where(key.in_([bindparam(f"key{n}") for n in range(names)]))
            .subquery()
        )
        statement = Entities(select(Customer, ranked.c.key).join(ranked, Customer.id == ranked.c.id)
                             .where(ranked.c.n <= MAX_CHOICES).order_by(Customer.number))
        if len(_NAMED) >= _NAMED_KEPT:
            _NAMED.clear()
        _NAMED[which] = statement
    return statement


async def _by_name(ctx: Context, token: Token, exact: list[Customer], *, deleted: bool) -> Customer:
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise NeedChoice(exact, token.start, token.end)
    if deleted:
        raise UserError("error.no_customer", ref=token.text[:80])
    matches = await ctx.services.search.search(ctx.session, ctx.ws.id, token.text, limit=MAX_CHOICES * 3)
    by_id = {c.id: c for c in await ctx.session.scalars(*ctx.scope.among([m.customer_id for m in matches]))}
    visible = [(m.score, by_id[m.customer_id]) for m in matches if m.customer_id in by_id][:MAX_CHOICES]
    if not visible:
        raise UserError("error.no_customer", ref=token.text[:80])
    best = visible[0][0]
    if best >= CLEAR_SCORE and (len(visible) == 1 or visible[1][0] <= best - CLEAR_LEAD):
        return visible[0][1]
    raise NeedChoice([c for _, c in visible], token.start, token.end)


async def customer_by_id(ctx: Context, raw_id: object, access: str, *, deleted: bool = False) -> Customer:
    """The customer a button payload or a form's context names, only if this member may `access` it."""
    customer_id = button_number(str(raw_id))
    customer = None
    if customer_id is not None:
        customer = await ctx.session.scalar(ctx.scope.customers(deleted=deleted).where(Customer.id == customer_id))
    if customer is None:
        raise UserError("error.choice_expired")
    ctx.scope.require(access, customer)
    return customer

"""Customers: cleaning typed fields, creating, changing, and finding likely duplicates.

`clean_fields` is the one gate for basic information, whichever door it came
through (command, Slack form, guided add, CSV import): it standardises and
validates, raising `InvalidValue` for the first bad field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, search_changes, standardise, workspaces
from storage.access import Scope
from storage.models import Customer, Workspace
from storage.prepared import Prepared
from storage.rows import insert_held
from storage.search import has_han, pinyin, words
from storage.standardise import InvalidValue

#: Fields a person may set with /add, /edit, forms and CSV, in card order.
FIELDS = (
    "name", "company", "title", "phone", "email", "address", "region", "industry",
    "size", "gender", "birthday", "source", "stage", "cadence", "prefs",
)
#: Fields whose absence /show points out.
KEY_FIELDS = ("company", "phone", "email", "title", "region", "industry", "source")
_TEXT_LIMITS = {"company": 200, "title": 200, "address": 500, "region": 100, "industry": 100,
                "size": 50, "source": 100, "prefs": 2000}
#: Free-text fields, stored as typed (`standardise.typed`).
TEXT_FIELDS = frozenset(_TEXT_LIMITS)
_GENDERS = {"m": "male", "male": "male", "man": "male", "男": "male",
            "f": "female", "female": "female", "woman": "female", "女": "female"}
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
DUPLICATE_NAME_SCORE = 88
#: Fields typed under one name and stored under another (`cadence=14` is `cadence_days`).
STORED_AS = {"cadence": "cadence_days", "stage": "lost_at"}


def clean_fields(raw: dict[str, str], workspace: Workspace, now: datetime) -> dict[str, Any]:
    """Typed `field=value` pairs → column values; an empty value clears the field."""
    return dict(_clean(field, standardise.visible(value), workspace, now) for field, value in raw.items())


def _clean(field: str, raw: str, workspace: Workspace, now: datetime) -> tuple[str, Any]:
    value = standardise.fold(raw)
    if field == "name":
        return "name", standardise.clean_name(raw)
    if field == "stage":
        return STORED_AS[field], _stage(value, now)
    if not value:
        return STORED_AS.get(field, field), None
    if field == "phone":
        return "phone", standardise.phone(value, workspace.phone_region)
    if field == "email":
        return "email", standardise.email(value)
    if field == "birthday":
        return "birthday", _birthday(value, now)
    if field == "cadence":
        return STORED_AS[field], _cadence(value)
    if field == "gender":
        return "gender", _GENDERS.get(value.casefold(), value[:16])
    if field in _TEXT_LIMITS:
        text = standardise.typed(raw, lines=field == "prefs")
        if len(text) > _TEXT_LIMITS[field]:
            raise InvalidValue("too_long", field)
        return field, text
    raise InvalidValue("field", field)


def _stage(value: str, now: datetime) -> datetime | None:
    """Stages are computed; by hand a customer can only be marked lost (or active again)."""
    folded = value.casefold()
    if folded in ("lost", "churned", "流失", "丢失"):
        return now
    if folded in ("", "active", "活跃"):
        return None
    raise InvalidValue("stage", value)


def _birthday(value: str, now: datetime) -> date:
    match = _DATE.match(value)
    try:
        born = date(*(int(g) for g in match.groups())) if match else None
    except ValueError:
        born = None
    if born is None or not date(1900, 1, 1) <= born <= now.date():
        raise InvalidValue("birthday", value)
    return born


def _cadence(value: str) -> int:
    digits = value.casefold().removesuffix("d").removesuffix("天").removesuffix("days").strip()
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= 3650:
        raise InvalidValue("cadence", value)
    return int(digits)


async def create(
    session: AsyncSession,
    workspace: Workspace,
    values: dict[str, Any],
    *,
    owner_id: int,
    created_by: int | None,
    now: datetime,
) -> Customer:
    """A new customer with the next `#number`, recorded in the audit log."""
    customer = Customer(
        workspace_id=workspace.id,
        number=await workspaces.next_number(session, workspace.id, "customer"),
        owner_id=owner_id, created_by=created_by, stage="lead",
        created_at=now, updated_at=now, **values,
        # known, so they are loaded after the INSERT: the refresh that follows writes what changes
        # (UPDATE … RETURNING), and need not read them back
        tier=None, ltv_minor=None, last_contact_at=None, next_followup_at=None,
    )
    await insert_held(session, customer)  # not the ORM's flush: ≈ 0.25 ms less an /add
    await search_changes.announce_added(session, workspace.id)
    audit.record(session, workspace_id=workspace.id, member_id=created_by, action="add",
                 customer_id=customer.id, after=audit.snapshot(customer), at=now)
    return customer


def apply(
    session: AsyncSession, customer: Customer, values: dict[str, Any], *, member_id: int | None, now: datetime,
    action: str = "edit",
) -> dict[str, Any]:
    """Change fields, audit what actually changed, and return the new values of those."""
    fields = tuple(values)
    before = audit.snapshot(customer, fields)
    for name, value in values.items():
        setattr(customer, name, value)
    changed_before, changed_after = audit.changes(before, audit.snapshot(customer, fields))
    if changed_after:
        customer.updated_at = now
        audit.record(session, workspace_id=customer.workspace_id, member_id=member_id, action=action,
                     customer_id=customer.id, before=changed_before, after=changed_after, at=now)
    return changed_after


def missing_fields(customer: Customer) -> list[str]:
    return [name for name in KEY_FIELDS if not getattr(customer, name)]


@dataclass(frozen=True)
class Duplicates:
    """What "same person?" may show the asker: the matches they can see, with why, and whether a
    customer they cannot see (a colleague's, under `visibility=own`) has the same phone or e-mail."""

    shown: list[tuple[Customer, str]]
    colleague_has: bool = False


async def possible_duplicates(
    session: AsyncSession,
    scope: Scope,
    *,
    name: str,
    company: str | None,
    phone: str | None,
    email: str | None,
    exclude_id: int | None = None,
) -> Duplicates:
    """Live customers that may be the same person, through the asker's scope like every read: same
    phone, same e-mail, or a name that fuzzily matches at the same company. A hidden customer is
    never shown; one with the same phone or e-mail is only said to exist (`colleague_has`), and a
    hidden similar name not even that (it would let names be guessed one by one)."""
    def live() -> Select[tuple[Customer]]:  # built only when needed: building it costs as much as a read
        query = scope.customers()
        return query if exclude_id is None else query.where(Customer.id != exclude_id)

    exact = [c for c in (Customer.phone == phone if phone else None, Customer.email == email if email else None) if c is not None]
    found: dict[int, tuple[Customer, str]] = {}
    if exact:
        for customer in await session.scalars(live().where(or_(*exact)).limit(5)):
            found[customer.id] = (customer, "phone" if phone and customer.phone == phone else "email")
    if company:
        spelled = sorted({spelling.lower() for spelling in standardise.spellings(company)})
        same_company = await _same_company(scope, len(spelled), exclude_id is not None).run(session, {
            **scope.values(), "exclude_id": exclude_id, **{f"company{n}": value for n, value in enumerate(spelled)}})
        others = [row for row in same_company if row[0] not in found]  # names only: a big company is many rows
        alike = [others[n][0] for n in alike_names(name, [other for _, other in others])]
        if alike:
            for customer in await session.scalars(live().where(Customer.id.in_(alike)).order_by(Customer.id)):
                found[customer.id] = (customer, "name")
    hidden = False
    if exact and not found and scope.sees_only_own:
        anyones = select(Customer.id).where(Customer.workspace_id == scope.workspace_id, Customer.deleted_at.is_(None),
                                            Customer.id != (exclude_id or 0), or_(*exact)).limit(1)
        hidden = await session.scalar(anyones) is not None
    return Duplicates(list(found.values()), hidden)


def contact_match_refusal(scope: Scope, workspace_id: int, owner_id: int) -> str | None:
    """Why a row (an import's) whose phone or e-mail matches a customer of `owner_id` may not be merged
    into it: `not_yours` (a customer the asker sees but may not edit), `colleague` (one they may not
    see, so it is not named), or None (it may)."""
    probe = Customer(workspace_id=workspace_id, owner_id=owner_id)
    if scope.can("edit", probe):
        return None
    return "not_yours" if scope.can("view", probe) else "colleague"


#: `_same_company`'s statements, per kind of scope, number of spellings and whether one customer is left out.
_SAME_COMPANY: dict[tuple[bool, int, bool], Prepared] = {}


def _same_company(scope: Scope, spellings: int, excluding: bool) -> Prepared:
    """The ids and names of the live customers (at most 500) the scope sees at a company spelled one of
    `spellings` ways (`company0` …), built once per kind: built per /add, it cost more than it ran."""
    which = (scope.sees_only_own, spellings, excluding)
    if which not in _SAME_COMPANY:
        statement = scope.visible(select(Customer.id, Customer.name)).where(
            func.lower(Customer.company).in_([bindparam(f"company{n}") for n in range(spellings)]))
        if excluding:
            statement = statement.where(Customer.id != bindparam("exclude_id"))
        _SAME_COMPANY[which] = Prepared(statement.limit(500))
    return _SAME_COMPANY[which]


def alike_names(name: str, others: list[str]) -> list[int]:
    """The positions in `others` of names close enough to `name` to ask "same person?": fuzzily alike,
    or Han names read alike (王方 for 王芳 is the name heard and typed by sound; two characters
    differ, so the fuzzy score never sees it). One rapidfuzz pass over them all, not a call per name."""
    close = {index for *_, index in process.extract(
        name.casefold(), [other.casefold() for other in others], scorer=fuzz.token_sort_ratio,
        score_cutoff=DUPLICATE_NAME_SCORE, limit=None)}
    if has_han(name):
        reading = han_reading(name)
        close.update(n for n, other in enumerate(others) if has_han(other) and han_reading(other) == reading)
    return sorted(close)


def han_reading(name: str) -> str:
    """A name's words as toneless pinyin in sorted order (token sort, like the fuzzy score)."""
    return " ".join(sorted(pinyin(word) for word in words(name)))

"""Likely duplicate customers in a workspace (`/dupes`, SPEC §1 data quality).

Two live customers are likely the same person when they share a phone or an
e-mail, when their names match fuzzily (or, Han names, read alike: 王芳 and
王方) at the same company (the rule `/add` asks "same person?" by:
`customers.alike_names`), or when they have exactly the same name and neither
has a company.

Exact matches are found by the database (GROUP BY over indexed columns), and
each group pairs its oldest record with every other one, which is what merging
needs. Names are only ever compared within one company: rows are grouped per
company, and each group is scored at once with rapidfuzz's `cdist`. A
very large company is cut into blocks by the names' first letters so a
workspace of 100,000 customers stays in seconds. At most `MAX_PAIRS` pairs are
returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, groupby
from typing import Any, Iterable, Iterator, NamedTuple

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.customers import DUPLICATE_NAME_SCORE, han_reading
from storage.search import fold, has_han
from storage.models import Customer

MAX_PAIRS = 200
#: Above this many names in one block, the block is split by a longer name prefix.
MAX_BLOCK = 2000
REASONS = ("phone", "email", "name", "same_name")


class Record(NamedTuple):
    id: int
    number: int


@dataclass(frozen=True)
class DuplicatePair:
    """`drop` is likely the same person as `keep`, the older record (lower number)."""

    keep: Record
    drop: Record
    reasons: tuple[str, ...]


Named = tuple[Record, str]  # a record and its name in comparable form


async def likely_duplicates(session: AsyncSession, workspace_id: int, limit: int = MAX_PAIRS) -> list[DuplicatePair]:
    """Pairs of live customers that are likely one person, by keep then drop number; at most `limit`."""
    found: dict[tuple[Record, Record], set[str]] = {}
    no_company = or_(Customer.company.is_(None), Customer.company == "")
    for reason, key, conditions in (
        ("phone", Customer.phone, ()),
        ("email", Customer.email, ()),
        ("same_name", func.lower(Customer.name), (no_company,)),
    ):
        for pair in await _same_value(session, workspace_id, key, conditions, limit):
            found.setdefault(pair, set()).add(reason)
    for pair in await _similar_names_per_company(session, workspace_id, limit):
        found.setdefault(pair, set()).add("name")
    ordered = sorted(found.items(), key=lambda item: (item[0][0].number, item[0][1].number))[:limit]
    return [DuplicatePair(keep, drop, tuple(r for r in REASONS if r in reasons)) for (keep, drop), reasons in ordered]


def _live(workspace_id: int) -> tuple[ColumnElement[bool], ...]:
    return Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None)


async def _same_value(
    session: AsyncSession, workspace_id: int, key: Any, conditions: Iterable[ColumnElement[bool]], limit: int
) -> list[tuple[Record, Record]]:
    """Customers sharing a value of `key`: the oldest of each group paired with each of the others."""
    where = (*_live(workspace_id), *conditions)
    shared = select(key).where(*where, key.is_not(None), key != "").group_by(key).having(func.count() > 1)
    # A group of n rows gives n - 1 pairs, so 2 × limit rows always give `limit` pairs.
    rows = await session.execute(
        select(key, Customer.id, Customer.number).where(*where, key.in_(shared))
        .order_by(key, Customer.number).limit(2 * limit)
    )
    pairs = []
    for _, group in groupby(rows.all(), key=lambda row: row[0]):
        oldest, *others = [Record(row.id, row.number) for row in group]
        pairs.extend((oldest, other) for other in others)
    return pairs[:limit]


async def _similar_names_per_company(
    session: AsyncSession, workspace_id: int, limit: int
) -> list[tuple[Record, Record]]:
    """Fuzzily matching names within each company that has more than one customer.

    Companies are told apart case- and width-insensitively (`ACME` is `Acme`, `华东（上海）`
    is `华东(上海)`); rows are
    grouped here rather than by the database, which is faster than a GROUP BY
    subquery and folds case the same way on SQLite and PostgreSQL.
    """
    rows = await session.execute(
        select(Customer.company, Customer.id, Customer.number, Customer.name)
        .where(*_live(workspace_id), Customer.company.is_not(None), Customer.company != "")
    )
    by_company: dict[str, list[Any]] = {}
    for row in rows.all():
        by_company.setdefault(fold(row.company), []).append(row)
    pairs: list[tuple[Record, Record]] = []
    for group in by_company.values():
        if len(group) < 2:
            continue
        pairs.extend(_read_alike(group))
        named = [(Record(row.id, row.number), _comparable(row.name)) for row in group]
        for block in _blocks(named, prefix=0):
            pairs.extend(_matching_pairs(block, limit - len(pairs)))
            if len(pairs) >= limit:
                return pairs[:limit]
    return pairs


def _comparable(name: str) -> str:
    """The form `alike_names` scores: case-folded words in sorted order (token sort), computed once."""
    return " ".join(sorted(name.casefold().split()))



def _read_alike(group: list[Any]) -> list[tuple[Record, Record]]:
    """Pairs of Han names with the same reading (`alike_names`'s pinyin rule), found by grouping on it."""
    by_reading: dict[str, list[Record]] = {}
    for row in group:
        if has_han(row.name):
            by_reading.setdefault(han_reading(row.name), []).append(Record(row.id, row.number))
    return [pair for records in by_reading.values() for pair in combinations(sorted(records, key=lambda r: r.number), 2)]


def _blocks(named: list[Named], prefix: int) -> Iterator[list[Named]]:
    """The company's names in blocks of at most MAX_BLOCK, split by ever longer name prefixes.

    Only a company with thousands of customers is split; names that differ in
    their first letters are then not compared, which keeps the work near-linear.
    """
    if len(named) <= MAX_BLOCK:
        yield named
        return
    by_prefix = sorted(named, key=lambda item: item[1][: prefix + 1])
    blocks = [list(g) for _, g in groupby(by_prefix, key=lambda item: item[1][: prefix + 1])]
    if len(blocks) == 1 and len(blocks[0][0][1]) <= prefix:  # identical short names: nothing left to split by
        yield blocks[0][:MAX_BLOCK]
        return
    for block in blocks:
        yield from _blocks(block, prefix + 1)


def _matching_pairs(named: list[Named], limit: int) -> list[tuple[Record, Record]]:
    """Up to `limit` pairs within one block whose names score at least DUPLICATE_NAME_SCORE, older first."""
    if len(named) < 2:
        return []
    import numpy as np  # loaded when first needed, not with the process (start-up)
    from rapidfuzz import fuzz, process

    names = [name for _, name in named]
    scores = process.cdist(names, names, scorer=fuzz.ratio, score_cutoff=DUPLICATE_NAME_SCORE, dtype=np.uint8)
    rows, columns = np.nonzero(np.triu(scores, k=1))
    pairs = []
    for i, j in zip(rows[:limit].tolist(), columns[:limit].tolist()):
        first, second = named[i][0], named[j][0]
        pairs.append((first, second) if first.number < second.number else (second, first))
    return pairs

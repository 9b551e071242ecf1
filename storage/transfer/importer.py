"""Rows of a file into the book: matched, merged or added, written a batch per transaction.

Matching, in this order: our export's `#` column names its customer; then the
phone or e-mail of a customer already in the book (or added by an earlier row).
A match is merged only when the names are one person's (`李伟` is `Li Wei`,
`W. Fang` is `Wang Fang`); a match with a different name is added as its own
customer and listed as a possible duplicate, never folded in. A merge fills the
customer's empty fields and adds tags; a value that differs from what the
customer has goes to its notes; nothing is overwritten and the owner is kept.
The summary names who went into whom.

Owners: an owner column (`负责人`, `Contact owner`, `OwnerId` …) is matched to the
book's members by name (pinyin too: `Wang Fang` is 王芳), by the name an e-mail
stands for (`sarah.chen@…` is Sarah Chen) or by a platform account id; a value
that matches nobody, or several people, leaves the customer with the importer
and is listed.

Writing: every `batch_rows` rows are one transaction (bulk INSERTs, no row-by-row
RETURNING), so another team's command waits at most for one batch, never for
the whole import; between batches the importer yields the loop and the
database's writer lock. The next batch is read while one is written. Derived
data (stage, auto tags) is computed for every `SCORED_TOGETHER` customers
written, in the batch that reaches that many, and for the rest at the end.
"""
from __future__ import annotations

import asyncio
import inspect
import math
import re
import unicodedata
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Iterable

from rapidfuzz import fuzz, process
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, customers, scoring, workspaces
from storage.access import Scope
from storage.models import AuditEntry, Customer, CustomerTag, Identity, Member, Workspace
from storage.search import has_han, syllable
from storage.transfer.values import Candidate, Flag

#: Rows per transaction: another team's command waits for at most one (about 200 × 10 rows written
#: with their indexes, audit entries and scoring: tens of milliseconds).
BATCH_ROWS = 200
#: Customers whose derived data one refresh computes (every other batch, and the rest at the end):
#: half the statements of a refresh per batch; larger groups raised the import's peak RSS (1,000: +13 MB).
SCORED_TOGETHER = 400
#: Rows read (cleaned, phones parsed) between two turns of the event loop.
READ_BETWEEN_YIELDS = 100
#: Rows, merges, duplicates … each list in a summary stops here (the counts are always whole).
KEPT_PER_LIST = 200
Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]
Progress = Callable[[int, int], Awaitable[None] | None]
Saved = dict[int, tuple[str, str | None]]

#: The customer columns an imported row may set (every row of a bulk insert names them all).
_COLUMNS = ("name", "company", "title", "phone", "email", "address", "region", "industry", "size", "gender",
            "birthday", "source", "cadence_days", "prefs", "lost_at")
_MERGED_FIELDS = tuple(c for c in _COLUMNS if c not in ("name", "prefs", "lost_at"))


@dataclass(frozen=True)
class Merge:
    line: int
    name: str
    number: int
    into: str
    why: str  # number, phone, email


@dataclass(frozen=True)
class PossibleDuplicate:
    """Row `line` (added as `number`) may be `of_number`: same phone/e-mail/`#` but another name, or
    a similar name at the same company (`why`: phone, email, number, name)."""

    line: int
    name: str
    number: int | None
    of_number: int
    of_name: str
    why: str


@dataclass(frozen=True)
class Rejected:
    """A row left out: `no_name` (nothing to call it by), `not_yours` (it matches a customer the
    importer sees but may not change) or `colleague` (one they may not even see, so it is not named:
    customers.contact_match_refusal)."""

    line: int
    reason: str


@dataclass
class ImportResult:
    rows: int = 0
    added: int = 0
    merges: list[Merge] = field(default_factory=list)
    merged: int = 0
    duplicates: list[PossibleDuplicate] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)  # the first KEPT_PER_LIST of them
    rejected_rows: int = 0  # all of them
    flags: list[tuple[int, Flag]] = field(default_factory=list)
    flagged_rows: int = 0
    named_after: list[tuple[int, str]] = field(default_factory=list)
    #: Owner text that matched no member → the lines it was on.
    unmatched_owners: dict[str, list[int]] = field(default_factory=dict)
    renamed_tags: dict[str, str] = field(default_factory=dict)
    placeholders: int = 0
    #: Columns no rule knew that held values (left out unless the mapping said otherwise).
    unused_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    def keep(self, items: list[Any], item: Any) -> None:
        if len(items) < KEPT_PER_LIST:
            items.append(item)


class _Record:
    """A customer rows may merge into: one of the book, or one this import added (one per row of a
    100,000-row file is held to the end, so only what matching needs)."""

    __slots__ = ("id", "number", "owner_id", "name", "phone", "email", "pending")

    def __init__(self, id: int | None, number: int | None, owner_id: int, name: str, phone: str | None,
                 email: str | None) -> None:
        self.id, self.number, self.owner_id = id, number, owner_id
        self.name, self.phone, self.email = name, phone, email
        self.pending: _New | None = None  # added by this import, not written yet


#: Names this short (words sorted, as token_sort_ratio compares them) reach DUPLICATE_NAME_SCORE only
#: against an equal name: against one character more the best ratio is 2n / (2n + 1) (3 → 85.7 < 88).
_EXACT_ONLY = math.ceil(customers.DUPLICATE_NAME_SCORE / (2 * (100 - customers.DUPLICATE_NAME_SCORE))) - 1


def _token_sorted(name: str) -> str:
    """`name` as fuzz.token_sort_ratio compares it: case-folded, its words in sorted order."""
    folded = name.casefold()
    words = folded.split()
    return folded if len(words) == 1 else " ".join(sorted(words))


class _Colleagues:
    """The customers of one company, to ask `customers.alike_names` of a new name against all of
    them at once: fuzzily alike, or Han names read alike (`王方` for `王芳`).

    Short names (most Chinese ones) can only be fuzzily alike when equal, so they are one look-up;
    longer ones are one rapidfuzz pass over the company's longer names. Per row, not per pair: a
    100,000-row file of a few hundred companies compared every name with hundreds."""

    __slots__ = ("exact", "long_names", "long_records", "by_reading")

    def __init__(self) -> None:
        self.exact: dict[str, _Record] = {}
        self.long_names: list[str] = []
        self.long_records: list[_Record] = []
        self.by_reading: dict[str, _Record] = {}

    def add(self, record: _Record, reading: str | None) -> None:
        key = _token_sorted(record.name)
        key = record.name if key == record.name else key  # Han names: no second copy
        self.exact.setdefault(key, record)
        if len(key) > _EXACT_ONLY:
            self.long_names.append(key)
            self.long_records.append(record)
        if reading:
            self.by_reading.setdefault(reading, record)

    def alike(self, name: str, reading: str | None) -> _Record | None:
        """The first customer here whose name is `name`'s, or close enough to ask "same person?"."""
        key = _token_sorted(name)
        found = self.exact.get(key)
        if found is None and len(key) > _EXACT_ONLY:
            match = process.extractOne(key, self.long_names, scorer=fuzz.ratio,
                                       score_cutoff=customers.DUPLICATE_NAME_SCORE)
            found = self.long_records[match[2]] if match is not None else None
        return found if found is not None or not reading else self.by_reading.get(reading)


@dataclass
class _New:
    record: _Record
    candidate: Candidate
    owner_id: int


@dataclass
class _Batch:
    new: list[_New] = field(default_factory=list)
    #: customer id → the candidates merged into it (in file order)
    merges: dict[int, list[Candidate]] = field(default_factory=dict)


def comparable_name(name: str) -> list[str]:
    """A name's words for telling whether two names are one person's: folded, accents dropped,
    Han characters as their pinyin (`李伟` and `Li Wei` are both `li wei`)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", name).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    if has_han(text):
        text = "".join(f" {syllable(ch)} " if has_han(ch) else ch for ch in text)
    return sorted(w for w in re.split(r"[^\w]+", text) if w)


def same_person(a: str, b: str) -> bool:
    """Whether two names can be one person's: equal words in any order (`Smith, John`), the same
    pinyin, initials for words (`W. Fang` for `Wang Fang`), or a typing slip (`Jon Smith`)."""
    left, right = comparable_name(a), comparable_name(b)
    if left == right:
        return True
    shorter, longer = sorted((left, right), key=len)
    rest = list(longer)
    for word in shorter:
        hit = word if word in rest else next((w for w in rest if len(word) == 1 and w.startswith(word)), None)
        if hit is None:
            break
        rest.remove(hit)
    else:
        if len(shorter) == len(longer) or (len(shorter) >= 2 and len(rest) <= 1 and not has_han(a + b)):
            return True
    return fuzz.token_sort_ratio(" ".join(left), " ".join(right)) >= customers.DUPLICATE_NAME_SCORE


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


class Owners:
    """The book's members by every way a file may name them."""

    def __init__(self) -> None:
        self.by_key: dict[str, set[int]] = {}
        self._found: dict[str, int | None] = {}

    async def load(self, session: AsyncSession, workspace_id: int) -> None:
        for member_id, name in await session.execute(
                select(Member.id, Member.name).where(Member.workspace_id == workspace_id)):
            self._add(name, member_id)
            if has_han(name):
                self._add("".join(syllable(ch) for ch in name), member_id)
        for member_id, external_id in await session.execute(
                select(Identity.member_id, Identity.external_id).where(Identity.workspace_id == workspace_id)):
            self._add(external_id, member_id)

    def _add(self, text: str, member_id: int) -> None:
        key = _key(text)
        if key:
            self.by_key.setdefault(key, set()).add(member_id)

    def find(self, text: str) -> int | None:
        """The one member `text` names, or None (worked out once per text: a file names a few
        owners on every row)."""
        if text not in self._found:
            self._found[text] = self._find(text)
        return self._found[text]

    def _find(self, text: str) -> int | None:
        text = text.strip().lstrip("@")
        keys = [_key(text)]
        if "@" in text:
            keys.append(_key(text.split("@", 1)[0]))
        for key in keys:
            found = self.by_key.get(key, set())
            if len(found) == 1:
                return next(iter(found))
        return None


class Importer:
    """One import, as `scope`'s member: `take` sorts each row, `write` stores a batch."""

    def __init__(self, workspace: Workspace, scope: Scope, now: datetime, *, dry_run: bool = False) -> None:
        self.workspace, self.scope, self.now = workspace, scope, now
        self.result = ImportResult(dry_run=dry_run)
        #: phone / e-mail → the first customer with it (keyed by the record's own strings: no copies)
        self.by_phone: dict[str, _Record] = {}
        self.by_email: dict[str, _Record] = {}
        self.by_number: dict[int, _Record] = {}
        #: folded company → the customers the importer may see there
        self.by_company: dict[str, _Colleagues] = {}
        self.owners = Owners()
        self._batch = _Batch()
        #: Customers written by committed batches whose derived data is not computed yet.
        self.unscored: set[int] = set()

    async def load_book(self, session: AsyncSession) -> None:
        """The workspace's live customers, once: numbers, phones, e-mails, who works where; the members."""
        rows = await session.execute(
            select(Customer.id, Customer.number, Customer.owner_id, Customer.name, Customer.company,
                   Customer.phone, Customer.email)
            .where(Customer.workspace_id == self.workspace.id, Customer.deleted_at.is_(None))
            .order_by(Customer.number))
        own_only = self.scope.sees_only_own
        for id, number, owner_id, name, company, phone, email in rows:
            record = _Record(id, number, owner_id, name, phone, email)
            self.by_number[record.number] = record
            self._index_contacts(record)
            if not own_only or record.owner_id == self.scope.member_id:
                self._index_company(record, company)
        await self.owners.load(session, self.workspace.id)

    def _index_contacts(self, record: _Record) -> None:
        if record.phone:
            self.by_phone.setdefault(record.phone, record)
        if record.email:
            self.by_email.setdefault(record.email, record)

    def _index_company(self, record: _Record, company: str | None) -> None:
        if company:
            reading = customers.han_reading(record.name) if has_han(record.name) else None
            self.by_company.setdefault(company.casefold(), _Colleagues()).add(record, reading)

    # --- sorting rows -----------------------------------------------------------------------

    def take(self, candidate: Candidate) -> None:
        """Sort one row into this batch: added, merged, or left out (and why)."""
        result = self.result
        result.rows += 1
        for flag in candidate.flags:
            result.keep(result.flags, (candidate.line, flag))
        result.flagged_rows += bool(candidate.flags)
        result.placeholders += candidate.placeholders
        for typed, renamed in candidate.renamed_tags:
            result.renamed_tags.setdefault(typed, renamed)
        name = candidate.values.get("name")
        if not name:
            result.rejected_rows += 1
            result.keep(result.rejected, Rejected(candidate.line, "no_name"))
            return
        if candidate.named_after:
            result.keep(result.named_after, (candidate.line, candidate.named_after))
        target, why = self._match(candidate)
        refusal = target and customers.contact_match_refusal(self.scope, self.workspace.id, target.owner_id)
        if refusal:
            result.rejected_rows += 1
            result.keep(result.rejected, Rejected(candidate.line, refusal))
            return
        if target is not None and same_person(name, target.name):
            self._merge(target, candidate, why)
            return
        record = self._add(candidate)
        if target is not None:
            self._pending_duplicates.append((candidate.line, record, target, why))

    def _match(self, candidate: Candidate) -> tuple[_Record | None, str]:
        values = candidate.values
        if candidate.number is not None and candidate.number in self.by_number:
            return self.by_number[candidate.number], "number"
        for why, index in (("phone", self.by_phone), ("email", self.by_email)):
            value = values.get(why)
            if value and value in index:
                return index[value], why
        return None, ""

    def _owner(self, candidate: Candidate) -> int:
        if not candidate.owner:
            return self.scope.member_id
        member_id = self.owners.find(candidate.owner)
        if member_id is None:
            lines = self.result.unmatched_owners.setdefault(candidate.owner[:80], [])
            if len(lines) < KEPT_PER_LIST:
                lines.append(candidate.line)
            return self.scope.member_id
        return member_id

    def _add(self, candidate: Candidate) -> _Record:
        values = candidate.values
        record = _Record(None, None, self._owner(candidate), values["name"], values.get("phone"), values.get("email"))
        company = values.get("company")
        if company:
            reading = customers.han_reading(record.name) if has_han(record.name) else None
            colleagues = self.by_company.setdefault(company.casefold(), _Colleagues())
            alike = colleagues.alike(record.name, reading)
            if alike is not None:
                self._pending_duplicates.append((candidate.line, record, alike, "name"))
            colleagues.add(record, reading)
        record.pending = _New(record, candidate, record.owner_id)
        self._index_contacts(record)
        self._batch.new.append(record.pending)
        self.result.added += 1
        return record

    def _merge(self, target: _Record, candidate: Candidate, why: str) -> None:
        result = self.result
        result.merged += 1
        if target.pending is not None:  # added by an earlier row of this file, not written yet
            _fill_values(target.pending.candidate, candidate)
        elif target.id is not None:  # (a dry run's added customers have none)
            self._batch.merges.setdefault(target.id, []).append(candidate)
        if target.number is not None:
            result.keep(result.merges, Merge(candidate.line, candidate.values["name"], target.number, target.name, why))
        else:
            self._pending_merges.append((candidate, target, why))
        target.phone = target.phone or candidate.values.get("phone")
        target.email = target.email or candidate.values.get("email")
        self._index_contacts(target)

    _pending_duplicates: list[tuple[int, _Record, _Record, str]]
    _pending_merges: list[tuple[Candidate, _Record, str]]

    def start_batch(self) -> None:
        self._batch = _Batch()
        self._pending_duplicates = []
        self._pending_merges = []

    # --- writing ------------------------------------------------------------------------------

    async def write(self, session: AsyncSession) -> Saved:
        """Store this batch (the caller's transaction) and return what the search index needs; the
        derived data of every `SCORED_TOGETHER` customers written is computed with the batch that
        reaches that many (a refresh costs per statement more than per customer)."""
        batch = self._batch
        if session.get_bind().dialect.name == "postgresql":
            # the book grows by the whole file: a plan PostgreSQL cached for its first batches (a
            # generic plan, after five runs of a prepared statement) would scan what is now large
            await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        saved = await self._insert(session, batch.new) | await self._fill(session, batch.merges)
        if len(self.unscored) + len(saved) >= SCORED_TOGETHER:
            await self.score(session, saved)
        else:
            self.unscored.update(saved)
        return saved

    async def score(self, session: AsyncSession, also: Iterable[int] = ()) -> None:
        """Derived data (stage, auto tags …) of the customers written but not scored yet, and `also`'s."""
        # an import brings no purchases: the workspace-wide RFM ranking is left to the nightly recompute
        await scoring.refresh(session, self.workspace, self.unscored | set(also), self.now, purchases_changed=False)
        self.unscored.clear()

    def finish_batch(self) -> None:
        """Name what this batch did, now that its new customers have numbers (or not, in a dry run)."""
        result = self.result
        for line, record, other, why in self._pending_duplicates:
            if other.number is not None:
                result.keep(result.duplicates,
                            PossibleDuplicate(line, record.name, record.number, other.number, other.name, why))
        for candidate, target, why in self._pending_merges:
            if target.number is not None:
                result.keep(result.merges, Merge(candidate.line, candidate.values["name"], target.number,
                                                 target.name, why))
        for new in self._batch.new:
            new.record.pending = None  # later rows merge into it like into any customer of the book
            if result.dry_run:
                new.record.number = None

    async def _insert(self, session: AsyncSession, added: list[_New]) -> Saved:
        """New customers with their numbers, manual tags and audit entries, in bulk.

        Plain multi-row INSERTs (no RETURNING, which SQLite would run row by row); the ids are read
        back by the numbers just taken."""
        if not added:
            return {}
        ws_id, member_id = self.workspace.id, self.scope.member_id
        first = await workspaces.next_number(session, ws_id, "customer", len(added))
        given = []
        for new in added:
            values = {("cadence_days" if k == "cadence" else k): v for k, v in new.candidate.values.items()}
            if new.candidate.lost:
                values["lost_at"] = self.now
            given.append(values)
        # every row names the same columns: those some row of the batch sets (the others stay NULL,
        # and no customer column has a default), so a file's empty columns cost no parameters
        unset = dict.fromkeys(c for c in _COLUMNS if any(c in values for values in given))
        rows = []
        for offset, (new, values) in enumerate(zip(added, given)):
            new.record.number = first + offset
            rows.append({**unset, **values, "workspace_id": ws_id, "number": new.record.number,
                         "owner_id": new.owner_id, "created_by": member_id, "stage": "lead",
                         "created_at": self.now, "updated_at": self.now})
        await session.execute(insert(Customer.__table__), rows)
        ids = dict((await session.execute(
            select(Customer.number, Customer.id)
            .where(Customer.workspace_id == ws_id, Customer.number.between(first, first + len(rows) - 1)))).all())
        entries, tag_rows = [], []
        for new, row in zip(added, rows):
            new.record.id = customer_id = ids[new.record.number]
            tags = new.candidate.tags
            after = {k: audit.plain(row.get(k)) for k in audit.CUSTOMER_FIELDS}  # audit.snapshot, without a model
            entries.append({"workspace_id": ws_id, "member_id": member_id, "customer_id": customer_id,
                            "action": "import", "before": None, "after": after | ({"tags": tags} if tags else {}),
                            "at": self.now})
            tag_rows += [{"workspace_id": ws_id, "customer_id": customer_id, "name": name, "auto": False}
                         for name in tags]
        await session.execute(insert(AuditEntry.__table__), entries)
        if tag_rows:
            await session.execute(insert(CustomerTag.__table__), tag_rows)
        return {ids[r["number"]]: (r["name"], r.get("company")) for r in rows}

    async def _fill(self, session: AsyncSession, merges: dict[int, list[Candidate]]) -> Saved:
        """Fill the empty fields and add the tags of customers already in the book (audited); values
        that differ from theirs go to their notes."""
        if not merges:
            return {}
        held = list(await session.scalars(select(Customer).where(Customer.id.in_(list(merges)))))
        tags_before = await _manual_tags(session, list(merges))
        new_tags = []
        for customer in held:
            gaps: dict[str, Any] = {}
            notes: list[str] = []
            tags: list[str] = []
            for candidate in merges[customer.id]:
                values = {("cadence_days" if k == "cadence" else k): v for k, v in candidate.values.items()}
                for key in _MERGED_FIELDS:
                    value = values.get(key)
                    if value in (None, ""):
                        continue
                    current = gaps.get(key, getattr(customer, key))
                    if current in (None, ""):
                        gaps[key] = value
                    elif current != value:
                        notes.append(f"{candidate.sources.get(key, key)}: {value}")
                notes += [line for line in (values.get("prefs") or "").split("\n") if line]
                tags += [t for t in candidate.tags if t not in tags]
            prefs = _with_notes(customer.prefs, notes)
            if prefs != customer.prefs:
                gaps["prefs"] = prefs
            customers.apply(session, customer, gaps, member_id=self.scope.member_id, now=self.now, action="import")
            before = tags_before.get(customer.id, [])
            added = [name for name in tags if name not in before]
            if added:
                new_tags += [{"workspace_id": self.workspace.id, "customer_id": customer.id, "name": name,
                              "auto": False} for name in added]
                customer.updated_at = self.now
                audit.record(session, workspace_id=self.workspace.id, member_id=self.scope.member_id,
                             action="tag", customer_id=customer.id, at=self.now,
                             before={"tags": before}, after={"tags": sorted({*before, *added})})
        if new_tags:
            await session.execute(insert(CustomerTag.__table__), new_tags)
        await session.flush()
        for customer in held:  # not kept in the session: scoring would reload each one by one
            session.expunge(customer)
        return {c.id: (c.name, c.company) for c in held}


def _fill_values(into: Candidate, row: Candidate) -> None:
    """A later row of the file merged into one added earlier and not written yet."""
    for key, value in row.values.items():
        if key == "prefs":
            continue
        current = into.values.get(key)
        if current in (None, ""):
            into.values[key] = value
        elif current != value and key != "name":
            row.values.setdefault("prefs", "")
            row.values["prefs"] = f"{row.sources.get(key, key)}: {value}\n{row.values['prefs']}".strip()
    if row.values.get("prefs"):
        into.values["prefs"] = _with_notes(into.values.get("prefs"), row.values["prefs"].split("\n"))
    into.tags += [t for t in row.tags if t not in into.tags]


def _with_notes(prefs: str | None, lines: Iterable[str]) -> str | None:
    """`prefs` with the lines it does not already hold added below."""
    text = prefs or ""
    for line in lines:
        if line and line not in text:
            text = f"{text}\n{line}" if text else line
    return text or prefs


async def _manual_tags(session: AsyncSession, customer_ids: list[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        select(CustomerTag.customer_id, CustomerTag.name)
        .where(CustomerTag.customer_id.in_(customer_ids), CustomerTag.auto.is_(False))
        .order_by(CustomerTag.name))
    found: dict[int, list[str]] = {}
    for customer_id, name in rows:
        found.setdefault(customer_id, []).append(name)
    return found


async def import_rows(
    transaction: Transaction,
    workspace: Workspace,
    scope: Scope,
    rows: Iterable[Candidate],
    *,
    now: datetime,
    total: int,
    progress: Progress | None = None,
    saved: Callable[[Saved], None] | None = None,
    batch_rows: int = BATCH_ROWS,
    dry_run: bool = False,
) -> ImportResult:
    """Import the rows as `scope`'s member, each batch of `batch_rows` in its own `transaction()`.

    `progress(done, total)` is called after each batch; `saved(ids)` after each batch commits (the
    search index). A dry run reads the book and sorts every row but writes nothing."""
    importer = Importer(workspace, scope, now, dry_run=dry_run)
    async with transaction() as session:
        await importer.load_book(session)
    iterator = iter(rows)

    async def read_batch() -> list[Candidate]:
        batch: list[Candidate] = []
        for candidate in iterator:
            batch.append(candidate)
            if len(batch) >= batch_rows:
                break
            if len(batch) % READ_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)  # reading rows is work on the loop: let other chats' updates in
        return batch

    async def write() -> Saved:
        async with transaction() as session:
            return await importer.write(session)

    done = 0
    try:
        batch = await read_batch()
        while batch:
            importer.start_batch()
            for candidate in batch:
                importer.take(candidate)
            # the next rows are read while the database writes these: its driver works beside the loop
            reading = asyncio.ensure_future(read_batch())
            if not dry_run:
                try:
                    written = await write()
                except BaseException:
                    reading.cancel()
                    raise
                if saved is not None:
                    saved(written)
            importer.finish_batch()
            done += len(batch)
            if progress is not None:
                outcome = progress(min(done, total), total)
                if inspect.isawaitable(outcome):
                    await outcome
            await asyncio.sleep(0)  # the next batch queues behind whoever waited for this one
            batch = await reading
    finally:
        if importer.unscored:  # the last batches; or those written before the file failed
            async with transaction() as session:
                await importer.score(session)
    if not dry_run and done >= ANALYZE_AFTER_ROWS:
        async with transaction() as session:
            await analyze_after_bulk_write(session)
    return importer.result


#: An import this big changes the tables' sizes enough for PostgreSQL's planner to need new statistics.
ANALYZE_AFTER_ROWS = 1_000
#: The tables an import writes in bulk.
IMPORTED_TABLES = ("customers", "customer_tags", "interactions", "purchases", "audit_log")


async def analyze_after_bulk_write(session: AsyncSession) -> None:
    """PostgreSQL: fresh statistics for the tables an import filled. Until autovacuum's ANALYZE comes
    round (up to a minute or more later), the planner takes a 100,000-customer book for the near-empty
    one it saw, and `/find` walked the whole workspace to pick 68 customers by id (200 ms instead of 1).
    SQLite keeps no statistics unless asked, and its plans here are written not to need them."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"ANALYZE {', '.join(IMPORTED_TABLES)}"))

"""CSV in and out of the customer book (SPEC §6), whichever door it came through.

Reading: UTF-8 (with or without BOM), GBK/GB18030 and UTF-16 (Excel's
"Unicode text") are told apart by decoding strictly; the delimiter (comma,
semicolon, tab) is taken from the header line; headers are matched in English
or Chinese, case- and width-insensitively. A title row above the header (a
habit of Chinese spreadsheets) is skipped: the header is the first of the
first few rows that has a name column.

Importing: every row goes through `customers.clean_fields`, like a typed
`/add`. A row whose phone or e-mail is already in the book (or in an earlier
row) is merged: empty fields filled, tags added, nothing overwritten, the
owner kept. Customers are written in chunks with bulk statements, against a
phone/e-mail index loaded once, so 10,000 rows take seconds.

Audit: each created customer gets one `import` entry (its fields and tags);
a merged customer gets an `import` entry for the fields filled and a `tag`
entry for the tags added, the same shapes `/edit` and `/tag` write.
"""
from __future__ import annotations

import codecs
import csv
import inspect
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Awaitable, Callable, Collection, Mapping

import phonenumbers
from rapidfuzz import fuzz, process
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, customers, scoring, standardise, workspaces
from storage.access import Scope
from storage.models import AuditEntry, Customer, CustomerTag, Member, Workspace
from storage.standardise import InvalidValue

#: Columns taken from a file, in the order `clean_fields` reads them.
IMPORTED = ("name", "company", "title", "phone", "email", "address", "region", "industry",
            "size", "gender", "birthday", "source", "cadence", "prefs")
#: Columns an export writes that are worked out by the bot: recognised, not imported.
DERIVED = ("number", "stage", "tier", "ltv", "last_contact", "next_followup", "owner")
EXPORT_COLUMNS = ("number", "name", "company", "title", "phone", "email", "address", "region", "industry",
                  "size", "gender", "birthday", "source", "tags", "prefs", "stage", "tier", "ltv",
                  "last_contact", "next_followup", "owner")
#: Header words understood in any file, beyond the labels an export writes (passed in by the caller).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "名字", "客户", "客户姓名", "联系人", "name", "full name", "contact"),
    "phone": ("电话", "手机", "手机号", "手机号码", "电话号码", "联系电话", "phone", "mobile", "tel", "telephone"),
    "email": ("邮箱", "电子邮件", "电子邮箱", "邮件", "email", "e-mail", "mail"),
    "company": ("公司", "单位", "公司名称", "company", "organization", "organisation"),
    "title": ("职位", "职务", "title", "job title", "position"),
    "address": ("地址", "address"),
    "region": ("地区", "区域", "城市", "region", "city", "area"),
    "industry": ("行业", "industry"),
    "size": ("规模", "公司规模", "size", "company size"),
    "gender": ("性别", "gender", "sex"),
    "birthday": ("生日", "出生日期", "birthday", "birth date", "date of birth"),
    "source": ("来源", "客户来源", "source", "lead source"),
    "tags": ("标签", "tags", "tag"),
    "prefs": ("偏好", "备注", "prefs", "preferences", "notes", "note"),
    "cadence": ("联系周期", "cadence"),
    "number": ("编号", "序号", "#", "no", "number", "id"),
}
#: Columns whose values add up when a file has several of them (`备注` and `偏好`).
_JOINED = {"tags": " ", "prefs": "; "}
HEADER_SCAN_ROWS = 10
CHUNK_ROWS = 1000
MAX_VALUE_SHOWN = 60
_SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx (zip), .xls (OLE)
_EXCEL_TEXT = re.compile(r'^="(.*)"$', re.S)  # Excel's ="0123" keeps leading zeros
_FORMULA_START = ("=", "+", "-", "@")

Progress = Callable[[int, int], Awaitable[None] | None]
#: customer id → (name, company) of customers an import wrote: what the search index needs.
_Saved = dict[int, tuple[str, str | None]]


class CsvProblem(Exception):
    """The file as a whole cannot be imported; `reason` is one of
    `spreadsheet`, `encoding`, `empty`, `malformed` (with `line`), `no_name_column` (with `columns`)."""

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


@dataclass(frozen=True)
class Row:
    line: int  # physical line in the file where the row starts; the header is line 1 (or below a title)
    values: dict[str, str]  # column → non-empty text


@dataclass(frozen=True)
class Table:
    rows: list[Row]
    unknown_columns: list[str]


@dataclass(frozen=True)
class Rejected:
    """A row left out, and why: `reason` is `no_name`, `invalid` (`field`, `value`),
    `too_long` (`field`), `not_yours` (its phone or e-mail belongs to a customer the importer may not edit)
    or `colleague` (to one they may not even see: customers.contact_match_refusal)."""

    line: int
    reason: str
    params: dict[str, str]


@dataclass(frozen=True)
class PossibleDuplicate:
    """A customer added by the import whose name is close to another's at the same company."""

    number: int
    name: str
    of_number: int
    of_name: str


@dataclass
class ImportResult:
    rows: int
    added: int = 0
    merged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    possible_duplicates: list[PossibleDuplicate] = field(default_factory=list)
    #: Auto tag names found in the file (vip, new…): the bot sets those itself.
    ignored_tags: list[str] = field(default_factory=list)
    #: id → (name, company) of every customer added or changed, for the search index.
    saved: dict[int, tuple[str, str | None]] = field(default_factory=dict)


# ------------------------------------------------------------------ reading


def header_key(text: str) -> str:
    """How headers are compared: width- and case-folded, letters and digits only (`E-mail` = `ｅｍａｉｌ`)."""
    folded = standardise.fold(text).casefold()
    return "".join(ch for ch in folded if ch.isalnum()) or folded


def header_map(labels: Mapping[str, str] = {}) -> dict[str, str]:
    """Header key → column: the built-in aliases plus `labels` (header text → column, e.g. export labels)."""
    known = {header_key(alias): column for column, aliases in HEADER_ALIASES.items() for alias in aliases}
    known.update({header_key(label): column for label, column in labels.items()})
    return known


def decode(content: bytes) -> str:
    """The file's text: UTF-16 by its BOM, else UTF-8 (BOM optional), else GB18030 (a superset of GBK)."""
    if content.startswith(_SPREADSHEET_MAGIC):
        raise CsvProblem("spreadsheet")
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "gb18030")
    for encoding in encodings:
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise CsvProblem("encoding")


def sniff_delimiter(text: str) -> str:
    """The delimiter used most on the first line that has any (ties: comma)."""
    for line in text.splitlines():
        counts = {delimiter: line.count(delimiter) for delimiter in (",", ";", "\t")}
        if any(counts.values()):
            return max(counts, key=lambda d: counts[d])  # max keeps the first of equals
    return ","


def cell(text: str) -> str:
    """A cell's value: trimmed, Excel's `="0123"` unwrapped, an export's formula guard `'` dropped."""
    value = text.strip()
    excel = _EXCEL_TEXT.match(value)
    if excel:
        value = excel.group(1).strip()
    if value[:1] == "'" and value[1:2] in _FORMULA_START:
        value = value[1:]
    return value


def read_table(content: bytes, labels: Mapping[str, str] = {}) -> Table:
    """Decode and parse a CSV file into rows keyed by column, each with its line number.

    Raises `CsvProblem` when no row can be read at all.
    """
    text = decode(content)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    known = header_map(labels)
    rows: list[Row] = []
    columns: list[str | None] | None = None
    unknown: list[str] = []
    first_cells: list[str] = []
    scanned = 0
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            cells = [cell(c) for c in cells]
            if not any(cells):
                continue
            if columns is None:
                first_cells = first_cells or cells
                mapped = [known.get(header_key(c)) if c else None for c in cells]
                scanned += 1
                if "name" in mapped:
                    columns = mapped
                    unknown = list(dict.fromkeys(c for c, m in zip(cells, mapped) if c and m is None))
                elif scanned >= HEADER_SCAN_ROWS:
                    break
                continue
            rows.append(Row(start, _row_values(columns, cells)))
    except csv.Error:
        raise CsvProblem("malformed", line=line + 1) from None
    if columns is None:
        if not first_cells:
            raise CsvProblem("empty")
        raise CsvProblem("no_name_column", columns=", ".join(c for c in first_cells if c)[:200])
    return Table(rows, unknown)


def _row_values(columns: list[str | None], cells: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for column, value in zip(columns, cells):
        if column is None or not value:
            continue
        if column in values and column in _JOINED:
            values[column] += _JOINED[column] + value
        else:
            values.setdefault(column, value)  # the first non-empty of repeated columns wins
    return values


# ------------------------------------------------------------------ importing


@dataclass(eq=False)
class _Record:
    """A customer the import may merge into: one of the book, or one added by this import."""

    id: int | None
    number: int | None
    owner_id: int
    name: str
    company: str | None
    phone: str | None
    email: str | None
    #: For a customer this import adds, not yet written: its values and tags.
    values: dict[str, Any] | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class _Chunk:
    new: list[_Record] = field(default_factory=list)
    #: customer id → (values, tags) to fill into it, gathered from the chunk's rows.
    merges: dict[int, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)


class _Importer:
    def __init__(self, session: AsyncSession, workspace: Workspace, scope: Scope, now: datetime,
                 auto_tags: Collection[str]) -> None:
        self.session, self.workspace, self.scope, self.now = session, workspace, scope, now
        self.auto_tags = auto_tags
        self.by_contact: dict[str, _Record] = {}  # "p:+86…" / "e:li@…" → record
        #: folded company → (folded names, records) of the customers there the importer may see
        self.by_company: dict[str, tuple[list[str], list[_Record]]] = {}
        self.duplicates: list[tuple[_Record, _Record]] = []

    async def load_book(self) -> None:
        """The workspace's live customers, once: who has which phone and e-mail, who works where."""
        rows = await self.session.execute(
            select(Customer.id, Customer.number, Customer.owner_id, Customer.name, Customer.company,
                   Customer.phone, Customer.email)
            .where(Customer.workspace_id == self.workspace.id, Customer.deleted_at.is_(None))
            .order_by(Customer.number)
        )
        own_only = self.scope.sees_only_own
        for row in rows:
            record = _Record(*row)
            self._index_contacts(record)
            if not own_only or record.owner_id == self.scope.member_id:
                self._index_company(record)

    def _index_contacts(self, record: _Record) -> None:
        for key in _contact_keys(record.phone, record.email):
            self.by_contact.setdefault(key, record)

    def _index_company(self, record: _Record) -> None:
        if record.company:
            names, records = self.by_company.setdefault(record.company.casefold(), ([], []))
            names.append(record.name.casefold())
            records.append(record)

    def take(self, row: Row, chunk: _Chunk, result: ImportResult) -> None:
        """Sort one row: rejected, merged into a known record, or a new customer."""
        try:
            values, tags = self._clean(row, result)
        except InvalidValue as problem:
            result.rejected.append(_rejection(row.line, problem))
            return
        target = next((self.by_contact[k] for k in _contact_keys(values.get("phone"), values.get("email"))
                       if k in self.by_contact), None)
        refusal = target and customers.contact_match_refusal(self.scope, self.workspace.id, target.owner_id)
        if target is None:
            self._add(values, tags, chunk)
            result.added += 1
        elif refusal:
            result.rejected.append(Rejected(row.line, refusal, {}))
        else:
            self._merge(target, values, tags, chunk)
            result.merged += 1

    def _clean(self, row: Row, result: ImportResult) -> tuple[dict[str, Any], list[str]]:
        if "name" not in row.values:
            raise InvalidValue("no_name", "")
        raw = {column: row.values[column] for column in IMPORTED if column in row.values}
        values = customers.clean_fields(raw, self.workspace, self.now)
        tags = standardise.tags(row.values["tags"]) if "tags" in row.values else []
        for name in tags:
            if name in self.auto_tags and name not in result.ignored_tags:
                result.ignored_tags.append(name)
        return values, [name for name in tags if name not in self.auto_tags]

    def _add(self, values: dict[str, Any], tags: list[str], chunk: _Chunk) -> None:
        record = _Record(None, None, self.scope.member_id, values["name"], values.get("company"),
                         values.get("phone"), values.get("email"), values=values, tags=tags)
        if record.company and record.company.casefold() in self.by_company:
            names, peers = self.by_company[record.company.casefold()]
            # customers.names_match, over all the company's names at once
            match = process.extractOne(record.name.casefold(), names, scorer=fuzz.token_sort_ratio,
                                       score_cutoff=customers.DUPLICATE_NAME_SCORE)
            if match is not None:
                self.duplicates.append((record, peers[match[2]]))
        self._index_contacts(record)
        self._index_company(record)
        chunk.new.append(record)

    def _merge(self, target: _Record, values: dict[str, Any], tags: list[str], chunk: _Chunk) -> None:
        """Fill what the target lacks (first value wins) and add its tags; nothing is overwritten."""
        if target.values is not None:  # added by this import and not written yet
            gathered, gathered_tags = target.values, target.tags
        else:
            assert target.id is not None
            gathered, gathered_tags = chunk.merges.setdefault(target.id, ({}, []))
        for key, value in values.items():
            if value is not None and gathered.get(key) in (None, ""):
                gathered[key] = value
        gathered_tags.extend(name for name in tags if name not in gathered_tags)
        target.phone = target.phone or values.get("phone")
        target.email = target.email or values.get("email")
        target.company = target.company or values.get("company")
        self._index_contacts(target)

    async def write(self, chunk: _Chunk, result: ImportResult) -> None:
        saved = await self._insert(chunk.new) | await self._fill(chunk.merges)
        await scoring.refresh(self.session, self.workspace, saved, self.now)
        result.saved.update(saved)

    async def _insert(self, records: list[_Record]) -> _Saved:
        """Write the new customers with their numbers, manual tags and audit entries, in bulk.

        Plain multi-row INSERTs (no RETURNING, which SQLite would run row by row);
        the ids are read back by the numbers just taken.
        """
        if not records:
            return {}
        ws_id, member_id = self.workspace.id, self.scope.member_id
        first = await workspaces.next_number(self.session, ws_id, "customer", len(records))
        rows = []
        for record in records:
            assert record.values is not None
            record.number = first + len(rows)
            rows.append({
                **dict.fromkeys(_COLUMNS), **record.values, "workspace_id": ws_id, "number": record.number,
                "owner_id": member_id, "created_by": member_id, "stage": "lead",
                "created_at": self.now, "updated_at": self.now,
            })
        await self.session.execute(insert(Customer.__table__), rows)
        ids = dict((await self.session.execute(
            select(Customer.number, Customer.id)
            .where(Customer.workspace_id == ws_id, Customer.number.between(first, first + len(rows) - 1))
        )).all())
        entries, tag_rows = [], []
        for record, row in zip(records, rows):
            record.id = ids[record.number]
            after = audit.snapshot(Customer(**row)) | ({"tags": record.tags} if record.tags else {})
            entries.append({"workspace_id": ws_id, "member_id": member_id, "customer_id": record.id,
                            "action": "import", "before": None, "after": after, "at": self.now})
            tag_rows += [{"workspace_id": ws_id, "customer_id": record.id, "name": name, "auto": False}
                         for name in record.tags]
            record.values = None  # written: later rows merge into it like into any customer of the book
        await self.session.execute(insert(AuditEntry.__table__), entries)
        if tag_rows:
            await self.session.execute(insert(CustomerTag.__table__), tag_rows)
        return {ids[r.number]: (r.name, r.company) for r in records}

    async def _fill(self, merges: dict[int, tuple[dict[str, Any], list[str]]]) -> _Saved:
        """Fill the empty fields and add the tags of customers already in the book (audited)."""
        if not merges:
            return {}
        held = list(await self.session.scalars(select(Customer).where(Customer.id.in_(list(merges)))))
        tags_before = await _manual_tags(self.session, list(merges))
        new_tags = []
        for customer in held:
            values, tags = merges[customer.id]
            gaps = {k: v for k, v in values.items() if getattr(customer, k) in (None, "")}
            customers.apply(self.session, customer, gaps, member_id=self.scope.member_id, now=self.now,
                            action="import")
            before = tags_before.get(customer.id, [])
            added = [name for name in tags if name not in before]
            if added:
                new_tags += [{"workspace_id": self.workspace.id, "customer_id": customer.id, "name": name,
                              "auto": False} for name in added]
                customer.updated_at = self.now
                audit.record(self.session, workspace_id=self.workspace.id, member_id=self.scope.member_id,
                             action="tag", customer_id=customer.id, at=self.now,
                             before={"tags": before}, after={"tags": sorted({*before, *added})})
        if new_tags:
            await self.session.execute(insert(CustomerTag.__table__), new_tags)
        await self.session.flush()
        for customer in held:  # not kept in the session: scoring would reload each one by one
            self.session.expunge(customer)
        return {c.id: (c.name, c.company) for c in held}

    def possible_duplicates(self) -> list[PossibleDuplicate]:
        return [PossibleDuplicate(new.number, new.name, old.number, old.name)
                for new, old in self.duplicates if new.number is not None and old.number is not None]


#: The customer columns an imported row may set (every row of a bulk insert names them all).
_COLUMNS = tuple("cadence_days" if column == "cadence" else column for column in IMPORTED)


def _contact_keys(phone: str | None, email: str | None) -> list[str]:
    return [key for key in (phone and f"p:{phone}", email and f"e:{email}") if key]


def _rejection(line: int, problem: InvalidValue) -> Rejected:
    if problem.field == "no_name":
        return Rejected(line, "no_name", {})
    if problem.field == "too_long":
        return Rejected(line, "too_long", {"field": problem.value})
    return Rejected(line, "invalid", {"field": problem.field, "value": problem.value[:MAX_VALUE_SHOWN]})


async def _manual_tags(session: AsyncSession, customer_ids: list[int]) -> dict[int, list[str]]:
    rows = await session.execute(
        select(CustomerTag.customer_id, CustomerTag.name)
        .where(CustomerTag.customer_id.in_(customer_ids), CustomerTag.auto.is_(False))
        .order_by(CustomerTag.name)
    )
    found: dict[int, list[str]] = {}
    for customer_id, name in rows:
        found.setdefault(customer_id, []).append(name)
    return found


async def import_table(
    session: AsyncSession,
    workspace: Workspace,
    scope: Scope,
    table: Table,
    *,
    now: datetime,
    progress: Progress | None = None,
    auto_tags: Collection[str] = scoring.AUTO_TAGS,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportResult:
    """Import the rows as `scope`'s member (the owner of what is added); the caller commits.

    `progress(done, total)` is called after each chunk of `chunk_rows` rows and at the end.
    Tags in `auto_tags` (the auto tags' names, and their labels if the caller knows them) are
    left out: the bot sets those itself.
    """
    result = ImportResult(rows=len(table.rows), unknown_columns=list(table.unknown_columns))
    importer = _Importer(session, workspace, scope, now, auto_tags)
    await importer.load_book()
    done = 0
    for start in range(0, len(table.rows), chunk_rows):
        chunk = _Chunk()
        for row in table.rows[start:start + chunk_rows]:
            importer.take(row, chunk, result)
        await importer.write(chunk, result)
        done = min(start + chunk_rows, len(table.rows))
        if progress is not None and done < len(table.rows):
            await _call(progress, done, len(table.rows))
    result.possible_duplicates = importer.possible_duplicates()
    if progress is not None:
        await _call(progress, len(table.rows), len(table.rows))
    return result


async def _call(progress: Progress, done: int, total: int) -> None:
    outcome = progress(done, total)
    if inspect.isawaitable(outcome):
        await outcome


# ------------------------------------------------------------------ exporting


async def count_visible(session: AsyncSession, scope: Scope) -> int:
    """How many customers an export by `scope` holds."""
    return await session.scalar(select(func.count()).select_from(scope.customers().subquery())) or 0


async def export_csv(
    session: AsyncSession,
    scope: Scope,
    headers: Mapping[str, str],
    *,
    tz: tzinfo = timezone.utc,
    stage_names: Mapping[str, str] = {},
) -> bytes:
    """The customers `scope` sees as CSV: UTF-8 with a BOM (Excel reads Chinese right), a header row
    of `headers` (column → label), times in `tz`, stages named by `stage_names`.

    Phones are written readably (`138 0013 8000` in the workspace's country, else `+1 415-555-2671`),
    which Excel keeps as text; cells that Excel would run as a formula get a leading `'`.
    """
    workspace = await session.get(Workspace, scope.workspace_id)
    assert workspace is not None
    owners = dict((await session.execute(
        select(Member.id, Member.name).where(Member.workspace_id == scope.workspace_id))).all())
    visible = scope.customers()
    tags: dict[int, list[str]] = {}
    for customer_id, name in await session.execute(
        select(CustomerTag.customer_id, CustomerTag.name)
        .where(CustomerTag.workspace_id == scope.workspace_id, CustomerTag.auto.is_(False),
               CustomerTag.customer_id.in_(visible.with_only_columns(Customer.id)))
        .order_by(CustomerTag.customer_id, CustomerTag.name)
    ):
        tags.setdefault(customer_id, []).append(name)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([headers.get(column, column) for column in EXPORT_COLUMNS])
    stream = await session.stream_scalars(visible.order_by(Customer.number).execution_options(yield_per=1000))
    async for customer in stream:
        cells = {
            "number": customer.number,
            "phone": _readable_phone(customer.phone, workspace.phone_region),
            "birthday": customer.birthday.isoformat() if customer.birthday else "",
            "tags": " ".join(tags.get(customer.id, ())),
            "stage": stage_names.get(customer.stage, customer.stage),
            "ltv": f"{customer.ltv_minor / 100:.2f}" if customer.ltv_minor is not None else "",
            "last_contact": _local(customer.last_contact_at, tz),
            "next_followup": _local(customer.next_followup_at, tz),
            "owner": owners.get(customer.owner_id, ""),
        }
        writer.writerow([_guard(cells[c] if c in cells else getattr(customer, c)) for c in EXPORT_COLUMNS])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def _readable_phone(phone: str | None, region: str) -> str:
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return phone
    same_country = phonenumbers.region_code_for_number(number) == region.upper()
    style = phonenumbers.PhoneNumberFormat.NATIONAL if same_country else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


def _local(moment: datetime | None, tz: tzinfo) -> str:
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else ""


def _guard(value: object) -> str:
    """Text Excel would run as a formula (`=`, `+`, `-`, `@`…) gets a leading `'` (read back by `cell`)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


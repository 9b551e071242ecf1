"""One row of a file as a customer: what `columns.Mapping` says each cell is, cleaned as a typed
`/add` would be (storage.customers, storage.standardise), without losing the row for one cell.

- Names are joined the way their script writes them: family then given name without a space
  for Chinese, Japanese and Korean (李 + 伟 → 李伟), given then family otherwise (Anna Schmidt).
  A row without a name is named after its company, e-mail or phone, and says so.
- A cell may hold several phones or e-mails (`a, b`, `a ::: b`, `a / b`); the first valid one is
  the customer's, the others go to the notes under their column's header. A remark in brackets
  (`（微信同号）`) goes to the notes too; a placeholder (`暂无`, `n/a`) is an empty cell.
- A value that cannot be stored (a phone of no country, Excel's `1.38001E+10`, `1988年5月`, a
  2,100-character company) is kept in the notes as typed and flagged for the summary.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Mapping as MappingType

from storage import customers, standardise
from storage.models import Workspace
from storage.standardise import InvalidValue
from storage.transfer.columns import Column, Mapping

#: Longest notes an import writes (a note field of 2,000 characters plus what did not fit elsewhere).
NOTES_LIMIT = 10_000
#: Cells that say "nothing here" in the languages our users write.
PLACEHOLDERS = frozenset({"暂无", "无", "没有", "空", "未知", "待定", "不详", "n/a", "na", "none", "null", "nil", "-",
                          "--", "—", "/", "tbd", "unknown", "?", "x", "0"})
#: Words this long in one phone cell are whole numbers side by side (`138… 139…`), not the groups of one.
_WHOLE_NUMBER_DIGITS = 10
_LIST_SPLIT = re.compile(r"\s*(?::::|[,;/|、，；\n]|\s或\s|\sor\s)\s*")
_EMAIL_SPLIT = re.compile(r"\s*(?::::|[,;|、，；\s])\s*")
_REMARK = re.compile(r"[（(]([^()（）0-9]*)[)）]")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_ISO_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?$")
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DAY_FIRST_OR_MONTH_FIRST = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:\s.*)?$")
_PARTIAL_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$|^--\d{2}-?\d{2}$")
_HONORIFICS = {"male": "mr|mr.|mister|sir|herr|hr.|m.|monsieur|señor|sr.|sr|先生|君",
               "female": "mrs|mrs.|ms|ms.|miss|madam|frau|fr.|mme|mme.|madame|mlle|señora|sra.|sra|srta.|"
                         "女士|小姐|太太|夫人"}
_GENDER_OF_HONORIFIC = {word: gender for gender, words in _HONORIFICS.items() for word in words.split("|")}
#: Google's own groups every contact is in: not the team's tags.
_SYSTEM_LABELS = frozenset({"mycontacts", "my contacts", "starred", "other contacts"})
_LOST = frozenset({"lost", "churned", "流失", "丢失", "已流失"})
#: Columns taken one value each, as `clean_fields` reads them, and the row fields they fill.
_TEXT_FIELDS = ("company", "title", "region", "industry", "size", "gender", "source", "cadence")


@dataclass(frozen=True)
class Flag:
    """A value kept in the notes instead of its field, and why: `key` explains it (an
    `error.invalid.*` entry, or `import.kept.*`), with `params`."""

    field: str
    value: str
    key: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Candidate:
    """A row read as a customer; `values` are column values as `clean_fields` gives them."""

    line: int
    values: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    owner: str = ""
    number: int | None = None
    lost: bool = False
    flags: list[Flag] = field(default_factory=list)
    #: The field a nameless row was named after (company, email, phone).
    named_after: str = ""
    #: Tags renamed because an auto tag has their name (`VIP` → `vip-imported`).
    renamed_tags: list[tuple[str, str]] = field(default_factory=list)
    placeholders: int = 0
    #: field → the header its value came from (how a merge labels a value it keeps in the notes)
    sources: dict[str, str] = field(default_factory=dict)


class RowReader:
    """Reads rows of one file with one mapping; the column groups are worked out once."""

    def __init__(self, mapping: Mapping, workspace: Workspace, now: datetime, *,
                 auto_tags: frozenset[str] = frozenset(), rename_tag: Callable[[str], str] = lambda n: n,
                 stage_names: MappingType[str, str] = {}) -> None:
        self.workspace, self.now = workspace, now
        self.region = workspace.phone_region
        self.auto_tags, self.rename_tag = auto_tags, rename_tag
        self.lost_words = _LOST | {label.casefold() for label, stage in stage_names.items() if stage == "churned"}
        of = mapping.of
        self.full, self.first, self.middle, self.last = of("name"), of("first_name"), of("middle_name"), of("last_name")
        self.nickname, self.honorific, self.suffix = of("nickname"), of("honorific"), of("suffix")
        self.phones, self.emails, self.addresses = of("phone"), of("email"), of("address")
        self.parts = _address_groups(of("address_part"))
        self.text = {name: of(name) for name in _TEXT_FIELDS}
        self.birthday, self.tags, self.owner = of("birthday"), of("tags"), of("owner")
        self.number, self.stage = of("number"), of("stage")
        self.free_notes = [c for c in of("notes") if not c.role.detail]
        self.labelled_notes = [c for c in of("notes") if c.role.detail]
        self.labels = {(c.role.detail, c.role.part): c for c in of("label")}
        self._headers: dict[tuple[int, str], tuple[str, Column | None]] = {}

    def header_of(self, column: Column, kind: str) -> tuple[str, Column | None]:
        """A contact column's header as a label, and the column naming its kind (`Phone 2 - Type`);
        worked out once per column, not per row."""
        key = (column.index, kind)
        if key not in self._headers:
            number = re.search(r"(\d+)", column.header)
            self._headers[key] = (re.sub(r"\s*-\s*value$", "", column.header, flags=re.IGNORECASE),
                                  self.labels.get((kind, number[1])) if number else None)
        return self._headers[key]

    def read(self, line: int, cells: list[str]) -> Candidate | None:
        """The row as a customer, or None when it holds nothing at all."""
        row = _Row(self, cells)
        if not row.any:
            return None
        candidate = Candidate(line, {})
        notes = row.free_notes()
        extra: list[str] = []
        row.read_phones(candidate, extra)
        row.read_emails(candidate, extra)
        row.read_addresses(candidate, extra)
        row.read_text_fields(candidate, extra)
        row.read_birthday(candidate, extra)
        row.read_tags(candidate, extra)
        row.read_name(candidate, extra)
        candidate.owner = row.first_value(self.owner)
        candidate.number = _number(row.first_value(self.number))
        candidate.lost = row.first_value(self.stage).casefold() in self.lost_words
        for column in self.labelled_notes:
            extra += [f"{column.role.detail}: {value}" for value in row.values(column)]
        text = "\n".join(filter(None, [notes, *extra]))
        if len(text) > NOTES_LIMIT:
            candidate.flags.append(Flag("prefs", "", "import.kept.notes_cut", {"limit": f"{NOTES_LIMIT:,}"}))
            text = text[:NOTES_LIMIT]
        if text:
            candidate.values["prefs"] = text
        candidate.placeholders = row.placeholders
        return candidate


class _Row:
    """One row's cells, read column group by column group."""

    def __init__(self, reader: RowReader, cells: list[str]) -> None:
        self.reader, self.cells = reader, [standardise.visible(cell) for cell in cells]  # storage's one cleaning
        self.placeholders = 0
        self.any = any(cells)

    def values(self, column: Column) -> list[str]:
        text = self.cells[column.index].strip().replace("\r\n", "\n") if column.index < len(self.cells) else ""
        if not text:
            return []
        if text.casefold() in PLACEHOLDERS:
            self.placeholders += 1
            return []
        return [text]

    def first_value(self, columns: list[Column]) -> str:
        return next((v for c in columns for v in self.values(c)), "")

    def free_notes(self) -> str:
        """The notes columns as typed: line breaks and full-width punctuation kept."""
        return "\n".join(v for c in self.reader.free_notes for v in self.values(c))

    def label(self, column: Column, kind: str) -> str:
        """`Phone 2 (Work)`: the header (Google's ` - Value` dropped), with the kind its label column gives."""
        header, label_column = self.reader.header_of(column, kind)
        label = self.first_value([label_column]).lstrip("* ") if label_column else ""
        return f"{header} ({label})" if label else header

    def read_phones(self, candidate: Candidate, extra: list[str]) -> None:
        for column in self.reader.phones:
            for text in self.values(column):
                numbers, remarks = phone_parts(text)
                for typed in numbers:
                    self._contact(candidate, extra, column, "phone", typed,
                                  lambda value: standardise.phone(value, self.reader.region))
                extra += [f"{column.header}: （{remark}）" for remark in remarks]

    def read_emails(self, candidate: Candidate, extra: list[str]) -> None:
        for column in self.reader.emails:
            for text in self.values(column):
                for typed in filter(None, _EMAIL_SPLIT.split(text)):
                    self._contact(candidate, extra, column, "email", typed, standardise.email)

    def _contact(self, candidate: Candidate, extra: list[str], column: Column, kind: str, typed: str,
                 clean: Callable[[str], str]) -> None:
        """One phone or e-mail: the first valid one is the customer's, the others go to the notes."""
        try:
            stored = clean(typed)
        except InvalidValue as problem:
            extra.append(f"{self.label(column, kind)}: {typed}")
            candidate.flags.append(Flag(kind, typed, problem.key, problem.params))
            return
        if kind not in candidate.values:
            candidate.values[kind] = stored
            candidate.sources[kind] = self.label(column, kind)
        elif stored != candidate.values[kind]:
            extra.append(f"{self.label(column, kind)}: {typed}")

    def read_addresses(self, candidate: Candidate, extra: list[str]) -> None:
        found: list[tuple[str, str]] = [(c.header, v) for c in self.reader.addresses for v in self.values(c)]
        cities: list[str] = []
        for group, columns in self.reader.parts:
            parts: dict[str, str] = {}
            for column in columns:  # Business Street, Business Street 2 …: one part, joined
                value = self.first_value([column])
                if value:
                    parts[column.role.part] = f"{parts[column.role.part]} {value}" if parts.get(column.role.part) else value
            joined = join_address(parts)
            if joined and any(all(p in standardise.fold(text) for p in parts.values() if p) for _, text in found):
                joined = ""  # Google's parts of the address it also wrote whole: for the region only
            cities += [p for p in (parts.get("city"), parts.get("state")) if p]
            if joined:
                found.append((group or columns[0].header, joined))
        for label, address in found:
            if "address" not in candidate.values and self._fits(candidate, extra, "address", address, label):
                continue
            if address != candidate.values.get("address"):
                extra.append(f"{label}: {address}")
        if not self.first_value(self.reader.text["region"]) and cities:
            self._fits(candidate, extra, "region", cities[0], "region")

    def _fits(self, candidate: Candidate, extra: list[str], name: str, value: str, label: str) -> bool:
        """Clean `value` into field `name`; when it can't be stored, keep it in the notes and flag it."""
        try:
            cleaned = customers.clean_fields({name: value}, self.reader.workspace, self.reader.now)
        except InvalidValue as problem:
            extra.append(f"{label}: {value}")
            key = "import.kept.too_long" if problem.field == "too_long" else problem.key
            candidate.flags.append(Flag(name, value, key, problem.params))
            return True
        candidate.values.update(cleaned)
        candidate.sources.update(dict.fromkeys(cleaned, label))
        return True

    def read_text_fields(self, candidate: Candidate, extra: list[str]) -> None:
        for name, columns in self.reader.text.items():
            values = [(c, v) for c in columns for v in self.values(c)]
            for position, (column, value) in enumerate(values):
                if position == 0 and name not in candidate.values:
                    self._fits(candidate, extra, name, value, column.header)
                elif value != candidate.values.get(name):
                    extra.append(f"{column.header}: {value}")
        honorific = self.first_value(self.reader.honorific)
        gender = _GENDER_OF_HONORIFIC.get(honorific.casefold())
        if gender and not candidate.values.get("gender"):
            candidate.values["gender"] = gender
        elif honorific and not gender:
            extra.append(f"{self.reader.honorific[0].header}: {honorific}")

    def read_birthday(self, candidate: Candidate, extra: list[str]) -> None:
        column = next((c for c in self.reader.birthday if self.values(c)), None)
        if column is None:
            return
        typed = self.values(column)[0]
        iso, key = birthday_text(typed)
        if iso is not None:
            try:
                candidate.values.update(customers.clean_fields({"birthday": iso}, self.reader.workspace,
                                                               self.reader.now))
                return
            except InvalidValue as problem:
                key = problem.key
        extra.append(f"{column.header}: {typed}")
        candidate.flags.append(Flag("birthday", typed, key))

    def read_tags(self, candidate: Candidate, extra: list[str]) -> None:
        for column in self.reader.tags:
            for text in self.values(column):
                for typed in tag_words(text):
                    try:
                        name = standardise.tag(typed)
                    except InvalidValue:
                        extra.append(f"{column.header}: {typed}")
                        candidate.flags.append(Flag("tag", typed, "error.invalid.tag"))
                        continue
                    if name in self.reader.auto_tags:
                        renamed = self.reader.rename_tag(name)
                        candidate.renamed_tags.append((typed, renamed))
                        name = renamed
                    if name not in candidate.tags:
                        candidate.tags.append(name)

    def read_name(self, candidate: Candidate, extra: list[str]) -> None:
        reader = self.reader
        full = self.first_value(reader.full)
        joined = join_name(self.first_value(reader.first), " ".join(v for c in reader.middle for v in self.values(c)),
                           self.first_value(reader.last), self.first_value(reader.suffix))
        nickname = self.first_value(reader.nickname)
        # a Chinese name's parts say its order; a full-name column often has it the Western way (伟 李)
        name = (joined if joined and _CJK.search(joined) else full) or joined or nickname
        if nickname and nickname != name:
            extra.append(f"{reader.nickname[0].header}: {nickname}")
        if not name:
            for source in ("company", "email", "phone"):
                if candidate.values.get(source):
                    name, candidate.named_after = str(candidate.values[source]), source
                    break
        if not name:
            return
        try:
            candidate.values["name"] = standardise.clean_name(name)
        except InvalidValue:
            candidate.values["name"] = standardise.clean_name(name[:200]) if len(name) > 200 \
                and any(ch.isalnum() for ch in name[:200]) else ""
            if not candidate.values["name"]:
                del candidate.values["name"]
            extra.append(f"{(reader.full or reader.first or reader.last or reader.nickname)[0].header}: {name}")


def phone_parts(text: str) -> tuple[list[str], list[str]]:
    """(numbers as typed, remarks) in one phone cell: `138… / 139…`, `a, b`, `138…（微信同号）`."""
    remarks = [m.strip() for m in _REMARK.findall(text) if m.strip()]
    text = _REMARK.sub(" ", text).strip()
    numbers = []
    for part in filter(None, _LIST_SPLIT.split(text)):
        words = part.split()
        if len(words) > 1 and all(sum(ch.isdigit() for ch in w) >= _WHOLE_NUMBER_DIGITS for w in words):
            numbers += words  # `13800138000 13900139000`: two numbers with a space between
        else:
            numbers.append(part)
    return numbers, remarks


def tag_words(text: str) -> list[str]:
    """Tag names in a cell: Google's `* myContacts ::: Friends` (system labels dropped), `a, b`, `a b`."""
    if ":::" in text or text.startswith("* ") or re.search(r"[,;，；、]", text):
        parts = [p.strip() for p in re.split(r":::|[,;，；、]", text)]
        return [p.removeprefix("* ") for p in parts if p and p.casefold().removeprefix("* ") not in _SYSTEM_LABELS]
    return text.split()


def join_name(given: str, middle: str, family: str, suffix: str = "") -> str:
    """李 + 伟 → 李伟; Anna + Schmidt → Anna Schmidt (with a middle name and suffix where given)."""
    if _CJK.search(given + family):
        return f"{family}{middle}{given}".strip()
    return " ".join(p for p in (given, middle, family, suffix) if p)


def join_address(parts: dict[str, str]) -> str:
    """An address from its parts: country first and no commas in Chinese, street first otherwise."""
    get = lambda key: (parts.get(key) or "").strip()  # noqa: E731
    if _CJK.search("".join(get(k) for k in ("state", "city", "street"))):
        country = get("country")
        ordered = [country if _CJK.search(country) else "", *(get(k) for k in ("state", "city", "street", "pobox"))]
        joined = "".join(p for i, p in enumerate(ordered) if p and p not in ordered[:i])  # 上海 + 上海 once
        return f"{joined}, {country}" if country and not _CJK.search(country) else joined
    postal_city = " ".join(p for p in (get("postal"), get("city")) if p)
    return ", ".join(p for p in (get("street"), get("pobox"), postal_city, get("state"), get("country")) if p)


def birthday_text(typed: str) -> tuple[str | None, str]:
    """An ISO date from `1980-02-29`, `1980年2月29日`, `19800229`, `12/31/1980`, `31.12.1980`; or None and
    the catalogue key that says why (`1988年5月` has no day; `05/03/1988` is either day first or month first)."""
    text = standardise.fold(typed)
    if m := (_ISO_DATE.match(text) or _COMPACT_DATE.match(text)):
        return _iso(int(m[1]), int(m[2]), int(m[3]))
    if m := _DAY_FIRST_OR_MONTH_FIRST.match(text):
        a, separator, b, year = int(m[1]), m[2], int(m[3]), int(m[4])
        if a > 12 or separator == ".":  # 31/12/1980, and 31.12.1980 as Europe writes it
            return _iso(year, b, a)
        if b > 12 or a == b:
            return _iso(year, a, b)
        return None, "import.kept.ambiguous_date"
    if _PARTIAL_DATE.match(text):
        return None, "import.kept.partial_date"
    return None, "error.invalid.birthday"


def _iso(year: int, month: int, day: int) -> tuple[str | None, str]:
    try:
        return date(year, month, day).isoformat(), ""
    except ValueError:
        return None, "error.invalid.birthday"


def _number(text: str) -> int | None:
    digits = text.lstrip("#＃").strip()
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 9 else None


def _address_groups(columns: list[Column]) -> list[tuple[str, list[Column]]]:
    groups: dict[str, list[Column]] = {}
    for column in columns:
        groups.setdefault(column.role.detail, []).append(column)
    return list(groups.items())

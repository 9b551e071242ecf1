"""A file ready to import: its sheet, header row, mapping, first rows and size, before anything is written.

`make_plan` reads the file twice at most, never keeping it whole as rows: once to
find the header and the first rows (the preview), once to count the rows (the
chat door refuses a file over its cap before reading it to the end). Importing
reads it again, a row at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Iterator, Mapping as MappingType

from storage.transfer.columns import Column, Mapping, TARGETS, guess_mapping, header_key, header_row, target_names
from storage.transfer.sheets import HEADER_SCAN_ROWS, FileProblem, Sheet, open_sheet
from storage.transfer.values import Candidate, RowReader

#: Rows read for the preview and for telling which unknown columns hold values.
SAMPLE_ROWS = 20


class TooManyRows(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows")
        self.limit = limit


class BadMapping(Exception):
    """A `--map` or button named a target or column the file doesn't have; `what` says which."""

    def __init__(self, what: str, text: str) -> None:
        super().__init__(f"{what}: {text}")
        self.what = what
        self.text = text


@dataclass
class Plan:
    sheet: Sheet
    header_line: int
    header: list[str]
    mapping: Mapping
    samples: list[tuple[int, list[str]]]
    rows: int
    #: Headers of columns left unused that held a value in a row read so far.
    unused_with_values: dict[str, None] = field(default_factory=dict)

    @property
    def unsure(self) -> list[Column]:
        return self.mapping.unsure([cells for _, cells in self.samples])

    @property
    def needs_a_look(self) -> bool:
        """Whether a person should see the mapping first: columns no rule knows, or no name column."""
        return bool(self.unsure) or not self.mapping.has_name

    def data_rows(self) -> Iterator[tuple[int, list[str]]]:
        """The rows under the header, non-empty ones only."""
        for line, cells in self.sheet.rows():
            if line > self.header_line and any(cells):
                yield line, cells

    def candidates(self, reader: RowReader) -> Iterator[Candidate]:
        unused = [c for c in self.mapping.columns if c.role.target == "unused" and c.header and not c.known]
        for line, cells in self.data_rows():
            for column in unused:
                if column.index < len(cells) and cells[column.index] and column.header not in self.unused_with_values:
                    self.unused_with_values[column.header] = None
            candidate = reader.read(line, cells)
            if candidate is not None:
                yield candidate

    def with_changes(self, changes: MappingType[str, str], localise: MappingType[str, str] = {}) -> "Plan":
        """The plan with columns set by hand: `changes` is column header (or its 1-based position)
        → target (a TARGETS key or its label in any language)."""
        names = target_names(localise)
        mapping = self.mapping
        for column_text, target_text in changes.items():
            target = names.get(header_key(target_text)) or ("unused" if target_text.strip() in ("-", "") else None)
            if target is None:
                raise BadMapping("target", target_text)
            mapping = mapping.with_change(self.column_index(column_text), target)
        return Plan(self.sheet, self.header_line, self.header, mapping, self.samples, self.rows)

    def column_index(self, text: str) -> int:
        wanted = header_key(text)
        for column in self.mapping.columns:
            if column.header and header_key(column.header) == wanted:
                return column.index
        if text.strip().isdigit() and 1 <= int(text) <= len(self.header):
            return int(text) - 1
        raise BadMapping("column", text)


def make_plan(content: bytes, name: str, labels: MappingType[str, str] = {}, *, max_rows: int | None = None) -> Plan:
    """Read enough of the file to import it: `FileProblem` when it can't be read, `TooManyRows` over `max_rows`."""
    sheet = open_sheet(content, name)
    if sheet.header is not None:
        header_line, header = 0, sheet.header
    else:
        found = header_row(islice(sheet.rows(), HEADER_SCAN_ROWS * 4), labels, scan=HEADER_SCAN_ROWS)
        if found is None:
            raise FileProblem("empty")
        header_line, header = found
    mapping = guess_mapping(header, labels)
    plan = Plan(sheet, header_line, header, mapping, [], 0)
    plan.samples = list(islice(plan.data_rows(), SAMPLE_ROWS))
    rows = plan.data_rows() if max_rows is None else islice(plan.data_rows(), max_rows + 1)
    plan.rows = sum(1 for _ in rows)  # streamed: a file far over the cap stops being read at the cap
    if max_rows is not None and plan.rows > max_rows:
        raise TooManyRows(max_rows)
    return plan


__all__ = ["BadMapping", "Plan", "TARGETS", "TooManyRows", "make_plan"]

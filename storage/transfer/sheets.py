"""A file's rows of text cells, streamed: CSV (any encoding read with confidence), .xlsx, .xls, .vcf.

`open_sheet` looks at the bytes once (kind, encoding, delimiter); `Sheet.rows()`
reads them again from the start each time it is called, so a caller can count
the rows before keeping any (the chat door's row cap) and then import them.

Encodings: a BOM decides (UTF-8, UTF-16); valid UTF-8 is UTF-8; anything else
goes to charset-normalizer, and among the encodings it finds equally clean the
ones our users' spreadsheets are written in win (GB18030 over Korean, Windows-1252
over Baltic). A file it cannot read cleanly is refused with the encodings tried,
never imported garbled.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Callable, Iterator

from charset_normalizer import from_bytes

#: Header and title rows are looked for among this many first rows.
HEADER_SCAN_ROWS = 10
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_EXCEL_TEXT = re.compile(r'^="(.*)"$', re.S)  # Excel's ="0123" keeps leading zeros
_FORMULA_START = ("=", "+", "-", "@")
#: Encodings Chinese, Western and Japanese spreadsheets are saved in, preferred in this order among
#: the ones the detector finds equally clean (cp1250 and cp1252 decode "Müller" alike, for one).
PREFERRED_ENCODINGS = ("utf_8", "gb18030", "big5", "cp1252", "cp932", "euc_kr", "iso8859_15", "cp1250",
                       "cp1251", "utf_16_le", "utf_16_be")
#: How much cleaner than the others the detector's best must be to be taken without a preference.
_CLOSE_CHAOS = 0.02
_MAX_CHAOS = 0.1
_NAMES = {"utf_8": "UTF-8", "gb18030": "GBK/GB18030", "big5": "Big5", "cp1252": "Windows-1252",
          "cp932": "Shift-JIS", "euc_kr": "EUC-KR", "iso8859_15": "Latin-9", "cp1250": "Windows-1250",
          "cp1251": "Windows-1251", "utf_16_le": "UTF-16", "utf_16_be": "UTF-16"}


class FileProblem(Exception):
    """The file as a whole cannot be read; `reason` is `encoding` (with `tried`), `empty`,
    `malformed` (with `line`), `xls_unreadable` or `workbook` (with `detail`)."""

    def __init__(self, reason: str, **params: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.params = params


Cells = list[str]


@dataclass
class Sheet:
    """Rows of one file: `rows()` yields (line, cells) from the start every time it is called.

    `line` is where the row starts in the file (CSV: the physical line; workbooks: the row
    number; vCard: the card's number)."""

    kind: str  # csv, xlsx, xls, vcf
    _rows: Callable[[], Iterator[tuple[int, Cells]]]
    encoding: str | None = None
    #: A layout the file brings along (vCard: our own column names), skipping header guessing.
    header: Cells | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self) -> Iterator[tuple[int, Cells]]:
        return self._rows()


def open_sheet(content: bytes, name: str = "") -> Sheet:
    """The rows of `content`; the kind comes from its first bytes (or `.vcf`), not from trust in the name."""
    if content.startswith(_XLSX_MAGIC):
        return _xlsx(content)
    if content.startswith(_XLS_MAGIC):
        return _xls(content)
    encoding = detect_encoding(content)
    if _is_vcard(content, encoding, name):
        from storage.transfer.vcards import vcard_sheet  # only vCard files need vobject
        return vcard_sheet(content, encoding)
    return _csv(content, encoding)


# --------------------------------------------------------------------------- text files

def detect_encoding(content: bytes) -> str:
    """The encoding to read `content` with; `FileProblem("encoding")` when no reading is clean."""
    if not content.strip():
        raise FileProblem("empty")
    if content.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _is_utf8(content):
        return "utf-8"
    results = from_bytes(content)
    best = results.best()
    if best is not None:
        clean = {match.encoding for match in results if match.chaos <= best.chaos + _CLOSE_CHAOS}
        preferred = next((encoding for encoding in PREFERRED_ENCODINGS if encoding in clean), None)
        if preferred is not None:
            return preferred
        if best.chaos <= _MAX_CHAOS and best.coherence > 0:
            return best.encoding
    tried = dict.fromkeys(_NAMES[e] for e in PREFERRED_ENCODINGS)
    raise FileProblem("encoding", tried=", ".join(tried))


def _is_utf8(content: bytes, chunk: int = 1 << 20) -> bool:
    """Valid UTF-8 throughout, checked a megabyte at a time (no second copy of the file as text)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(content), chunk):
            decoder.decode(content[start:start + chunk])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _text(content: bytes, encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="")


def _is_vcard(content: bytes, encoding: str, name: str) -> bool:
    head = _text(content, encoding).read(200).lstrip("\ufeff \r\n\t").upper()
    return head.startswith("BEGIN:VCARD") or (name.lower().endswith(".vcf") and "BEGIN:VCARD" in head)


def _csv(content: bytes, encoding: str) -> Sheet:
    first_lines = _text(content, encoding).read(64 * 1024).splitlines()
    declared = first_lines[0].strip().lower() if first_lines else ""
    skip_sep = declared.startswith("sep=") and len(declared) == 5  # Excel's `sep=;` line
    delimiter = declared[4] if skip_sep else sniff_delimiter(first_lines)

    def rows() -> Iterator[tuple[int, Cells]]:
        stream = _text(content, encoding)
        if skip_sep:
            stream.readline()
        reader = csv.reader(stream, delimiter=delimiter)
        line = int(skip_sep)
        try:
            for cells in reader:
                start, line = line + 1, reader.line_num + int(skip_sep)
                yield start, [cell(c) for c in cells]
        except csv.Error:
            raise FileProblem("malformed", line=line + 1) from None
        except UnicodeDecodeError:
            raise FileProblem("encoding", tried=_NAMES.get(encoding.replace("-", "_"), encoding)) from None

    return Sheet("csv", rows, encoding=encoding)


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter used most on the first line that has any (ties: comma)."""
    for line in lines:
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


# --------------------------------------------------------------------------- workbooks

def workbook_cell(value: Any) -> str:
    """A workbook cell as text: whole numbers without `.0` (a phone Excel stored as a number), dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, (date, time)):
        return value.isoformat()
    return cell(str(value))


def _xlsx(content: bytes) -> Sheet:
    from openpyxl import load_workbook  # only workbooks need openpyxl

    def rows() -> Iterator[tuple[int, Cells]]:
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as problem:  # noqa: BLE001 - a broken zip or sheet: say so, whatever the library raised
            raise FileProblem("workbook", detail=str(problem)[:120]) from None
        try:
            sheet = _first_sheet_with_data(book)
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1) if sheet else ():
                yield number, [workbook_cell(v) for v in values]
        finally:
            book.close()

    return Sheet("xlsx", rows)


def _first_sheet_with_data(book: Any) -> Any:
    """The active sheet, unless it is empty and another one is not (a cover sheet first)."""
    sheets = [book.active, *book.worksheets] if book.active is not None else list(book.worksheets)
    for sheet in sheets:
        if sheet.max_row and sheet.max_row > 1 or (sheet.max_row == 1 and sheet.max_column and sheet.max_column > 1):
            return sheet
    return sheets[0] if sheets else None


def _xls(content: bytes) -> Sheet:
    """Excel 97–2003 workbooks, read with xlrd (the whole sheet at once: .xls holds at most 65,536 rows)."""
    import xlrd  # only .xls files need xlrd

    def rows() -> Iterator[tuple[int, Cells]]:
        try:
            book = xlrd.open_workbook(file_contents=content, on_demand=True)
        except Exception as problem:  # noqa: BLE001 - xlrd raises many kinds for a file it can't read
            raise FileProblem("xls_unreadable", detail=str(problem)[:120]) from None
        try:
            sheet = next((book.sheet_by_index(i) for i in range(book.nsheets) if book.sheet_by_index(i).nrows),
                         None)
            for number in range(sheet.nrows if sheet is not None else 0):
                yield number + 1, [_xls_cell(book, c) for c in sheet.row(number)]
        finally:
            book.release_resources()

    return Sheet("xls", rows)


def _xls_cell(book: Any, value: Any) -> str:
    import xlrd

    if value.ctype == xlrd.XL_CELL_DATE:
        return workbook_cell(xlrd.xldate.xldate_as_datetime(value.value, book.datemode))
    if value.ctype == xlrd.XL_CELL_BOOLEAN:
        return workbook_cell(bool(value.value))
    if value.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return ""
    return workbook_cell(value.value)

"""vCard files (.vcf, what iPhone, Android, Outlook and Monica export) as rows, one card a row, read
with vobject. The columns are named the way `columns` reads them, so a card needs no mapping; several
phones, e-mails or addresses share a cell, ` ::: `-separated as in Google's export."""
from __future__ import annotations

from typing import Any, Iterator

import vobject

from storage.transfer.sheets import Cells, FileProblem, Sheet, _text
from storage.transfer.values import join_address

SEPARATOR = " ::: "
HEADER = ["Full Name", "Family Name", "Given Name", "Middle Name", "Name Prefix", "Name Suffix", "Nickname",
          "Company", "Department", "Job Title", "Phone", "Fax", "E-mail", "Address", "Birthday", "Notes",
          "Categories", "Website"]


def vcard_sheet(content: bytes, encoding: str) -> Sheet:
    def rows() -> Iterator[tuple[int, Cells]]:
        yield 0, list(HEADER)
        try:
            for number, card in enumerate(vobject.readComponents(_text(content, encoding), ignoreUnreadable=True),
                                          start=1):
                if card.name.upper() == "VCARD":
                    yield number, _row(card)
        except Exception as problem:  # noqa: BLE001 - vobject's parse errors have no common base we can name
            raise FileProblem("workbook", detail=f"vCard: {str(problem)[:100]}") from None

    return Sheet("vcf", rows, encoding=encoding, header=list(HEADER))


def _row(card: Any) -> Cells:
    values = {key: [] for key in HEADER}
    for line in card.getChildren():
        name = line.name.upper()
        value = line.value
        if name == "FN":
            values["Full Name"].append(_plain(value))
        elif name == "N":
            values["Family Name"].append(_plain(value.family))
            values["Given Name"].append(_plain(value.given))
            values["Middle Name"].append(_plain(value.additional))
            values["Name Prefix"].append(_plain(value.prefix))
            values["Name Suffix"].append(_plain(value.suffix))
        elif name == "NICKNAME":
            values["Nickname"].append(_plain(value))
        elif name == "ORG":
            parts = [_plain(p) for p in (value if isinstance(value, list) else [value])]
            values["Company"].append(parts[0] if parts else "")
            values["Department"].extend(parts[1:])
        elif name == "TITLE":
            values["Job Title"].append(_plain(value))
        elif name == "TEL":
            kinds = {t.upper() for t in line.params.get("TYPE", [])}
            values["Fax" if "FAX" in kinds else "Phone"].append(_plain(value))
        elif name == "EMAIL":
            values["E-mail"].append(_plain(value))
        elif name == "ADR":
            parts = {"street": value.street, "city": value.city, "state": value.region, "postal": value.code,
                     "country": value.country}
            values["Address"].append(join_address({k: _plain(v) for k, v in parts.items()}))
        elif name == "BDAY":
            values["Birthday"].append(_plain(value))
        elif name == "NOTE":
            values["Notes"].append(_plain(value))
        elif name == "CATEGORIES":
            values["Categories"].extend(_plain(v) for v in (value if isinstance(value, list) else [value]))
        elif name == "URL":
            values["Website"].append(_plain(value))
    return [SEPARATOR.join(v for v in values[key] if v) for key in HEADER]


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_plain(v) for v in value if v)
    return str(value or "").strip()

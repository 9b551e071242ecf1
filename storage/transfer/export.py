"""The customer book as a file: CSV (UTF-8 with a BOM, so Excel reads Chinese right) or .xlsx.

Columns are `EXPORT_COLUMNS`, labelled in the asker's language; an export
imports back as merges only (its `#` names each customer, its owner and stage
columns are read back). Phones are written readably (`138 0013 8000` in the
book's country, `+1 415-555-2671` otherwise). In CSV a cell Excel would run as a
formula gets a leading `'`; in .xlsx every value is a text or number cell, so a
phone stays text and `=SUM(A1)` stays words, with nothing added.
"""
from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime, timezone, tzinfo
from typing import Any, AsyncIterator, Mapping

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.access import Scope
from storage.models import Customer, CustomerTag, Member, Workspace
from storage.transfer.sheets import _FORMULA_START

EXPORT_COLUMNS = ("number", "name", "company", "title", "phone", "email", "address", "region", "industry",
                  "size", "gender", "birthday", "source", "tags", "prefs", "stage", "tier", "ltv",
                  "last_contact", "next_followup", "owner")
FORMATS = ("csv", "xlsx")
MIME = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


async def count_visible(session: AsyncSession, scope: Scope) -> int:
    """How many customers an export by `scope` holds."""
    return await session.scalar(select(func.count()).select_from(scope.customers().subquery())) or 0


async def _rows(session: AsyncSession, scope: Scope, tz: tzinfo,
                stage_names: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
    """Each visible customer's cells by column, in number order."""
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
    stream = await session.stream_scalars(visible.order_by(Customer.number).execution_options(yield_per=1000))
    async for customer in stream:
        cells = {column: getattr(customer, column, None) for column in EXPORT_COLUMNS}
        cells.update({
            "number": customer.number,
            "phone": readable_phone(customer.phone, workspace.phone_region),
            "birthday": customer.birthday.isoformat() if customer.birthday else "",
            "tags": " ".join(tags.get(customer.id, ())),
            "stage": stage_names.get(customer.stage, customer.stage),
            "ltv": f"{customer.ltv_minor / 100:.2f}" if customer.ltv_minor is not None else "",
            "last_contact": _local(customer.last_contact_at, tz),
            "next_followup": _local(customer.next_followup_at, tz),
            "owner": owners.get(customer.owner_id, ""),
        })
        yield cells


async def export_csv(session: AsyncSession, scope: Scope, headers: Mapping[str, str], *,
                     tz: tzinfo = timezone.utc, stage_names: Mapping[str, str] = {}) -> bytes:
    """The customers `scope` sees as CSV, with a header row of `headers` (column → label), times in `tz`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([headers.get(column, column) for column in EXPORT_COLUMNS])
    async for cells in _rows(session, scope, tz, stage_names):
        writer.writerow([_guard(cells[column]) for column in EXPORT_COLUMNS])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


async def export_xlsx(session: AsyncSession, scope: Scope, headers: Mapping[str, str], *,
                      tz: tzinfo = timezone.utc, stage_names: Mapping[str, str] = {}) -> bytes:
    """The same as a workbook (openpyxl, written as it streams): `#` a number, everything else text."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append([headers.get(column, column) for column in EXPORT_COLUMNS])
    async for cells in _rows(session, scope, tz, stage_names):
        row = []
        for column in EXPORT_COLUMNS:
            value = cells[column]
            written = WriteOnlyCell(sheet, value if column == "number" else ("" if value is None else str(value)))
            if column != "number":
                written.data_type = "s"  # text, even when it starts with = (no formula) or is all digits
            row.append(written)
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def readable_phone(phone: str | None, region: str) -> str:
    """`138 0013 8000` in the book's country, `+1 415-555-2671` otherwise, with `ext. 801` kept."""
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

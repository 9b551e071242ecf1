"""New rows written by one INSERT built once per table, not by the ORM's flush.

A flush is the unit of work: it sorts what the session holds, builds the
INSERT's parameters, runs it, and sets the new object up in the identity map
(≈ 0.2 ms a row, the dearest part of a `/log` once the statements themselves
were built once). The hot path's new rows (an interaction, a reminder, a
redelivery key) are written and never read back as ORM objects in the same
transaction, so they go in with a Core INSERT: the object keeps the values it
was given, gets its generated key, and stays out of the session (transient).
Anything that needs it later reads it from the database.
"""
from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Column, Insert, Table, insert
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base

Row = TypeVar("Row", bound=Base)

#: Per table, its INSERT and the generated key columns it returns.
_INSERTS: dict[Table, tuple[Insert, list[Column[Any]]]] = {}


def _insert(table: Table) -> tuple[Insert, list[Column[Any]]]:
    if table not in _INSERTS:
        generated = [column for column in table.primary_key.columns if column is table.autoincrement_column]
        _INSERTS[table] = (insert(table).returning(*generated) if generated else insert(table)), generated
    return _INSERTS[table]


async def insert_row(session: AsyncSession, row: Row) -> Row:
    """INSERT the columns set on `row` (a new object, not added to the session); its generated
    primary key is set on it. Column defaults apply in the INSERT, but the object does not take them
    on: set every value that is read from it afterwards."""
    mapper = sqlalchemy_inspect(type(row))
    given = sqlalchemy_inspect(row).dict
    values: dict[str, Any] = {attribute.columns[0].key: given[attribute.key]
                              for attribute in mapper.column_attrs if attribute.key in given}
    statement, generated = _insert(mapper.local_table)
    result = await (await session.connection()).execute(statement, values)
    if generated:
        for column, value in zip(generated, result.one()):
            setattr(row, mapper.get_property_by_column(column).key, value)
    return row

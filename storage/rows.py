"""New rows written by one INSERT built once per table, not by the ORM's flush.

A flush is the unit of work: it sorts what the session holds, builds the
INSERT's parameters, runs it, and sets the new object up in the identity map
(≈ 0.2 ms a row, the dearest part of a `/log` once the statements themselves
were built once). The hot path's new rows (an interaction, a reminder, a
redelivery key) are written and never read back as ORM objects in the same
transaction, so they go in with a Core INSERT (storage.prepared: on the
database thread, sqlite3 runs it): the object keeps the values it was given,
gets its generated key, and stays out of the session (transient). Anything
that needs it later reads it from the database.
"""
from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Column, Table, bindparam, insert
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from storage.held import hold_new
from storage.models import Base
from storage.prepared import Prepared

Row = TypeVar("Row", bound=Base)

#: Per table and set of columns given, its INSERT and the generated key columns it returns.
_INSERTS: dict[tuple[Table, frozenset[str]], tuple[Prepared, list[Column[Any]]]] = {}


def _insert(table: Table, given: frozenset[str]) -> tuple[Prepared, list[Column[Any]]]:
    """The INSERT of the columns given, and of those with a default (its value bound by default)."""
    if (table, given) not in _INSERTS:
        values = {}
        for column in table.columns:
            if column.key in given:
                values[column.key] = bindparam(column.key, type_=column.type)
            elif column.default is not None:
                if not column.default.is_scalar:
                    raise ValueError(f"{table.name}.{column.key}: give it, its default is not a value")
                values[column.key] = bindparam(column.key, column.default.arg, type_=column.type)
        generated = [column for column in table.primary_key.columns if column is table.autoincrement_column]
        statement = insert(table).values(values)
        _INSERTS[table, given] = Prepared(statement.returning(*generated) if generated else statement), generated
    return _INSERTS[table, given]


async def insert_row(session: AsyncSession, row: Row) -> Row:
    """INSERT the columns set on `row` (a new object, not added to the session); its generated
    primary key is set on it. Column defaults apply in the INSERT, but the object does not take them
    on: set every value that is read from it afterwards."""
    mapper = sqlalchemy_inspect(type(row))
    given = sqlalchemy_inspect(row).dict
    values: dict[str, Any] = {attribute.columns[0].key: given[attribute.key]
                              for attribute in mapper.column_attrs if attribute.key in given}
    statement, generated = _insert(mapper.local_table, frozenset(values))
    rows = (await statement.run(session, values)).rows
    if generated:
        for column, value in zip(generated, rows[0]):
            setattr(row, mapper.get_property_by_column(column).key, value)
    return row


async def insert_held(session: AsyncSession, row: Row) -> Row:
    """`insert_row`, then `row` is held by the session as persistent with every column's value (for a
    column not set, its default, else None), as a flush would have left it: a new row the command goes
    on to change or show (/add's customer). Unlike a flush, no session event sees it."""
    mapper = sqlalchemy_inspect(type(row))
    given = sqlalchemy_inspect(row).dict
    written: dict[str, Any] = {}
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        if attribute.key in given or column is mapper.local_table.autoincrement_column:
            continue
        if column.server_default is not None and column.default is None:
            raise ValueError(f"{mapper.local_table.name}.{column.key}: give it, its value is the database's")
        written[attribute.key] = column.default.arg if column.default is not None else None
    await insert_row(session, row)
    return hold_new(session, row, written)

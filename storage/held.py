"""ORM objects the session holds, made from rows a Core statement read or wrote (storage.prepared).

The ORM's own query costs ≈ 150 µs more than the statement on the database
thread (its execution context, then each object built through the attribute
events, keyed and put in the identity map); its flush of a new row ≈ 200 µs
(storage.rows). The hot path's first query (the member's workspace and
membership), its customer lookup and /add's new customer are made here
instead: the object is built with its loaded values, keyed and added to the
session as persistent, as a query would have left it (about 10 µs). The
session then treats it as any loaded object: changes to it are flushed and
audited, and a query returning it again returns the same object.

There are no load events on these models, and no relationships to cascade
along, or this would not be the same as a query.
"""
from __future__ import annotations

from typing import Any, Mapping, TypeVar

from sqlalchemy import Select, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from storage.prepared import Prepared

Model = TypeVar("Model")


def hold(session: AsyncSession, mapper: Mapper[Any], values: Mapping[str, Any]) -> Any:
    """The object of `mapper` whose attributes hold `values` (every column's, by attribute name): the one
    the session holds already (its values as they are, as a query without populate_existing leaves
    them, any expired attribute given its value), else a new one, now held as persistent."""
    sync = session.sync_session
    key = mapper.identity_key_from_primary_key([values[mapper.get_property_by_column(c).key]
                                                for c in mapper.primary_key])
    existing = sync.identity_map.get(key)
    if existing is not None:
        for name in inspect(existing).expired_attributes & values.keys():
            set_committed_value(existing, name, values[name])
        return existing
    held = mapper.class_manager.new_instance()
    held.__dict__.update(values)
    make_transient_to_detached(held)
    sync.add(held)
    return held


def hold_new(session: AsyncSession, row: Model, written: Mapping[str, Any]) -> Model:
    """`row`, just written by a Core INSERT with these column values (by attribute name, defaults and the
    generated key included), now held by the session as a flush would have left it."""
    state = inspect(row)
    for name, value in written.items():
        if name not in state.dict:
            state.dict[name] = value
    make_transient_to_detached(row)
    session.sync_session.add(row)
    return row


class Entities:
    """A SELECT of whole mapped objects and columns (`select(Identity, Workspace, Member)`, outer joins
    allowed), run as a Prepared statement: its rows as session.execute would give them, each object
    held by the session (`hold`), None for an outer join's missing row."""

    __slots__ = ("prepared", "_layout")

    def __init__(self, statement: Select[Any]) -> None:
        columns: list[Any] = []
        #: per item of the row: the mapper and its attribute names, or None for a plain column
        self._layout: list[tuple[Mapper[Any], tuple[str, ...], tuple[int, ...]] | None] = []
        for described in statement.column_descriptions:
            entity = described["entity"]
            if entity is not None and described["expr"] is entity:
                mapper = inspect(entity)
                attributes = mapper.column_attrs
                names = tuple(attribute.key for attribute in attributes)
                primary = tuple(names.index(mapper.get_property_by_column(c).key) for c in mapper.primary_key)
                self._layout.append((mapper, names, primary))
                columns += [attribute.columns[0] for attribute in attributes]
            else:
                self._layout.append(None)
                columns.append(described["expr"])
        self.prepared = Prepared(statement.with_only_columns(*columns))

    async def run(self, session: AsyncSession, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        rows = (await self.prepared.run(session, values)).rows
        return [self._objects(session, row) for row in rows]

    def _objects(self, session: AsyncSession, row: tuple[Any, ...]) -> tuple[Any, ...]:
        items: list[Any] = []
        at = 0
        for layout in self._layout:
            if layout is None:
                items.append(row[at])
                at += 1
                continue
            mapper, names, primary = layout
            part = row[at:at + len(names)]
            at += len(names)
            if all(part[n] is None for n in primary):  # an outer join's missing row
                items.append(None)
            else:
                items.append(hold(session, mapper, dict(zip(names, part))))
        return tuple(items)

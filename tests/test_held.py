"""storage.held: objects made from a Prepared statement's rows are the ones an ORM query gives: the same
values, held by the session as persistent, their changes flushed, one object per row's identity."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import and_, bindparam, event, inspect, select

from storage.db import Database
from storage.held import Entities
from storage.models import Customer, Identity, Member, Workspace
from storage.rows import insert_held
from tests.chat import Chat

_QUERY = (select(Workspace, Identity, Member, Customer, Customer.name).select_from(Identity)
          .join(Workspace, Workspace.id == Identity.workspace_id).join(Member, Member.id == Identity.member_id)
          .outerjoin(Customer, and_(Customer.owner_id == Member.id, Customer.name == bindparam("name")))
          .where(Identity.external_id == "alice"))
_ENTITIES = Entities(_QUERY)


def _values(item: Any) -> Any:
    """An object's column values, or a plain value as it is."""
    mapper = inspect(type(item), raiseerr=False)
    if mapper is None:
        return item
    return type(item).__name__, {attribute.key: getattr(item, attribute.key) for attribute in mapper.column_attrs}


async def _both(db: Database, name: str) -> tuple[list[Any], list[Any]]:
    async with db.transaction() as session:
        by_orm = [tuple(map(_values, row)) for row in await session.execute(_QUERY, {"name": name})]
    async with db.transaction() as session:
        rows = await _ENTITIES.run(session, {"name": name})
        assert all(inspect(item).persistent and item in session for row in rows for item in row[:3])
        held = [tuple(map(_values, row)) for row in rows]
    return by_orm, held


async def test_its_objects_hold_the_values_an_orm_query_gives_on_the_thread_and_off_it(
        alice: Chat, db: Database) -> None:
    """Aware times, JSON, booleans and an outer join's missing row (None) alike, on the adapters' loop, on
    the database thread (sqlite3 itself) and on PostgreSQL."""
    await alice.say("/add 李伟 company=Acme phone=13900139000")
    for by_orm, held in (await _both(db, "李伟"), await db.on_thread(_both, db, "李伟"),
                         await db.on_thread(_both, db, "nobody")):
        assert held == by_orm and len(held) == 1
    assert held[0][3] is None and held[0][4] is None  # "nobody": no customer joined
    workspace = (await db.on_thread(_both, db, "李伟"))[1][0][0][1]
    assert workspace["created_at"].tzinfo is not None and workspace["name"]


async def test_a_held_object_is_the_sessions_own_and_its_changes_are_written(alice: Chat, db: Database) -> None:
    """Asked again in the same session, a row is the same object; an attribute the session had expired
    takes the row's value (no lazy load, which an async session cannot do); a change is flushed."""
    await alice.say("/add 李伟 company=Acme")

    async def change() -> None:
        async with db.transaction() as session:
            customer = await session.scalar(select(Customer).where(Customer.name == "李伟"))
            session.expire(customer, ["company"])
            (_, _, member, again, _), = await _ENTITIES.run(session, {"name": "李伟"})
            assert again is customer and customer.company == "Acme"
            assert (await _ENTITIES.run(session, {"name": "李伟"}))[0][2] is member
            member.name = "Alicia"

    await db.on_thread(change)
    async with db.transaction() as session:
        assert await session.scalar(select(Member.name).join(Identity).where(Identity.external_id == "alice")) == "Alicia"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_command_reads_its_member_and_customer_without_an_orm_query(alice: Chat, db: Database) -> None:
    """/log's membership and customer lookup are Prepared statements (sqlite3 on the database thread): no
    SELECT of a /log goes through SQLAlchemy's execution."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first", update_key="warm-up")
    through_sqlalchemy: list[str] = []

    def executed(_conn: Any, statement: Any, *_: Any) -> None:
        through_sqlalchemy.append(" ".join(str(statement).split())[:80])

    event.listen(db.command_engine.sync_engine, "before_execute", executed)
    try:
        await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
    finally:
        event.remove(db.command_engine.sync_engine, "before_execute", executed)
    assert "Logged for #1 李伟" in alice.text
    assert [statement for statement in through_sqlalchemy if statement.startswith("SELECT")] == []


async def test_a_row_inserted_and_held_is_loaded_whole_and_its_later_changes_are_written(
        alice: Chat, db: Database) -> None:
    """storage.rows.insert_held (/add's customer): one Core INSERT, then the object is the session's, every
    column loaded (a default's value, else None, where none was given) and equal to the row written,
    and what the command changes on it afterwards is flushed, as after the ORM's own flush."""
    await alice.say("/add 李伟 company=Acme")
    now = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)

    async def add() -> dict[str, Any]:
        async with db.transaction() as session:
            owner = await session.scalar(select(Member.id))
            customer = await insert_held(session, Customer(workspace_id=1, number=99, owner_id=owner, name="王芳",
                                                           created_at=now, updated_at=now))
            assert inspect(customer).persistent and customer in session and not inspect(customer).unloaded
            assert (customer.stage, customer.company, customer.tier) == ("lead", None, None)
            held = _values(customer)
            customer.company = "Globex"
            return held

    held = await db.on_thread(add)
    async with db.transaction() as session:
        written = await session.scalar(select(Customer).where(Customer.number == 99))
        assert _values(written) == ("Customer", {**held[1], "company": "Globex"})

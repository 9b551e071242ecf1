"""Alembic migrations (storage/migrations) on a real SQLite file and a real PostgreSQL database.

The suite's databases are built by the migrations (tests/conftest.py), so every
other test runs on what they make; here: that it is what the models describe,
that each step can be undone and done again, and that an upgrade keeps the rows.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
import pytest
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Column, Index, MetaData, inspect, text
from sqlalchemy.engine import Connection

from storage.db import HEAD, Database, alembic_config
from storage.models import Base
from storage.slack_installs import SLACK_BOTS, SLACK_INSTALLATIONS, SLACK_OAUTH_STATES

WHEN = datetime(2026, 11, 18, 7, 0, tzinfo=timezone.utc)
pytestmark = pytest.mark.filterwarnings("ignore:autogenerate skipping", "ignore:Skipped unsupported reflection")


def _slack_store_schema() -> MetaData:
    """slack-sdk's installation and OAuth state tables as its stores define them: migration 0009 creates
    them, so a new slack-sdk that changes them shows here as a difference."""
    schema = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(schema, SLACK_INSTALLATIONS)
    SQLAlchemyInstallationStore.build_bots_table(schema, SLACK_BOTS)
    SQLAlchemyOAuthStateStore.build_oauth_states_table(schema, SLACK_OAUTH_STATES)
    return schema


SLACK_STORES = _slack_store_schema()
#: Every schema the migrations build: our models, then slack-sdk's stores (each compared on its own tables).
SCHEMAS = (Base.metadata, SLACK_STORES)


def _set_apart(index: Index) -> bool:
    """Indexes on expressions or for one dialect only: autogenerate cannot compare them (it cannot
    reflect the expressions, or ignores `ddl_if`), so they are checked by name (`index_names`)."""
    return index._ddl_if is not None or any(not isinstance(e, Column) for e in index.expressions)


SET_APART = {index.name for table in Base.metadata.tables.values() for index in table.indexes if _set_apart(index)}


def _compared_with(schema: MetaData) -> Any:
    """What a comparison with `schema` looks at: its own tables (the other schema's are not extra)."""
    def compared(thing: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        table = name if kind == "table" else getattr(getattr(thing, "table", None), "name", None)
        return not (kind == "index" and name in SET_APART) and (table is None or table in schema.tables)
    return compared


def _differences(connection: Connection) -> list[Any]:
    found = []
    for schema in SCHEMAS:
        context = MigrationContext.configure(connection, opts={"include_object": _compared_with(schema)})
        found += compare_metadata(context, schema)
    return found


async def differences(db: Database) -> list[Any]:
    async with db.engine.connect() as connection:
        return await connection.run_sync(_differences)


def expected_index_names(dialect: str) -> set[str]:
    """Every index the models give this dialect (those set apart included)."""
    return {index.name for schema in SCHEMAS for table in schema.tables.values() for index in table.indexes
            if index._ddl_if is None or index._ddl_if.dialect == dialect}


async def index_names(db: Database) -> set[str]:
    catalogue = ("SELECT name FROM sqlite_master WHERE type = 'index'" if db.is_sqlite
                 else "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    async with db.engine.connect() as connection:
        return set((await connection.execute(text(catalogue))).scalars())


async def tables(db: Database) -> set[str]:
    async with db.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_the_migrations_build_what_the_models_describe(db: Database) -> None:
    assert await differences(db) == []
    assert {name for schema in SCHEMAS for name in schema.tables} <= await tables(db)
    dialect = "sqlite" if db.is_sqlite else "postgresql"
    assert expected_index_names(dialect) <= await index_names(db)


async def test_every_migration_can_be_undone_and_done_again(db: Database) -> None:
    await db.downgrade("base")
    assert await tables(db) <= {"alembic_version"}
    await db.upgrade()
    assert await differences(db) == []
    assert SET_APART & expected_index_names("sqlite" if db.is_sqlite else "postgresql") <= await index_names(db)


async def test_an_upgrade_keeps_the_rows_it_finds(db: Database) -> None:
    await db.downgrade("0003")  # before processed updates kept their replies
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO processed_updates (key, processed_at) VALUES (:key, :at)"),
                              {"key": "telegram:1:42", "at": WHEN.replace(tzinfo=None)})
    await db.upgrade()
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT key, unanswered FROM processed_updates"))).all()
        version = await session.scalar(text("SELECT version_num FROM alembic_version"))
    assert [tuple(row) for row in rows] == [("telegram:1:42", None)]
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_processes_starting_together_on_an_empty_postgresql_database_migrate_it_in_turn(empty_pg: str) -> None:
    """Three `crm-bot run` starting at once each upgrade: one builds the schema, the others wait for
    its lock and find it done (without the lock they wait on each other's DDL)."""
    starting = [Database(empty_pg) for _ in range(3)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*(db.upgrade() for db in starting)), 60)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)], key=str)
    finally:
        for db in starting:
            await db.dispose()


def test_the_head_read_from_the_file_names_is_alembics() -> None:
    assert HEAD == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_start_on_a_database_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    """Every start after the first: one read of alembic_version, not Alembic's ~0.2 s of imports."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    check = (
        "import asyncio, sys\n"
        "import bot.cli\n"
        "from storage.db import Database\n"
        "async def main():\n"
        f"    db = Database({url!r})\n"
        "    print(await db.upgrade(), 'alembic' in sys.modules)\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
    )
    runs = [subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                           cwd=Path(__file__).resolve().parents[1]) for _ in range(2)]
    assert [run.stdout.strip() for run in runs] == [f"(None, '{HEAD}') True", f"('{HEAD}', '{HEAD}') False"], \
        [run.stderr for run in runs]

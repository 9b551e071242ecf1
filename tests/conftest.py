"""Shared fixtures: a movable clock, real databases (SQLite file and PostgreSQL), and a chat driver.

`db` runs a test once on a SQLite file and once on a PostgreSQL database (when
one answers at 127.0.0.1:5432; otherwise that half skips with the reason).
Both are copies of a database migrated once per session, so each test starts
from the real schema in milliseconds.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from handlers.context import Services
from handlers.core import Core
from storage.db import Database
from storage.search import CustomerSearch
from tests.chat import Chat

PG_DSN = os.environ.get("CRM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
PG_TEMPLATE = f"crm_test_template_{uuid.uuid4().hex[:8]}"  # one per pytest run: runs may overlap


class Clock:
    """An injected clock that tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # A Wednesday afternoon in Shanghai (07:00 UTC = 15:00 CST).
    return Clock(datetime(2026, 11, 18, 7, 0, tzinfo=timezone.utc))


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)


@pytest.fixture
async def empty_pg():
    """An empty PostgreSQL database: for tests of what migrates it (processes starting together)."""
    try:
        admin = await _pg_admin()
    except Exception as problem:  # noqa: BLE001 - any reason PostgreSQL does not answer skips
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}: {type(problem).__name__}")
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_DSN}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> str:
    """Migrate a template database once; per-test databases are cloned from it."""

    async def build() -> str:
        try:
            admin = await _pg_admin()
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            return f"PostgreSQL not reachable at {PG_DSN}: {exc.__class__.__name__}"
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEMPLATE}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{PG_TEMPLATE}"')
        finally:
            await admin.close()
        await _migrate(f"{PG_DSN}/{PG_TEMPLATE}")
        return ""

    problem = asyncio.run(build())
    yield problem
    if not problem:
        async def drop() -> None:
            admin = await _pg_admin()
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEMPLATE}" WITH (FORCE)')
            await admin.close()

        asyncio.run(drop())


async def _migrate(url: str) -> None:
    database = Database(url)
    await database.upgrade()
    await database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, pg_template: str):
    if request.param == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        await database.dispose()
        return
    if pg_template:
        pytest.skip(pg_template)
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    admin = await _pg_admin()
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{PG_TEMPLATE}"')
    database = Database(f"{PG_DSN}/{name}")
    try:
        yield database
    finally:
        await database.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def services(clock: Clock) -> Services:
    return Services(clock=clock, search=CustomerSearch(clock, sync_interval=0), default_timezone="Asia/Shanghai",
                    default_locale="en")


@pytest.fixture
def core(db: Database, services: Services) -> Core:
    return Core(db, services)


@pytest.fixture
def alice(core: Core) -> Chat:
    """The first user of the console workspace: its admin, speaking English."""
    return Chat(core, user_id="alice", name="Alice", language="en")


@pytest.fixture
def bob(core: Core) -> Chat:
    """A second member of the same workspace (a rep), speaking Chinese."""
    return Chat(core, user_id="bob", name="Bob", language="zh")

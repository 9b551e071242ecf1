"""Several processes starting at once on one PostgreSQL migrate it once: the upgrade runs under an
advisory lock, so the second waits for the first and then finds the schema at head."""
from __future__ import annotations

import asyncio
import os
import sys
import uuid
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import asyncpg
import pytest

from alembic.script import ScriptDirectory

from handlers.i18n import t
from storage.db import alembic_config
from tests.conftest import PG_DSN

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def empty_pg() -> str:
    try:
        admin = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as problem:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN}: {problem.__class__.__name__}")
    name = f"crm_test_upgrade_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_DSN}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_three_processes_upgrading_one_new_database_at_once_all_start(empty_pg: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": empty_pg, "DEFAULT_LOCALE": "en",
           "TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": "", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}
    processes = [await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "upgrade", cwd=tmp_path,
                                                      env=env, stdout=PIPE, stderr=STDOUT) for _ in range(3)]
    outputs = [(await asyncio.wait_for(process.communicate(), 120))[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    said = sorted(line.strip() for line in outputs)
    assert said == sorted([t("en", "cli.created", url=empty_pg, after=head)]
                          + 2 * [t("en", "cli.up_to_date", url=empty_pg, after=head)]), said

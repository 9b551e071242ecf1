"""SPEC §7: the managers' daily digest for 100 reps and 100,000 customers in ≤ 2 s.

Builds one workspace in a fresh database — 100 reps and a manager, 100,000
customers, interactions over the last 60 days, a year of purchases, feedback,
reminders and auto tags — with bulk inserts (executemany on SQLite, COPY on
PostgreSQL), then times `build_digest` for the manager on a Tuesday (yesterday)
and on a Monday (the week, with the chart), and lists the slowest statements.

    python bench/digest.py [--pg] [--customers N] [--reps N] [--interactions N] [--runs N]

SQLite goes to a temporary file; `--pg` creates (and afterwards drops) its
own database on postgresql://postgres@127.0.0.1:5432 (override with --pg-dsn).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import asyncpg

from fixtures import customers as fake_customers  # also puts the repo root on sys.path

from sqlalchemy import Table, event, insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection  # noqa: E402

from handlers.charts import weekly_chart  # noqa: E402
from handlers.digest import build_digest  # noqa: E402
from storage import workspaces  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.digest import WeeklySeries  # noqa: E402
from storage.models import (  # noqa: E402
    Customer,
    CustomerTag,
    Feedback,
    Identity,
    Interaction,
    Member,
    Purchase,
    Reminder,
    Workspace,
)

TARGET_S = 2.0
TZ = ZoneInfo("Asia/Shanghai")
TUESDAY = datetime(2026, 11, 17, 8, 30, tzinfo=TZ).astimezone(timezone.utc)  # the daily digest's "now"
MONDAY = TUESDAY - timedelta(days=1)  # the weekly one's
CHANNELS = ("call", "visit", "meeting", "email", "wechat", "message", "note")
CHUNK = 20_000


def moment_before(rng: random.Random, end: datetime, days: float) -> datetime:
    return end - timedelta(seconds=rng.uniform(0, days * 86_400))


def in_time_order(rows: list[dict[str, Any]], moment: str, *numbered: str) -> list[dict[str, Any]]:
    """Rows sorted by `moment` with ids (and `numbered` columns) 1, 2, 3…: a live database
    appends rows as things happen, so id order follows time, as it does here."""
    rows.sort(key=lambda row: row[moment])
    for position, row in enumerate(rows, start=1):
        row.update({"id": position, **{column: position for column in numbered}})
    return rows


def book(args: argparse.Namespace, workspace_id: int, member_ids: list[int]) -> dict[Table, list[dict[str, Any]]]:
    """The seeded rows of every table, derived columns consistent with the events."""
    rng = random.Random(42)
    end = TUESDAY
    customer_rows = in_time_order([dict(
        workspace_id=workspace_id, owner_id=(owner := rng.choice(member_ids)), created_by=owner,
        name=fake.name, company=fake.company, phone=rng.random() < 0.8, email=rng.random() < 0.5,
        cadence_days=rng.choice((7, 14, 30, 45, 90)) if rng.random() < 0.1 else None,
        tier=rng.choices(("A", "B", "C", None), (10, 25, 30, 35))[0],
        created_at=moment_before(rng, end - timedelta(days=1), 730) if rng.random() > 0.002
        else moment_before(rng, end, 7),
        lost_at=None, deleted_at=end - timedelta(days=3) if rng.random() < 0.01 else None,
    ) for fake in fake_customers(args.customers)], "created_at", "number")
    owners = {row["id"]: row["owner_id"] for row in customer_rows}

    def events(count: int, days: float) -> Iterable[tuple[int, int, datetime]]:
        """(customer, member, moment) of `count` events over the last `days` days."""
        for _ in range(count):
            customer_id = rng.randint(1, args.customers)
            member_id = owners[customer_id] if rng.random() < 0.9 else rng.choice(member_ids)
            yield customer_id, member_id, moment_before(rng, end, days)

    common = dict(workspace_id=workspace_id)
    interactions = in_time_order([dict(
        common, customer_id=c, member_id=m, channel=rng.choice(CHANNELS), summary="回访，聊了新报价",
        occurred_at=at, created_at=at,
    ) for c, m, at in events(args.interactions, 60)], "occurred_at")
    purchases = in_time_order([dict(
        common, customer_id=c, member_id=m, amount_minor=rng.randint(100, 200_000) * 100,
        currency="USD" if rng.random() < 0.05 else "CNY", note="", occurred_at=at, created_at=at,
    ) for c, m, at in events(args.customers // 3, 365)], "occurred_at")
    feedback = in_time_order([dict(
        common, customer_id=c, member_id=m, score=rng.choices((1, 2, 3, 4, 5), (1, 2, 5, 10, 8))[0], comment="",
        created_at=at,
    ) for c, m, at in events(args.customers // 10, 90)], "created_at")
    reminders = in_time_order([dict(
        common, customer_id=c, member_id=m, created_by=m, due_at=(due := at + timedelta(days=rng.uniform(1, 30))),
        explicit_time=False, note="", status="pending" if due > end or rng.random() < 0.3 else "done",
        created_at=at, attempts=0,
    ) for c, m, at in events(args.customers // 2, 60)], "created_at", "number")

    last_contact: dict[int, datetime] = {}
    for row in interactions:  # in time order: the last one wins
        last_contact[row["customer_id"]] = row["occurred_at"]
    for row in customer_rows:
        contact = last_contact.get(row["id"]) or (
            moment_before(rng, end - timedelta(days=60), 300) if rng.random() < 0.5 else None)
        silence = (end - (contact or row["created_at"])).days
        row.update(
            phone=f"+86138{row['id']:08d}" if row["phone"] else None,
            email=f"c{row['id']}@example.com" if row["email"] else None,
            last_contact_at=contact, updated_at=contact or row["created_at"],
            stage="at_risk" if contact and silence > 60 and rng.random() < 0.5 else
            rng.choice(("prospect", "customer", "loyal")) if contact else "lead",
            ltv_minor=rng.randint(1_000, 50_000) * 100 if row["tier"] else None,
        )
    tags = [dict(common, customer_id=row["id"], name="incomplete", auto=True)
            for row in customer_rows if not (row["phone"] or row["email"]) or not row["company"]]
    tables = (Customer, Interaction, Purchase, Feedback, Reminder, CustomerTag)
    rows = (customer_rows, interactions, purchases, feedback, reminders, tags)
    return {model.__table__: table_rows for model, table_rows in zip(tables, rows)}  # type: ignore[misc]


async def bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (naive UTC timestamps, as stored), executemany elsewhere."""
    if conn.dialect.name == "postgresql":
        columns = list(rows[0])
        raw = (await conn.get_raw_connection()).driver_connection
        records = ([_plain(row[c]) for c in columns] for row in rows)
        await raw.copy_records_to_table(table.name, records=list(records), columns=columns)
        return
    for start in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[start:start + CHUNK])


def _plain(value: Any) -> Any:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(value, datetime) else value


async def populate(database: Database, args: argparse.Namespace) -> tuple[int, int]:
    """The workspace's id and its manager's id, after writing everything."""
    async with database.transaction() as session:
        workspace = await workspaces.create_workspace(session, name="bench", timezone=TZ.key, locale="zh",
                                                      now=TUESDAY - timedelta(days=800))
        manager, _ = await workspaces.add_member(session, workspace, platform="console", external_id="boss",
                                                 name="经理", role="manager", now=workspace.created_at)
        manager.digest_enabled = True
        workspace_id, manager_id = workspace.id, manager.id
    names = [fake.name for fake in fake_customers(args.reps, seed=3)]
    async with database.engine.begin() as conn:
        member_ids = list(await conn.scalars(insert(Member).returning(Member.id), [dict(
            workspace_id=workspace_id, name=name, role="rep", digest_enabled=False,
            created_at=TUESDAY - timedelta(days=700)) for name in names]))
        await conn.execute(insert(Identity), [dict(
            member_id=member_id, workspace_id=workspace_id, platform="telegram", external_id=str(member_id),
            blocked_at=TUESDAY - timedelta(days=2) if i % 40 == 0 else None) for i, member_id in enumerate(member_ids)])
        generated = time.perf_counter()
        rows = book(args, workspace_id, member_ids)
        print(f"  generated in {time.perf_counter() - generated:.1f} s: "
              + ", ".join(f"{table.name} {len(r):,}" for table, r in rows.items()))
        for table, table_rows in rows.items():
            await bulk_insert(conn, table, table_rows)
    async with database.engine.connect() as conn:
        if database.is_sqlite:  # what WAL auto-checkpoints keep doing in a running bot
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            async with conn.begin():
                for table in rows:  # what autovacuum would have done by morning
                    await conn.execute(text(f"ANALYZE {table.name}"))
                    await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                            f"(SELECT max(id) FROM {table.name}))"))
    return workspace_id, manager_id


class StatementTimer:
    """Wall time per SQL statement, to point at the query that needs an index."""

    def __init__(self, database: Database) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        engine = database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.times[" ".join(statement.split())].append(time.perf_counter() - conn.info.pop("bench_started"))

    def slowest(self, count: int) -> Iterable[tuple[float, str]]:
        return sorted(((max(t), s) for s, t in self.times.items()), reverse=True)[:count]


async def time_digest(database: Database, workspace_id: int, manager_id: int, now: datetime, runs: int) -> list[float]:
    """Wall times of `runs` builds; also prints this process's CPU time per build (with SQLite that
    includes the queries, so it shows the cost apart from whatever else the machine is doing)."""
    timings, cpu = [], []
    for _ in range(runs):
        async with database.transaction() as session:
            workspace = await session.get(Workspace, workspace_id)
            manager = await session.get(Member, manager_id)
            started, cpu_started = time.perf_counter(), time.process_time()
            replies = await build_digest(session, workspace, manager, now=now, locale="zh", tz=TZ)
            timings.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    text_length = len(replies[0].plain_text())
    chart = f", chart {len(replies[1].image.content) // 1024} KB" if len(replies) > 1 and replies[1].image else ""
    print(f"    message {text_length} characters{chart}; process CPU per build "
          f"{', '.join(f'{c:.3f}' for c in cpu)} s")
    return timings


async def run(args: argparse.Namespace) -> bool:
    if args.pg:
        name = f"crm_bench_digest_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(f"{args.pg_dsn}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{args.pg_dsn}/{name}"
    else:
        folder = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(folder.name) / 'bench.db'}"
    database = Database(url)
    try:
        print(f"database: {'PostgreSQL' if args.pg else 'SQLite'} ({url})")
        await database.upgrade()
        started = time.perf_counter()
        workspace_id, manager_id = await populate(database, args)
        print(f"  setup {time.perf_counter() - started:.1f} s")

        warm = time.perf_counter()
        weekly_chart(WeeklySeries("CNY", [], []), locale="zh", period="")  # matplotlib and fonts load once
        print(f"  one-time chart warm-up (matplotlib import, font scan) {time.perf_counter() - warm:.1f} s")
        print(f"  load average {' / '.join(f'{load:.1f}' for load in os.getloadavg())} on {os.cpu_count()} CPUs "
              "(other work on the machine stretches the wall times below)")
        timer = StatementTimer(database)
        results = {}
        for label, now in (("daily (Tuesday)", TUESDAY), ("weekly + chart (Monday)", MONDAY)):
            print(f"  build_digest {label}:")
            timings = await time_digest(database, workspace_id, manager_id, now, args.runs)
            results[label] = statistics.median(timings)
            print(f"    runs {', '.join(f'{t:.3f}' for t in timings)} s   median {results[label]:.3f} s")
        print("  slowest statements (worst run):")
        for seconds, statement in timer.slowest(5):
            print(f"    {seconds * 1000:7.1f} ms  {statement[:150]}")
    finally:
        await database.dispose()
        if args.pg:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        else:
            folder.cleanup()
    ok = all(seconds <= TARGET_S for seconds in results.values())
    summary = ", ".join(f"{label} {seconds:.2f} s" for label, seconds in results.items())
    print(f"{'PASS' if ok else 'FAIL'}: {summary} (target ≤ {TARGET_S:.0f} s, median of {args.runs})")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--interactions", type=int, default=400_000, help="over the last 60 days")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(run(args)) else 1)


if __name__ == "__main__":
    main()

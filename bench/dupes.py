"""`/dupes` on 100,000 customers: how long finding likely duplicate pairs takes.

The synthetic book of bench/fixtures.py (~70% with a company, ~25 customers per
company) gets a share of shared phones and e-mails, plus one very large
company (`--big-company` customers) to show the per-company blocking at work.
Runs on a SQLite file (or `--database URL`); prints the time of each run.

    python bench/dupes.py [--customers N] [--big-company N] [--runs N] [--database URL]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from fixtures import customers  # also puts the repo root on sys.path

from sqlalchemy import insert  # noqa: E402

from storage import dedupe, workspaces  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Customer  # noqa: E402

TARGET_SECONDS = 3.0


async def seed(database: Database, count: int, big_company: int) -> int:
    rng = random.Random(5)
    now = datetime.now(timezone.utc)
    async with database.transaction() as session:
        workspace = await workspaces.create_workspace(session, name="bench", timezone="Asia/Shanghai",
                                                      locale="zh", now=now)
        owner, _ = await workspaces.add_member(session, workspace, platform="bench", external_id="owner",
                                               name="owner", role="admin", now=now)
        rows = []
        for fake in customers(count):
            company = "Big Client Ltd" if fake.id <= big_company else fake.company
            phone = f"+86138{rng.randrange(10**8):08d}" if rng.random() < 0.6 else None
            email = f"user{rng.randrange(count * 2)}@example.com" if rng.random() < 0.3 else None
            rows.append({"workspace_id": workspace.id, "number": fake.id, "owner_id": owner.id, "name": fake.name,
                         "company": company, "phone": phone, "email": email, "stage": "lead",
                         "created_at": now, "updated_at": now})
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Customer), rows[start:start + 5000])
        return workspace.id


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(args.database or f"sqlite:///{Path(scratch) / 'dupes.db'}")
        await database.upgrade()
        workspace_id = await seed(database, args.customers, args.big_company)
        print(f"customers: {args.customers:,} (one company of {args.big_company:,})")
        for attempt in range(1, args.runs + 1):
            async with database.transaction() as session:
                started = time.perf_counter()
                pairs = await dedupe.likely_duplicates(session, workspace_id)
                elapsed = time.perf_counter() - started
            reasons = {r: sum(r in p.reasons for p in pairs) for r in dedupe.REASONS}
            print(f"run {attempt}: {elapsed:.2f} s, {len(pairs)} pairs (cap {dedupe.MAX_PAIRS}) {reasons}")
        print(f"target: ≤ {TARGET_SECONDS:.0f} s per /dupes")
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--big-company", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

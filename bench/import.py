"""SPEC §7: import 100,000 rows in ≤ 15 s with ≤ 200 MB peak RSS, and no other command waiting over 200 ms.

Builds a 100,000-row ledger CSV (GBK, as Excel saves it in China: name, mobile, e-mail for half, company,
region, owner, notes), starts a book on a fresh SQLite file (or PostgreSQL with --pg), and imports it the
way `crm-bot import` does (batches in their own transactions). Meanwhile another team sends `/tags`
every 50 ms through the core; the longest of those waits is the third figure. Peak RSS is the process's
high-water mark (ru_maxrss), the bench's own setup included.

    python bench/import.py [--rows N] [--pg] [--in-chat]

`--in-chat` imports where a chat's `/import` does (on SQLite, the database thread, where reading the
next batch and writing one take turns); without it, where `crm-bot import` does (the event loop, the
database's driver writing beside it). A chat's `/import` takes at most 50,000 rows.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from fixtures import CN_COMPANY_HEADS, CN_COMPANY_TAILS, GIVEN, SURNAMES  # also puts the repo root on sys.path

import asyncpg  # noqa: E402

from handlers.context import Services  # noqa: E402
from handlers.core import Core  # noqa: E402
from handlers.messages import Request  # noqa: E402
from handlers.transfer import read_plan, run_import  # noqa: E402
from storage.access import Scope  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Member, Workspace  # noqa: E402
from storage.search import CustomerSearch  # noqa: E402
from sqlalchemy import select  # noqa: E402

TARGETS = {"seconds": 15.0, "rss_mb": 200.0, "wait_ms": 200.0}
PG = "postgresql://postgres@127.0.0.1:5432"


def ledger(rows: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    lines = ["客户台账", "联系人,手机号码,邮箱,客户名称,所在地区,负责人,备注"]
    regions = ("上海", "北京", "深圳", "杭州", "成都", "武汉")
    for n in range(rows):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        email = f"c{n}@example.cn" if n % 2 else ""
        company = f"{rng.choice(CN_COMPANY_HEADS)}{rng.choice(CN_COMPANY_TAILS)}"
        note = "喜欢下午联系，周五别打" if n % 7 == 0 else ""
        lines.append(f"{name},13{n % 10}{n:08d},{email},{company},{rng.choice(regions)},Alice,{note}")
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", action="store_true", help="on PostgreSQL at 127.0.0.1:5432 instead of SQLite")
    parser.add_argument("--in-chat", action="store_true",
                        help="run the import where a chat's /import runs it (SQLite: the database thread)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp())
    if args.pg:
        admin = await asyncpg.connect(f"{PG}/postgres")
        await admin.execute("DROP DATABASE IF EXISTS crm_bench_import WITH (FORCE)")
        await admin.execute("CREATE DATABASE crm_bench_import")
        await admin.close()
        db = Database(f"{PG}/crm_bench_import")
    else:
        db = Database(f"sqlite:///{folder / 'import.db'}")
    await db.upgrade()
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731
    core = Core(db, Services(clock=clock, search=CustomerSearch(clock), default_locale="zh"))
    me = Request(platform="console", user_id="alice", chat_id="alice", user_name="Alice", space="team-a",
                 is_private=True, language="zh", text="/help")
    other = Request(platform="console", user_id="carol", chat_id="carol", user_name="Carol", space="team-b",
                    is_private=True, language="zh", text="/tags")
    await core.handle(me)
    await core.handle(other)
    content = ledger(args.rows)
    print(f"file: {args.rows:,} rows, {len(content) / 2**20:.1f} MB (GBK); RSS before reading it: "
          f"{peak_rss_mb():.1f} MB peak so far")

    async with db.transaction() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.name == "team-a"))
        alice = await session.scalar(select(Member).where(Member.workspace_id == workspace.id))
    scope = Scope(workspace.id, alice.id, alice.role, workspace.visibility)

    waits: list[float] = []
    running = True

    async def another_team() -> None:
        while running:
            started = time.perf_counter()
            await core.handle(other)
            waits.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)

    start = time.perf_counter()
    probe = asyncio.create_task(another_team())
    plan = read_plan(content, "ledger.csv", "zh")
    importing = (db.on_thread if args.in_chat else _here)(run_import, db.transaction, plan, workspace, scope, "zh", clock())
    result = await importing
    elapsed = time.perf_counter() - start
    running = False
    await probe
    await db.dispose()

    rss = peak_rss_mb()
    wait = max(waits) if waits else 0.0
    where = "PostgreSQL" if args.pg else "SQLite"
    print(f"{where}: imported {result.rows:,} rows (added {result.added:,}, merged {result.merged:,}) "
          f"in {elapsed:.1f} s ({result.rows / elapsed:,.0f} rows/s)")
    print(f"peak RSS: {rss:.1f} MB")
    print(f"another team's /tags during the import: {len(waits)} commands, longest {wait:.0f} ms, "
          f"p50 {sorted(waits)[len(waits) // 2] if waits else 0:.0f} ms")
    figures = {"seconds": elapsed, "rss_mb": rss, "wait_ms": wait}
    ok = all(figures[k] <= TARGETS[k] for k in TARGETS)
    print(f"{'PASS' if ok else 'FAIL'}: {elapsed:.1f} s (≤ {TARGETS['seconds']:.0f}), {rss:.0f} MB "
          f"(≤ {TARGETS['rss_mb']:.0f}), longest wait {wait:.0f} ms (≤ {TARGETS['wait_ms']:.0f})")
    sys.exit(0 if ok else 1)


async def _here(function, *args):  # type: ignore[no-untyped-def]
    return await function(*args)


if __name__ == "__main__":
    asyncio.run(main())

"""Issue 14's operations figures: `crm-bot backup` of a live SQLite book, restore, and the metrics' cost.

Fills a fresh SQLite book with a generated ledger (bench/import.py's, default 50,000 rows), then:
backs it up with the online backup API while another member adds a customer every 20 ms through the
core (their longest wait is the figure that says the bot kept working), restores the copy (checks,
swap, migrations), scrapes /metrics over HTTP, and times the counters a command records.

    python bench/operations.py [--rows N]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import socket
import tempfile
import time
import timeit
from datetime import datetime, timezone
from pathlib import Path

import fixtures  # noqa: F401 - puts the repo root on sys.path

import aiohttp  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bot.web import WebServer  # noqa: E402
from handlers import metrics  # noqa: E402
from handlers.context import Services  # noqa: E402
from handlers.core import Core  # noqa: E402
from handlers.messages import Request  # noqa: E402
from handlers.transfer import read_plan, run_import  # noqa: E402
from storage import backup  # noqa: E402
from storage.access import Scope  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Member, Workspace  # noqa: E402
from storage.search import CustomerSearch  # noqa: E402

ledger = importlib.import_module("import").ledger  # bench/import.py (a keyword as a module name)


def clock() -> datetime:
    return datetime.now(timezone.utc)


async def book(path: Path, rows: int) -> tuple[Database, Core]:
    db = Database(f"sqlite:///{path}")
    await db.upgrade()
    core = Core(db, Services(clock=clock, search=CustomerSearch(clock), default_locale="zh"))
    await core.handle(request("alice", "/help"))
    async with db.transaction() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.name == "team-a"))
        alice = await session.scalar(select(Member).where(Member.workspace_id == workspace.id))
    await run_import(db.transaction, read_plan(ledger(rows), "ledger.csv", "zh"), workspace,
                     Scope(workspace.id, alice.id, alice.role, workspace.visibility), "zh", clock())
    return db, core


def request(user: str, text: str) -> Request:
    return Request(platform="console", user_id=user, chat_id=user, user_name=user.title(), space="team-a",
                   is_private=True, language="zh", text=text)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    live, copy = folder / "crm.db", folder / "crm-backup.db"
    db, core = await book(live, args.rows)

    waits: list[float] = []
    running = True

    async def adding() -> None:
        n = 0
        while running:
            started = time.perf_counter()
            await core.handle(request("alice", f"/add 备份中客户{n}"))
            waits.append((time.perf_counter() - started) * 1000)
            n += 1
            await asyncio.sleep(0.02)

    writer = asyncio.create_task(adding())
    await asyncio.sleep(0.5)
    before = len(waits)
    started = time.perf_counter()
    copied = await asyncio.to_thread(backup.backup, live, copy)
    took = time.perf_counter() - started
    during = waits[before:]
    running = False
    await writer
    print(f"backup: {copied.size / 2**20:.1f} MB book ({args.rows:,} customers) in {took:.2f} s while a member "
          f"added customers: {len(during)} adds during it, longest {max(during, default=0):.0f} ms, "
          f"p50 {sorted(during)[len(during) // 2] if during else 0:.0f} ms")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        scrape_port = probe.getsockname()[1]
    server = WebServer(db, "127.0.0.1", scrape_port, clock=clock)
    await server.start()
    async with aiohttp.ClientSession() as http:
        scrapes = []
        for _ in range(20):
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{scrape_port}/metrics") as response:
                body = await response.read()
            scrapes.append((time.perf_counter() - started) * 1000)
    await server.stop()
    print(f"/metrics scrape: {len(body):,} bytes, median {sorted(scrapes)[10]:.1f} ms over 20 "
          f"(the due-not-sent count included)")
    per_command = timeit.timeit(lambda: metrics.command_done("add", metrics.OK, 0.01), number=100_000) / 100_000
    print(f"metrics per command: {per_command * 1e6:.1f} µs (a counter and a histogram)")

    await db.dispose()
    started = time.perf_counter()
    restored = await asyncio.to_thread(backup.restore, copy, live, now=datetime.now())
    fresh = Database(f"sqlite:///{live}")
    await fresh.upgrade()
    took = time.perf_counter() - started
    await fresh.dispose()
    print(f"restore: {took:.2f} s (copy, integrity check, swap, migrations; version {restored.revision}; "
          f"the old book kept as {restored.aside.name if restored.aside else '—'})")


if __name__ == "__main__":
    asyncio.run(main())

"""The card's numbered entries on a customer with a long history: /show, /entry and /undo timed.

A customer gets `--entries` interactions (and a tenth as many deals and
feedback), inserted in bulk; then, through the core like a person typing, the
median of `--runs` timings of: /show (which numbers the latest logs, deal and
feedback), `/entry … log 1 …` (a correction of the oldest entry) and /undo of
it. Runs on a SQLite file, or `--database URL` (an empty PostgreSQL database).

    python bench/card_entries.py [--entries N] [--runs N] [--database URL]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

import handlers.commands  # noqa: E402,F401  (registers the commands)
from handlers.context import Services  # noqa: E402
from handlers.core import Core  # noqa: E402
from handlers.messages import Request  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Customer, Feedback, Interaction, Purchase  # noqa: E402
from storage.search import CustomerSearch  # noqa: E402


def clock() -> datetime:
    return datetime.now(timezone.utc)


async def say(core: Core, text: str) -> str:
    replies = await core.handle(Request(platform="console", user_id="owner", chat_id="bench", space="console",
                                        is_private=True, language="en", text=text))
    return "\n".join(reply.plain_text() for reply in replies)


async def timed(core: Core, text: str, runs: int) -> tuple[float, str]:
    seconds, answer = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        answer = await say(core, text)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), answer


async def seed(core: Core, count: int) -> None:
    await say(core, "/add Bench 13700000001 company=Acme")
    async with core.db.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "Bench"))
        common = {"workspace_id": customer.workspace_id, "customer_id": customer.id, "member_id": customer.owner_id}
        start = clock() - timedelta(days=count)
        for model, rows in (
            (Interaction, [{**common, "channel": "call", "summary": f"call {i}", "created_at": start,
                            "occurred_at": start + timedelta(days=i)} for i in range(count)]),
            (Purchase, [{**common, "amount_minor": 100_000, "currency": "CNY", "note": "", "created_at": start,
                         "occurred_at": start + timedelta(days=10 * i)} for i in range(count // 10)]),
            (Feedback, [{**common, "score": 4, "comment": "", "created_at": start + timedelta(days=10 * i)}
                        for i in range(count // 10)]),
        ):
            for first in range(0, len(rows), 5000):
                await session.execute(insert(model), rows[first:first + 5000])


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(args.database or f"sqlite:///{Path(scratch) / 'entries.db'}")
        await database.upgrade()
        core = Core(database, Services(clock=clock, search=CustomerSearch(clock, sync_interval=0), default_locale="en"))
        await seed(core, args.entries)
        print(f"one customer with {args.entries:,} interactions, {args.entries // 10:,} deals and feedback "
              f"({database.url.get_backend_name()}); median of {args.runs} runs")
        show, card = await timed(core, "/show Bench", args.runs)
        assert f"log {args.entries} · " in card, card
        print(f"  /show (numbered card):        {show * 1000:7.1f} ms")
        edit, changed = await timed(core, "/entry Bench log 1 visit: corrected", 1)
        assert changed.startswith("Changed log 1"), changed
        print(f"  /entry … log 1 (correction):  {edit * 1000:7.1f} ms")
        undo, undone = await timed(core, "/undo", 1)
        assert undone.startswith("Undone: your correction of log 1"), undone
        print(f"  /undo of it:                  {undo * 1000:7.1f} ms")
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

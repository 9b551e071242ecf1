"""Issue 13: the core's own time per command, and the SQL statements it sends, with no platform.

Drives `Core.handle` as tests/chat.py does (a person in the console workspace)
on a fresh SQLite file and a fresh PostgreSQL database (127.0.0.1:5432, user
postgres) holding a book of `--customers` customers, each with an interaction,
a pending reminder and a manual tag. The first customers are added through
`/add`; the rest of the book is written in bulk (the same columns `/add`
writes), so a 100,000-customer book takes seconds, not an hour, and then
analysed on PostgreSQL as an import of it would be.

Each timed command is one `Core.handle` call with a fresh update key and
`reports_answers` (as Telegram sends them), followed by the `Core.answered`
mark the adapter sends as the replies leave; both are in the figures, and the
statements are counted apart ("25 + 2": the command's, then the mark's) with a
`before_cursor_execute` event on the engine; on SQLite also the hand-offs to another thread
(the database thread, storage.db_thread, and aiosqlite's worker; counted by wrapping
their calls). p50/p95 are over `--runs` runs
after `--warmup` untimed ones, in milliseconds of wall time; "CPU" is the process's CPU time
(every thread, aiosqlite's included) per command, which moves less than wall time when other
processes share the machine.

    python bench/core.py [--customers 1000 [10000 100000]] [--db sqlite postgresql] [--runs 200]
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiosqlite  # noqa: E402
from sqlalchemy import event, func, insert, select, update  # noqa: E402

from fixtures import customers as fake_customers  # noqa: E402
from handlers.context import Services  # noqa: E402
from handlers.core import Core  # noqa: E402
from handlers.messages import Request  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.db_thread import DatabaseThread  # noqa: E402
from storage.models import Customer, CustomerTag, Interaction, Member, Reminder, Workspace  # noqa: E402
from storage.search import CustomerSearch  # noqa: E402
from storage.transfer.importer import analyze_after_bulk_write  # noqa: E402

PG_DSN = "postgresql://postgres@127.0.0.1:5432"
SEEDED_BY_HAND = 5  # customers added through /add before the bulk rows
CHUNK = 2_000


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Statements:
    """Counts the statements the engine sends (every cursor execute, BEGIN included)."""

    def __init__(self, database: Database) -> None:
        self.count = 0
        event.listen(database.command_engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


class HandOffs:
    """Counts the hand-offs to another thread and back to the event loop: to the database thread
    (storage.db_thread) and to an aiosqlite connection's worker thread."""

    count = 0

    @classmethod
    def install(cls) -> None:
        to_aiosqlite, to_database_thread = aiosqlite.Connection._execute, DatabaseThread.run

        async def counted(connection: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
            cls.count += 1
            return await to_aiosqlite(connection, function, *args, **kwargs)

        async def run(thread: DatabaseThread, function: Any, *args: Any) -> Any:
            cls.count += 1
            return await to_database_thread(thread, function, *args)

        aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
        DatabaseThread.run = run  # type: ignore[method-assign]


class Person:
    """Alice, the console workspace's admin, typing commands; each one an update of its own."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def request(self, text: str) -> Request:
        return Request(platform="console", user_id="alice", chat_id="chat-alice", user_name="Alice", space="console",
                       is_private=True, language="en", dm_chat_id="dm-alice", text=text,
                       update_key=f"bench:{uuid.uuid4().hex}", reports_answers=True)

    async def say(self, text: str) -> str:
        request = self.request(text)
        replies = await self.core.handle(request)
        await self.core.answered(request.update_key or "")
        return "\n".join(reply.plain_text() for reply in replies)


async def seed(database: Database, person: Person, size: int) -> list[str]:
    """A book of `size` customers; the names (unique in the book) the timed commands use."""
    seen: set[str] = set()
    book = []
    for customer in fake_customers(size):  # the generator repeats some names: those get a number
        name = customer.name if customer.name not in seen else f"{customer.name} {customer.id}"
        seen.add(name)
        book.append(customer._replace(name=name))
    for customer in book[:SEEDED_BY_HAND]:
        await person.say(f'/add "{customer.name}"' + (f' company="{customer.company}"' if customer.company else ""))
    now = datetime.now(timezone.utc)
    async with database.transaction() as session:
        template = (await session.execute(select(Customer.__table__).where(Customer.number == 1))).mappings().one()
        member_id = await session.scalar(select(Member.id))
        workspace_id = template["workspace_id"]
    rest = book[SEEDED_BY_HAND:]
    for start in range(0, len(rest), CHUNK):
        chunk = rest[start:start + CHUNK]
        first_number = SEEDED_BY_HAND + start + 1
        rows = [{**{k: v for k, v in template.items() if k != "id"}, "name": c.name, "company": c.company,
                 "number": first_number + n, "phone": f"+86138{first_number + n:08d}",
                 "created_at": now - timedelta(days=90), "updated_at": now - timedelta(days=90)}
                for n, c in enumerate(chunk)]
        async with database.transaction() as session:
            ids = list(await session.scalars(insert(Customer).returning(Customer.id), rows))
            await session.execute(insert(Interaction), [
                {"workspace_id": workspace_id, "customer_id": i, "member_id": member_id, "channel": "call",
                 "summary": "first call", "occurred_at": now - timedelta(days=20), "created_at": now} for i in ids])
            await session.execute(insert(Reminder), [
                {"workspace_id": workspace_id, "number": first_number + n, "customer_id": i, "member_id": member_id,
                 "created_by": member_id, "due_at": now + timedelta(days=5), "explicit_time": False, "note": "",
                 "status": "pending", "created_at": now} for n, i in enumerate(ids)])
            await session.execute(insert(CustomerTag), [
                {"workspace_id": workspace_id, "customer_id": i, "name": "lead-fair", "auto": False} for i in ids])
    async with database.transaction() as session:
        await session.execute(update(Workspace).values(next_customer_no=size + 1, next_reminder_no=size + 1))
        counted = await session.scalar(select(func.count()).select_from(Customer))
    async with database.transaction() as session:  # what an import of the book does after its last batch
        await analyze_after_bulk_write(session)
    assert counted == size, (counted, size)
    return [c.name for c in book if c.name.isascii() or " " not in c.name]


def quoted(name: str) -> str:
    return f'"{name}"' if " " in name else name


def made_up_name(n: int) -> str:
    """A name like no other in the book (so /add saves it instead of asking "same person?")."""
    rng = random.Random(n)
    syllables = lambda: "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))  # noqa: E731
    return f'"{syllables().title()} {syllables().title()}"'


def commands(names: list[str]) -> dict[str, Callable[[int], str]]:
    """The timed commands, each given the run's number (a different customer each time)."""
    pick = lambda n: quoted(names[(n * 7919) % len(names)])  # noqa: E731
    return {
        "/log … next: friday": lambda n: f"/log {pick(n)} call: talked about the price next: friday",
        "/show": lambda n: f"/show {pick(n)}",
        "/find": lambda n: f"/find {names[(n * 104729) % len(names)].split()[0]}",
        "/add": lambda n: f"/add {made_up_name(n)} company=Benchco",
        "/tag": lambda n: f"/tag {pick(n)} bench{n % 5}",
    }


async def measure(url: str, size: int, runs: int, warmup: int) -> list[tuple[str, float, float, float, int, int, int, int, str]]:
    database = Database(url)
    await database.upgrade()
    services = Services(clock=lambda: datetime.now(timezone.utc), search=CustomerSearch(
        lambda: datetime.now(timezone.utc)), default_timezone="Asia/Shanghai", default_locale="en")
    core = Core(database, services)
    person = Person(core)
    statements = Statements(database)
    try:
        started = time.perf_counter()
        names = await seed(database, person, size)
        print(f"  book of {size:,} customers written in {time.perf_counter() - started:.1f} s")
        rows = []
        for label, text in commands(names).items():
            example = ""
            for n in range(warmup):
                example = (await person.say(text(runs + n))).splitlines()[0][:70]
            samples: list[float] = []
            cpu: list[float] = []
            in_command = in_mark = asked = hand_offs = 0
            for n in range(runs):
                request = person.request(text(n))
                before, hand_offs_before = statements.count, HandOffs.count
                start, start_cpu = time.perf_counter(), time.process_time()
                replies = await core.handle(request)
                middle = statements.count
                await core.answered(request.update_key or "")
                samples.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - start_cpu) * 1000)
                in_command += middle - before
                in_mark += statements.count - middle
                hand_offs += HandOffs.count - hand_offs_before
                asked += any(button.action and button.action.startswith("pick:")
                             for reply in replies for button in reply.all_buttons())
            rows.append((label, percentile(samples, 50), percentile(samples, 95), percentile(cpu, 50),
                         round(in_command / runs), round(in_mark / runs), round(hand_offs / runs), asked, example))
        return rows
    finally:
        await database.dispose()


async def on_postgresql(size: int, runs: int, warmup: int) -> list[tuple[str, float, float, float, int, int, int, int, str]]:
    import asyncpg

    name = f"crm_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{PG_DSN}/postgres", timeout=3)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return await measure(f"{PG_DSN}/{name}", size, runs, warmup)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000])
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    HandOffs.install()
    for size in args.customers:
        for kind in args.db:
            print(f"{kind}, {size:,} customers, {args.runs} runs each:")
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    rows = await measure(f"sqlite:///{folder}/bench.db", size, args.runs, args.warmup)
            else:
                rows = await on_postgresql(size, args.runs, args.warmup)
            for label, p50, p95, cpu_p50, in_command, in_mark, hand_offs, asked, example in rows:
                which = f"   ({asked} asked 'which one?')" if asked else ""
                threads = f"   thread hand-offs {hand_offs}" if kind == "sqlite" else ""
                print(f"  {label:<22} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   CPU p50 {cpu_p50:6.2f} ms   "
                      f"statements {in_command} + {in_mark}{threads}"
                      f"{which}   answer: {example}")


if __name__ == "__main__":
    asyncio.run(main())

"""SPEC §4 and §7: reminders through 20 kill-and-restart cycles: 0 lost, 0 duplicated.

The real `crm-bot run` (as `python -m bot run`, which is what the `crm-bot`
script runs) serves Telegram against the local Bot API stand-in in its own
process, with a scheduler polling every 0.5 s. Before it starts, a workspace is
set up through the handlers (members with Telegram accounts and direct chats, a
customer book, a time zone where it is daytime now, so quiet hours hold
nothing) and 1,000 reminders with explicit times are written with
`storage.followups.create_reminder`, falling due one after another over the run.

Then, 20 times: start the bot, wait until `/healthz` answers, let it work for a
random while, `kill -9` it. A last start lets it deliver the rest and is
stopped with SIGTERM. What counts is what the stand-in accepted: each reminder
carries a unique token in its note, and every sendMessage the stand-in recorded
is searched for it. Delivered: the token arrived in its recipient's chat;
lost: never; duplicated: more than once.

    python bench/restarts.py [--pg] [--reminders 1000] [--cycles 20] [--spread 70] [--max-up 3] [--seed 1]

SQLite goes to a temporary file; `--pg` creates (and afterwards drops) its own
database on postgresql://postgres@127.0.0.1:5432 (override with --pg-dsn).
On PostgreSQL what a killed process had claimed is free again after 30 seconds,
but a send it had under way only after the 5-minute send lease
(storage.schedule), so the last phase may wait that long.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from standin import ROOT, StandInProcess, people, say, set_up_team  # also puts the repo root on sys.path

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from handlers.i18n import t  # noqa: E402
from storage import followups, schedule  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Customer, Identity, Member, Reminder, Workspace  # noqa: E402

TOKEN = "7300003:AAH-restart-bench-token_0123456789abc"
POLL_SECONDS = 0.5
UTC = timezone.utc
#: Zones without daylight saving time, one per hour from UTC-10 to UTC+12: some have daytime now.
DAYTIME_CANDIDATES = (
    "Pacific/Honolulu", "Pacific/Gambier", "Pacific/Pitcairn", "America/Phoenix", "America/Regina",
    "America/Bogota", "America/Caracas", "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Cape_Verde",
    "Africa/Abidjan", "Africa/Lagos", "Africa/Johannesburg", "Europe/Moscow", "Asia/Dubai", "Asia/Karachi",
    "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane", "Pacific/Guadalcanal",
    "Pacific/Fiji",
)
#: How long the last run may take to deliver what is left, beyond the last due time and any lease.
DRAIN_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class Planned:
    token: str
    chat_id: str
    due_at: datetime


# --- the data -------------------------------------------------------------------------------------------

def daytime_zone(now: datetime, lasting: timedelta) -> str:
    """A zone where it is daytime from `now` for `lasting` (no quiet hours), nearest to 14:00 local."""
    def distance(name: str) -> float:
        local = now.astimezone(ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - 14)

    fits = [z for z in DAYTIME_CANDIDATES
            if schedule.quiet_until(now, ZoneInfo(z)) is None and schedule.quiet_until(now + lasting, ZoneInfo(z)) is None]
    return min(fits, key=distance)


async def prepare(url: str, args: argparse.Namespace, run: str) -> list[Planned]:
    """A team with a customer book, in daytime, and its reminders (what each should look like)."""
    app = App.build(Settings(_env_file=None, database_url=url, default_locale="en"))
    try:
        await app.db.upgrade()
        reps = people(args.reps)
        await set_up_team(app, reps, args.customers)
        now = datetime.now(UTC)
        zone = daytime_zone(now, timedelta(seconds=args.spread) + schedule.LEASE + timedelta(minutes=10))
        await say(app, reps[0], f"/settings timezone={zone}")
        rng = random.Random(args.seed)
        first_due = now + timedelta(seconds=1)
        step = timedelta(seconds=args.spread / max(1, args.reminders - 1))
        planned = []
        async with app.db.transaction() as session:
            workspace = await session.scalar(select(Workspace))
            assert workspace is not None and workspace.timezone == zone, "the time zone was not set"
            members = list(await session.execute(
                select(Member, Identity.dm_chat_id).join(Identity, Identity.member_id == Member.id)
                .where(Member.workspace_id == workspace.id)))
            customer_ids = list(await session.scalars(select(Customer.id).where(Customer.workspace_id == workspace.id)))
            for n in range(args.reminders):
                member, chat_id = rng.choice(members)
                token = f"[{run}:{n:04d}]"
                due = first_due + n * step
                await followups.create_reminder(
                    session, workspace, member_id=member.id, created_by=member.id,
                    customer_id=rng.choice(customer_ids), due_at=due, explicit_time=True,
                    note=f"visit {token}", now=now)
                planned.append(Planned(token, chat_id, due))
        print(f"set up: {len(members)} members, {len(customer_ids)} customers, time zone {zone} "
              f"({now.astimezone(ZoneInfo(zone)):%H:%M} there), {len(planned)} reminders due over {args.spread:.0f} s")
        return planned
    finally:
        await app.db.dispose()


@dataclass(frozen=True)
class Ledger:
    """What the database says about the reminders."""

    undelivered: int  # not sent yet, or a send under way
    cut_off: list[str]  # notes of the sends cut off by a kill, counted as delivered (reminders.claims)
    given_up: int


async def ledger(url: str) -> Ledger:
    database = Database(url)
    try:
        async with database.transaction() as session:
            def counted(*where: Any) -> Any:
                return session.scalar(select(func.count()).select_from(Reminder).where(*where))

            return Ledger(
                undelivered=await counted(Reminder.status == "pending",
                                          Reminder.sent_at.is_(None) | Reminder.claimed_until.is_not(None)),
                cut_off=list(await session.scalars(select(Reminder.note).where(Reminder.last_error == schedule.CUT_OFF))),
                given_up=await counted(Reminder.sent_at.is_not(None), Reminder.last_error != schedule.CUT_OFF),
            )
    finally:
        await database.dispose()


# --- the bot process ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BotProcess:
    """`crm-bot run` as a child process, started afresh each time, with its log per start."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.port = 0
        self.killed_at: list[float] = []  # Unix times of the kills

    async def start(self) -> float:
        """Start and wait for `/healthz`; seconds it took."""
        self.starts += 1
        self.port = free_port()
        log = (self.folder / f"bot-{self.starts:02d}.log").open("w")
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=self.folder, stdout=log, stderr=log,
            env={**self.env, "HTTP_PORT": str(self.port)})
        log.close()
        async with aiohttp.ClientSession() as http:
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"crm-bot exited with {self.process.returncode}; see {log.name}")
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.02)

    async def kill(self) -> None:
        assert self.process is not None
        self.killed_at.append(time.time())
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)


def bot_env(url: str, base_url: str) -> dict[str, str]:
    """This machine's environment without crm-bot's own settings, then the bench's."""
    own = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in own}
    return env | {
        "PYTHONPATH": str(ROOT), "DATABASE_URL": url, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": base_url,
        "REMINDER_POLL_SECONDS": str(POLL_SECONDS), "HTTP_HOST": "127.0.0.1", "DEFAULT_LOCALE": "en",
        "LOG_LEVEL": "INFO",
    }


async def cycles(bot: BotProcess, stand_in: StandInProcess, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed + 1)
    for cycle in range(1, args.cycles + 1):
        startup = await bot.start()
        up = rng.uniform(0, args.max_up)
        await asyncio.sleep(up)
        await bot.kill()
        received = (await stand_in.stats())["replies"]
        print(f"  cycle {cycle:2d}: ready in {startup:.2f} s, killed -9 {up:.2f} s later; "
              f"{received} messages received so far")


async def drain(bot: BotProcess, url: str, planned: list[Planned], is_pg: bool) -> Ledger:
    """The last run: until the database has nothing left to send (or the deadline), then SIGTERM."""
    startup = await bot.start()
    last_due = max(datetime.now(UTC), *(p.due_at for p in planned))
    deadline = last_due + DRAIN_GRACE + (schedule.LEASE if is_pg else timedelta())
    while True:
        await asyncio.sleep(1)
        state = await ledger(url)
        if not state.undelivered or datetime.now(UTC) > deadline:
            break
    code = await bot.stop()
    print(f"  last run: ready in {startup:.2f} s, {state.undelivered} reminders left undelivered, "
          f"stopped with SIGTERM (exit {code})")
    return await ledger(url)


# --- what arrived -------------------------------------------------------------------------------------------

def late_prefix() -> str:
    return t("en", "delivery.late", when="\0").split("\0")[0]


def count(planned: list[Planned], sent: list[dict[str, Any]], run: str) -> dict[str, Any]:
    pattern = re.compile(rf"\[{re.escape(run)}:\d{{4}}\]")
    arrivals: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in sent:
        for token in pattern.findall(message["text"]):
            arrivals[token].append(message)
    by_token = {p.token: p for p in planned}
    right = {token: [m for m in found if m["chat_id"] == by_token[token].chat_id] for token, found in arrivals.items()}
    delays = sorted(found[0]["at"] - by_token[token].due_at.timestamp() for token, found in right.items() if found)
    late = late_prefix()
    lost = sum(1 for p in planned if not right.get(p.token))
    duplicated = sum(1 for found in right.values() if len(found) > 1)
    misrouted = sum(len(found) - len(right[token]) for token, found in arrivals.items())
    return {
        "ok": not lost and not duplicated and not misrouted,
        "delivered": sum(1 for found in right.values() if found),
        "lost": lost,
        "duplicated": duplicated,
        "extra": sum(len(found) - 1 for found in right.values() if len(found) > 1),
        "misrouted": misrouted,
        "late": sum(1 for found in arrivals.values() for m in found if m["text"].startswith(late)),
        "others": sum(1 for m in sent if not pattern.search(m["text"])),
        "delays": delays,
        "repeated": sorted(token for token, found in right.items() if len(found) > 1),
        "first_of_repeated": {token: found[0]["at"] for token, found in sorted(right.items()) if len(found) > 1},
        "missing": sorted(p.token for p in planned if not right.get(p.token)),
    }


def percentile(samples: list[float], pct: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * pct / 100))] if samples else float("nan")


# --- the run ------------------------------------------------------------------------------------------------

async def run(args: argparse.Namespace) -> bool:
    run_id = uuid.uuid4().hex[:6]
    folder = tempfile.TemporaryDirectory(prefix="crm-restarts-")
    logs = Path(args.logs) if args.logs else Path(folder.name)
    logs.mkdir(parents=True, exist_ok=True)
    admin = None
    if args.pg:
        name = f"crm_bench_restarts_{run_id}"
        admin = await asyncpg.connect(f"{args.pg_dsn}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{args.pg_dsn}/{name}"
    else:
        url = f"sqlite:///{Path(folder.name) / 'bench.db'}"
    try:
        print(f"database: {'PostgreSQL' if args.pg else 'SQLite'} ({url})")
        async with StandInProcess() as stand_in:
            await stand_in.reset(TOKEN, [person.chat for person in people(args.reps)])
            planned = await prepare(url, args, run_id)
            bot = BotProcess(bot_env(url, stand_in.base_url), logs)
            started = time.monotonic()
            await cycles(bot, stand_in, args)
            killed_at = time.monotonic()
            state = await drain(bot, url, planned, args.pg)
            finished = time.monotonic()
            result = count(planned, await stand_in.sent(), run_id)
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        folder.cleanup()

    report(args, planned, result, bot, state, killed_at - started, finished - killed_at)
    if args.logs:
        print(f"logs in {logs}")
    return result["ok"]


def report(args: argparse.Namespace, planned: list[Planned], result: dict[str, Any], bot: BotProcess,
           state: Ledger, cycling: float, draining: float) -> None:
    delays = result["delays"]
    print(f"cycles      {args.cycles} kill -9 and restart in {cycling:.1f} s, then {draining:.1f} s to deliver "
          f"the rest; {bot.starts} starts in all")
    print(f"delivered   {result['delivered']} of {len(planned)}")
    print(f"lost        {result['lost']}" + (f"  {' '.join(result['missing'][:10])}" if result["missing"] else ""))
    print(f"duplicated  {result['duplicated']} ({result['extra']} extra copies)"
          + (f"  {' '.join(result['repeated'][:10])}" if result["repeated"] else ""))
    for token, first in result["first_of_repeated"].items():  # a request out before the kill may land after it
        kill = min(bot.killed_at, key=lambda k: abs(k - first))
        when = f"{abs(kill - first) * 1000:.1f} ms {'before' if first <= kill else 'after'}"
        print(f"            {token}: first copy accepted {when} kill -9 no. {bot.killed_at.index(kill) + 1}")
    print(f"late        {result['late']} marked late (due before the bot started, sent over {max(POLL_SECONDS, 60):.0f} s after)")
    print(f"delay       due → arrived p50 {percentile(delays, 50):.2f} s, p95 {percentile(delays, 95):.2f} s, "
          f"max {max(delays, default=float('nan')):.2f} s")
    arrived = sum(1 for note in state.cut_off if not any(token in note for token in result["missing"]))
    print(f"database    {state.undelivered} undelivered, {state.given_up} given up, {len(state.cut_off)} sends cut "
          f"off by a kill and counted as delivered: {arrived} of them had arrived")
    print(f"other       {result['misrouted']} in a wrong chat, {result['others']} other messages")
    print(f"{'PASS' if result['ok'] else 'FAIL'}: {result['delivered']} of {len(planned)} delivered, "
          f"{result['lost']} lost, {result['duplicated']} duplicated "
          f"(target {len(planned)} of {len(planned)}, 0 lost, 0 duplicated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--reminders", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--spread", type=float, default=70, help="seconds over which the reminders fall due")
    parser.add_argument("--max-up", type=float, default=3, help="the bot lives 0 to this many seconds once ready")
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", help="keep the bot's logs (one per start) in this folder")
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(run(args)) else 1)


if __name__ == "__main__":
    main()

"""Issue 14: several `crm-bot run` processes on one PostgreSQL database.

Prints three figures, each against the Bot API stand-in in its own process answering every call
`--latency` ms late (default 50, about a round trip from a server to Telegram):

1. commands per second with 1, 2 and 3 processes in webhook mode behind nginx: the bench posts
   `/show <customer>` updates as Telegram does (each chat's in order, the chats at once; a webhook
   request is answered once its update is handled, replies sent), timed from the first post to
   the last answer;
2. the takeover time in polling mode: three processes, the one holding the polling lease is
   killed (-9) with an update waiting; the time from the kill to that update's reply (and to
   another process logging that it holds the lease), over `--kills` kills;
3. read-your-writes: `/add` through process A, then at once `/find` through process B: the time
   from A's answer to B's answer, and whether B found the customer on that first try.

    python bench/scale.py [--commands 300] [--chats 12] [--customers 60] [--latency 50] [--kills 3]

It creates (and afterwards drops) its own database on postgresql://postgres@127.0.0.1:5432
(override with --pg-dsn) and needs nginx (apt-get install nginx). The machine's cores are shared
by everything here (bench, stand-in, nginx, PostgreSQL, the processes): more processes only help
while a core is free.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from standin import StandInProcess, people, set_up_team  # also puts the repo root on sys.path

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from tests.e2e.processes import BotProcess, Nginx, cpu_seconds, free_port, wait_for  # noqa: E402
from tests.e2e.telegram_api import Person, TelegramStandIn  # noqa: E402

TOKEN = "7400004:AAH-scale-bench-token_0123456789abcdef"
SECRET = "scale-bench-webhook-secret"
HOLDER = "this process holds the lease"  # what storage.leases logs
BUILDER = TelegramStandIn(token=TOKEN)  # builds update payloads only


class Run:
    """The database, the stand-in and the team every phase shares."""

    def __init__(self, args: argparse.Namespace, url: str, stand_in: StandInProcess, folder: Path) -> None:
        self.args, self.url, self.stand_in, self.folder = args, url, stand_in, folder
        self.reps = people(args.chats)
        self.names: list[str] = []
        self._update_ids = iter(range(800_000_001, 900_000_000))
        self._phase = 0

    def bots(self, count: int, **env: str) -> list[BotProcess]:
        self._phase += 1
        settings = {"DATABASE_URL": self.url, "TELEGRAM_BOT_TOKEN": TOKEN,
                    "TELEGRAM_API_BASE_URL": self.stand_in.base_url, "DEFAULT_LOCALE": "en", **env}
        return [BotProcess(f"bot{n}", self.folder / f"phase{self._phase}" / f"bot{n}", settings) for n in range(count)]

    def update(self, person: Person, text: str) -> dict:
        update = BUILDER.message(person, text)
        update["update_id"] = next(self._update_ids)
        return update

    async def reset(self) -> None:
        await self.stand_in.reset(TOKEN, [rep.chat for rep in self.reps], latency=self.args.latency / 1000)


async def post(http: aiohttp.ClientSession, url: str, update: dict) -> None:
    """As Telegram posts to a webhook: again until it is answered with 200."""
    for _ in range(50):
        try:
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no process took update {update['update_id']}")


async def started(bots: list[BotProcess]) -> None:
    for bot in bots:
        bot.start()
    for bot in bots:
        await bot.logged("Telegram bot @", timeout=60)


def stop(bots: list[BotProcess], lb: Nginx | None = None) -> None:
    for bot in bots:
        bot.stop()
    if lb is not None:
        lb.stop()


# --- 1. commands per second --------------------------------------------------------------------------

async def throughput(run: Run, count: int) -> float:
    lb_port = free_port()
    bots = run.bots(count, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{lb_port}/telegram", TELEGRAM_WEBHOOK_SECRET=SECRET)
    lb = Nginx(run.folder / f"nginx{count}", [bot.port for bot in bots], lb_port)
    await run.reset()
    await started(bots)
    await lb.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            async def chat(rep: Person, commands: int, offset: int) -> None:
                for n in range(commands):
                    name = run.names[(offset + n * 7) % len(run.names)]
                    await post(http, f"{lb.url}/telegram", run.update(rep, f"/show {name}"))

            each = max(1, run.args.commands // len(run.reps))
            await asyncio.gather(*(chat(rep, 2, i) for i, rep in enumerate(run.reps)))  # warm up every process
            assert run.stand_in.process is not None
            stand_in_cpu = cpu_seconds(run.stand_in.process.pid)
            cpu = sum(bot.cpu_seconds() for bot in bots)
            began = time.perf_counter()
            await asyncio.gather(*(chat(rep, each, i * 13) for i, rep in enumerate(run.reps)))
            seconds = time.perf_counter() - began
            cpu = sum(bot.cpu_seconds() for bot in bots) - cpu
            stand_in_cpu = cpu_seconds(run.stand_in.process.pid) - stand_in_cpu
        stats = await run.stand_in.stats()
        errors = f", API errors: {stats['error_count']} e.g. {stats['errors'][:2]}" if stats["error_count"] else ""
        total = each * len(run.reps)
        print(f"  {count} process{'es' if count > 1 else '  '}: {total} commands in {seconds:5.2f} s = "
              f"{total / seconds:6.1f} commands/s; CPU per command: bots {cpu / total * 1000:.0f} ms, "
              f"stand-in {stand_in_cpu / total * 1000:.0f} ms{errors}")
        return total / seconds
    finally:
        stop(bots, lb)


# --- 2. takeover ------------------------------------------------------------------------------------------

async def takeover(run: Run) -> list[tuple[float, float]]:
    """(seconds to the waiting update's reply, seconds to the new holder's log line) per kill."""
    await run.reset()
    bots = run.bots(3)
    await started(bots)
    found: list[tuple[float, float]] = []
    seen = {bot: 0 for bot in bots}  # lines saying "holds the lease" already counted, per process

    def gained(bot: BotProcess) -> bool:
        return bot.alive and bot.log().count(HOLDER) > seen[bot]

    try:
        for kill in range(run.args.kills):
            await wait_for(lambda: any(gained(bot) for bot in bots), 20, "a lease holder")
            holder = next(bot for bot in bots if gained(bot))
            seen = {bot: bot.log().count(HOLDER) for bot in bots}
            before = (await run.stand_in.stats())["replies"]
            holder.kill()
            killed = time.perf_counter()
            await run.stand_in.push([run.update(run.reps[0], f"/show {run.names[kill]}")])
            lease_at = None
            while True:
                if lease_at is None and any(gained(bot) for bot in bots):
                    lease_at = time.perf_counter() - killed
                if (await run.stand_in.stats())["replies"] > before:
                    replied = time.perf_counter() - killed
                    break
                if time.perf_counter() - killed > 30:
                    raise RuntimeError("nobody took over within 30 s")
                await asyncio.sleep(0.01)
            found.append((replied, replied if lease_at is None else lease_at))
            print(f"  kill {kill + 1}: answered {replied:.2f} s after the kill "
                  f"(another process logged the lease after {found[-1][1]:.2f} s)")
            starts = holder.log().count("Telegram bot @")
            holder.start()  # back, as a process that waits for the lease
            await holder.logged("Telegram bot @", timeout=60, after=starts)
    finally:
        stop(bots)
    return found


# --- 3. read-your-writes ---------------------------------------------------------------------------------

async def visibility(run: Run, tries: int = 20) -> list[tuple[float, bool]]:
    await run.reset()
    bots = run.bots(2, TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/telegram", TELEGRAM_WEBHOOK_SECRET=SECRET)
    await started(bots)
    found: list[tuple[float, bool]] = []
    rep = run.reps[0]
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(tries):
                name = f"Quillfeather{uuid.uuid4().hex[:6]}"
                await post(http, f"{bots[0].url}/telegram", run.update(rep, f"/add {name} 1370{n:07d}"))
                written = time.perf_counter()
                await post(http, f"{bots[1].url}/telegram", run.update(rep, f"/find {name.lower()}"))
                seen = time.perf_counter() - written
                replies = await run.stand_in.sent()
                found.append((seen, name in replies[-1]["text"]))
    finally:
        stop(bots)
    return found


async def main(args: argparse.Namespace) -> int:
    name = f"crm_scale_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{args.pg_dsn}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.pg_dsn}/{name}"
    try:
        async with StandInProcess() as stand_in:
            with tempfile.TemporaryDirectory() as folder:
                run = Run(args, url, stand_in, Path(folder))
                app = App.build(Settings(_env_file=None, database_url=url, default_locale="en"),
                                clock=lambda: datetime.now(timezone.utc))
                await app.db.upgrade()
                run.names = await set_up_team(app, run.reps, args.customers)
                await app.db.dispose()
                print(f"PostgreSQL, {len(run.reps)} reps, {len(run.names)} customers, Bot API latency "
                      f"{args.latency:g} ms")
                print("1. webhook behind nginx, /show <customer>, each chat in order, all chats at once:")
                rates = [await throughput(run, count) for count in (1, 2, 3)]
                print(f"   2 processes: ×{rates[1] / rates[0]:.2f}, 3 processes: ×{rates[2] / rates[0]:.2f}")
                print("2. polling, the lease holder killed -9 with an update waiting:")
                kills = await takeover(run)
                print(f"   answered after the kill: median {statistics.median(k[0] for k in kills):.2f} s, "
                      f"max {max(k[0] for k in kills):.2f} s")
                print("3. /add through process A, then at once /find through process B:")
                seen = await visibility(run)
                times = sorted(s for s, _ in seen)
                print(f"   found on the first try: {sum(ok for _, ok in seen)}/{len(seen)}; A's answer → B's answer: "
                      f"median {statistics.median(times) * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--chats", type=int, default=12)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--latency", type=float, default=50, metavar="MS")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432")
    sys.exit(asyncio.run(main(parser.parse_args())))

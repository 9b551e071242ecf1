"""Issue 12, hole 2: unsigned megabyte bodies sent to /slack/events must not freeze the bot or fill its memory.

Starts `crm-bot run` in Slack HTTP mode as its own process (a temporary SQLite file; the Slack Web API
is never called: nothing here gets past the request check), then sends `--requests` unsigned bodies
of `--mb` megabytes at once, as the attack report did (six of 15.7 MB), while timing `/healthz` every
50 ms. Prints the answers' statuses, the bot's RSS before and after, and the slowest /healthz.

    python bench/slack_flood.py [--requests 6] [--mb 15.7]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_healthy(http: aiohttp.ClientSession, url: str, bot: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise SystemExit(f"the bot exited ({bot.returncode})")
        try:
            async with http.get(url) as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the bot did not answer /healthz within 60 s")


async def flood(events: str, health: str, requests: int, size: int) -> tuple[list[int], float]:
    body = b"x" * size
    slowest = 0.0
    async with aiohttp.ClientSession() as http:
        async def one() -> int:
            try:
                async with http.post(events, data=body, headers={"Content-Type": "application/json"}) as answer:
                    return answer.status
            except aiohttp.ClientError as problem:  # the server may close the connection mid-upload
                return {"ServerDisconnectedError": 413}.get(type(problem).__name__, -1)

        async def probe(done: asyncio.Event) -> None:
            nonlocal slowest
            while not done.is_set():
                started = time.perf_counter()
                async with http.get(health) as answer:
                    await answer.read()
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.05)

        done = asyncio.Event()
        prober = asyncio.create_task(probe(done))
        statuses = await asyncio.gather(*(one() for _ in range(requests)))
        await asyncio.sleep(0.3)
        done.set()
        await prober
    return list(statuses), slowest


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--mb", type=float, default=15.7)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder}/crm.db", "HTTP_HOST": "127.0.0.1",
               "HTTP_PORT": str(port), "SLACK_BOT_TOKEN": "xoxb-bench-0000000000-token",
               "SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789", "SLACK_APP_TOKEN": "",
               "SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/", "TELEGRAM_BOT_TOKEN": "",
               "LOG_LEVEL": "WARNING"}
        bot = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, f"{base}/healthz", bot)
            process = psutil.Process(bot.pid)
            before = process.memory_info().rss / 2**20
            started = time.perf_counter()
            statuses, slowest = await flood(f"{base}/slack/events", f"{base}/healthz", args.requests,
                                            int(args.mb * 2**20))
            took = time.perf_counter() - started
            after = process.memory_info().rss / 2**20
        finally:
            bot.terminate()
            _, errors = bot.communicate(timeout=30)
    print(f"{args.requests} unsigned requests of {args.mb} MB to /slack/events: statuses {sorted(set(statuses))}, "
          f"all answered in {took:.2f} s")
    print(f"bot RSS {before:.1f} MB before, {after:.1f} MB after (+{after - before:.1f} MB)")
    print(f"slowest /healthz meanwhile: {slowest * 1000:.1f} ms")
    if b"Traceback" in errors:
        print("the bot logged a traceback:\n" + errors.decode(errors="replace")[-2000:])


if __name__ == "__main__":
    asyncio.run(main())

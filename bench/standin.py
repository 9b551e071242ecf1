"""What the Telegram benches share: the Bot API stand-in as its own process, and a team on it.

The stand-in (tests/e2e/telegram_api.py) runs in its own process, as Telegram is
a server elsewhere, and is driven through its `/_control` API. `set_up_team`
builds a workspace through the real handlers, as the bot's users would.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bot.app import App  # noqa: E402
from fixtures import customers as fake_customers  # noqa: E402
from handlers.messages import Request  # noqa: E402
from tests.e2e.telegram_api import Person  # noqa: E402


class StandInProcess:
    """The stand-in in its own process, driven through its `/_control` API."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "StandInProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.telegram_api", "--port", "0"], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = await asyncio.to_thread(self.process.stdout.readline)
        if not line.startswith("ready "):
            raise RuntimeError(f"stand-in did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{line.split()[1]}"
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    async def reset(self, token: str, chats: list[dict[str, Any]] | None = None, *, latency: float = 0) -> None:
        """A fresh record for the bot with `token`; `chats` are known to it (sending there works);
        every Bot API call answers `latency` seconds late, like a round trip to Telegram."""
        await self._post("reset", {"token": token, "chats": chats or [], "latency": latency})

    async def push(self, updates: list[dict[str, Any]]) -> None:
        await self._post("push", updates)

    async def stats(self) -> dict[str, Any]:
        return await self._get("stats")

    async def sent(self) -> list[dict[str, Any]]:
        """Every message the stand-in accepted, in order: chat_id, text (as shown), at (Unix time)."""
        return await self._get("sent")

    async def _get(self, what: str) -> Any:
        assert self.http is not None
        async with self.http.get(f"{self.base_url}/_control/{what}") as response:
            response.raise_for_status()
            return await response.json()

    async def _post(self, what: str, body: Any) -> None:
        assert self.http is not None
        async with self.http.post(f"{self.base_url}/_control/{what}", json=body) as response:
            response.raise_for_status()

    async def run(self, updates: list[dict[str, Any]], timeout: float = 300) -> float:
        """Offer the updates; seconds from the first one handed out to the last reply."""
        await self.push(updates)
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if stats["replies"] >= len(updates):
                if stats["error_count"]:
                    print(f"  ({stats['error_count']} API errors, e.g. {stats['errors'][:2]})")
                return stats["last_reply"] - stats["first_offered"]
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stats['replies']} of {len(updates)} replies; errors: {stats['errors']}")
            await asyncio.sleep(0.02)


def people(count: int) -> list[Person]:
    return [Person(6_100_000_000 + n, f"Rep{n:02d}", "en", f"bench_rep_{n:02d}") for n in range(count)]


async def say(app: App, person: Person, text: str) -> str:
    """`text` typed by `person` in their private chat with the bot; the bot's answer as plain text."""
    replies = await app.core.handle(Request(
        platform="telegram", user_id=str(person.id), chat_id=str(person.id), user_name=person.first_name,
        is_private=True, space_autocreate=False, language="en", dm_chat_id=str(person.id), text=text))
    return "\n".join(reply.plain_text() for reply in replies)


async def set_up_team(app: App, reps: list[Person], customers: int) -> list[str]:
    """A workspace as a team would have it after a while: members (the first one admin, the rest
    joined with an invite code) and a customer book; the customer names that find one at once."""
    await say(app, reps[0], "/start")
    code = (await say(app, reps[0], "/invite")).split("/join ")[1].split()[0]
    for rep in reps[1:]:
        await say(app, rep, f"/join {code}")
    book = list({c.name: c for c in fake_customers(customers)}.values())
    for n, customer in enumerate(book):
        company = f" company={quoted(customer.company)}" if customer.company else ""
        await say(app, reps[n % len(reps)], f"/add {quoted(customer.name)} 1380013{n:04d}{company}")
    # reps write names as they are; keep the ones a name finds at once (no "which one?")
    return [quoted(c.name) for c in book if (await say(app, reps[0], f"/show {quoted(c.name)}")).startswith("#")]


def quoted(text: str) -> str:
    return f'"{text}"' if " " in text else text

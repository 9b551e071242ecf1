"""SPEC §7: Telegram commands end to end, against a bare python-telegram-bot echo bot in the same run.

The local Bot API stand-in (tests/e2e/telegram_api.py) runs as its own process,
as Telegram is a server elsewhere. Each bot polls it over real HTTP and gets the
same number of messages spread over several private chats; the time runs from
the first update the stand-in hands out to the last reply it receives.

1. the echo bot: an `Application` with one `MessageHandler` echoing text, default
   settings (PTB's examples/echobot.py);
2. crm-bot's `TelegramPlatform` on a fresh SQLite file with a team (one admin,
   reps who joined with an invite code) and a customer book, fed
   `/log <customer> call: …` by every rep.

Targets (issue 13): crm-bot ≥ 0.50× the echo bot's messages per second at 0 ms, ≥ 3× at 50 ms.

Both are measured at each `--latency` (milliseconds the stand-in waits before
answering any call; default 0 and 50). At 0 the stand-in answers as fast as a
local process can, so both bots are bound by their own CPU: the echo bot does
nothing, crm-bot writes every /log to the database (an interaction, the
customer's derived fields, auto tags, the audit log, the redelivery key). At 50
ms, about a round trip from a server to Telegram's data centres, the echo bot
waits for each reply before taking the next update (PTB's default: updates one
at a time), while crm-bot serves chats concurrently, so the figure says more
about that difference than about speed. Both rows are printed; neither is hidden.

    python bench/telegram_throughput.py [--messages 400] [--chats 8] [--customers 60] [--latency 0 50]
                                        [--paced] [--adapter-alone]

`--paced` keeps Telegram's flood limits in crm-bot's rate limiter (30 messages/s
overall), which caps it at Telegram's own limit rather than measuring the bot;
by default the limiter only honours 429 `retry_after`, like the echo bot.
`--adapter-alone` also measures crm-bot's adapter with the core stubbed out.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telegram import Update  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

from bot.app import App  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.telegram import TelegramPlatform, api_urls  # noqa: E402
from handlers.messages import Reply, Request  # noqa: E402
from tests.e2e.telegram_api import Person, TelegramStandIn  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from standin import StandInProcess, people, set_up_team  # noqa: E402

#: Issue 13's targets for crm-bot / echo bot, by the stand-in's latency in ms (SPEC §7's 0.70 was set
#: against a bot that does nothing; the issue sets them from measured floors). Other latencies: 0.50.
TARGETS = {0: 0.50, 50: 3.0}
ECHO_TOKEN = "7100001:AAH-echo-bench-token_0123456789abcdef"
CRM_TOKEN = "7200002:AAH-crm-bench-token_0123456789abcdefg"
WARMUP = 20


def messages(builder: TelegramStandIn, senders: list[Person], total: int, text: Callable[[int], str]) -> list[dict]:
    return [builder.message(senders[n % len(senders)], text(n)) for n in range(total)]


async def measure(
    name: str, stand_in: StandInProcess, token: str, start: Callable[[], Awaitable[Callable[[], Awaitable[None]]]],
    warmup: list[dict], updates: list[dict], latency: float, parsed: Callable[[], int] | None = None,
) -> float:
    await stand_in.reset(token, latency=latency)
    stop = await start()
    try:
        await stand_in.run(warmup)
        await stand_in.reset(token, latency=latency)
        parsed_before = parsed() if parsed else 0
        seconds = await stand_in.run(updates)
        handed_out = (await stand_in.stats())["handed_out"]
        parsed_during = parsed() - parsed_before if parsed else 0
    finally:
        await stop()
    rate = len(updates) / seconds
    hand_outs = f"   hand-outs per update: {handed_out / len(updates):.2f} sent by getUpdates"
    if parsed:
        hand_outs += f", {parsed_during / len(updates):.2f} parsed"
    print(f"  {name:<9} {len(updates)} messages in {seconds:6.2f} s = {rate:7.1f} msgs/s{hand_outs}")
    return rate


# --- 1. the bare echo bot -------------------------------------------------------------------------------

async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(update.message.text or "")


def echo_bot(base_url: str) -> Callable[[], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start() -> Callable[[], Awaitable[None]]:
        bot_url, file_url = api_urls(base_url)  # type: ignore[misc]
        application: Application = ApplicationBuilder().token(ECHO_TOKEN).base_url(bot_url) \
            .base_file_url(file_url).build()
        application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        await application.initialize()
        assert application.updater is not None
        await application.updater.start_polling()
        await application.start()

        async def stop() -> None:
            assert application.updater is not None
            await application.updater.stop()
            await application.stop()
            await application.shutdown()

        return stop

    return start


# --- 2. crm-bot ------------------------------------------------------------------------------------------

class CrmBot:
    """Starts crm-bot's Telegram adapter for `measure`; `parsed()` counts the updates its poller parsed."""

    def __init__(self, app: App, options: dict[str, Any], *, core_stubbed: bool = False) -> None:
        self.app, self.options, self.core_stubbed = app, options, core_stubbed
        self.platform: TelegramPlatform | None = None

    def parsed(self) -> int:
        return self.platform.poller.parsed if self.platform is not None and self.platform.poller else 0

    async def __call__(self) -> Callable[[], Awaitable[None]]:
        platform = self.platform = TelegramPlatform(self.app, **self.options)
        if self.core_stubbed:  # the adapter's own cost: every request answered at once, no database
            async def handle(request: Request) -> list[Reply]:
                return [Reply(text=f"Logged: {request.text}")]

            async def answered(update_key: str, replies: list[Reply] | None = None) -> bool:
                return True

            platform.core = SimpleNamespace(handle=handle, answered=answered)  # type: ignore[assignment]
        await platform.start()
        return platform.stop


async def main(args: argparse.Namespace) -> int:
    builder = TelegramStandIn()  # only builds update payloads here
    senders = people(args.chats)
    verdicts = []
    async with StandInProcess() as stand_in:
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(_env_file=None, database_url=f"sqlite:///{folder}/bench.db",
                                telegram_bot_token=CRM_TOKEN, telegram_api_base_url=stand_in.base_url,
                                default_locale="en")
            app = App.build(settings, clock=lambda: datetime.now(timezone.utc))
            await app.db.upgrade()
            names = await set_up_team(app, senders, args.customers)
            print(f"crm-bot has {len(senders)} reps and {len(names)} customers they find by name")
            sent = 0

            def log(n: int) -> str:
                return f"/log {names[(n * 7) % len(names)]} call: talked about order {n}, next steps agreed"

            def logs(count: int) -> list[dict]:
                nonlocal sent
                batch = messages(builder, senders, count, lambda n: log(sent + n))
                sent += count
                return batch

            options: dict[str, Any] = {} if args.paced else {"overall_max_rate": 0, "group_max_rate": 0}
            for milliseconds in args.latency:
                latency = milliseconds / 1000
                print(f"API latency {milliseconds:g} ms:")
                echo_rate = await measure(
                    "echo bot", stand_in, ECHO_TOKEN, echo_bot(stand_in.base_url),
                    messages(builder, senders, WARMUP, lambda n: f"warm up {n}"),
                    messages(builder, senders, args.messages, lambda n: f"hello number {n}"), latency)
                crm = CrmBot(app, options)
                crm_rate = await measure("crm-bot", stand_in, CRM_TOKEN, crm, logs(WARMUP), logs(args.messages),
                                         latency, crm.parsed)
                if args.adapter_alone:
                    alone = CrmBot(app, options, core_stubbed=True)
                    await measure("adapter", stand_in, CRM_TOKEN, alone, logs(WARMUP), logs(args.messages), latency,
                                  alone.parsed)
                ratio = crm_rate / echo_rate
                target = TARGETS.get(milliseconds, TARGETS[0])
                verdicts.append(ratio >= target)
                print(f"  ratio     {ratio:.2f} (target ≥ {target:.2f}) {'PASS' if verdicts[-1] else 'FAIL'}")
            await app.db.dispose()
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--chats", type=int, default=8)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--latency", type=float, nargs="+", default=[0, 50], metavar="MS",
                        help="milliseconds the stand-in waits before answering each call (default: 0 50)")
    parser.add_argument("--paced", action="store_true", help="keep Telegram's flood limits in crm-bot's limiter")
    parser.add_argument("--adapter-alone", action="store_true",
                        help="also measure crm-bot's adapter with the core stubbed out (where the time goes)")
    sys.exit(asyncio.run(main(parser.parse_args())))

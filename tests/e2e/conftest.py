"""End-to-end fixtures: the real bot process parts against local stand-ins of the platform APIs.

The database (`db`, SQLite file and PostgreSQL), `clock` and `services` come from
tests/conftest.py. Each platform has its own section below.
"""
from __future__ import annotations

import socket
from typing import Any, Callable

import pytest

from bot.app import App
from bot.config import Settings
from bot.telegram import TelegramPlatform
from bot.web import WebServer
from handlers.context import Services
from handlers.core import Core
from storage.db import Database
from tests.e2e.telegram_api import MAX_CALLBACK_DATA, TelegramStandIn


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ==================================================================================================
# Telegram: a TelegramPlatform (the real python-telegram-bot Application) polling the stand-in
# ==================================================================================================

@pytest.fixture
async def telegram_api():
    api = await TelegramStandIn().start()
    yield api
    await api.stop()


class RecordedMarks:
    """reminders.delivery.WireMarks that record each mark with `posted()`, the number of posting
    calls the platform stand-in had seen by then."""

    def __init__(self, posted: Callable[[], int]) -> None:
        self.posted = posted
        self.events: list[tuple[str, int]] = []

    async def on_wire(self) -> None:
        self.events.append(("on wire", self.posted()))

    async def not_on_wire(self) -> None:
        self.events.append(("failed", self.posted()))


class TelegramRig:
    """Starts TelegramPlatforms against the stand-in on the test's database; stops them all at the end."""

    def __init__(self, api: TelegramStandIn, db: Database, services: Services) -> None:
        self.api, self.db, self.services = api, db, services
        self.running: list[TelegramPlatform] = []
        self.servers: list[WebServer] = []

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "telegram_bot_token": self.api.token, "telegram_api_base_url": self.api.base_url,
            "default_locale": "en", "default_timezone": "Asia/Shanghai", "http_host": "127.0.0.1",
            "http_port": free_port(), **overrides,
        }
        return Settings(_env_file=None, **values)

    def platform(self, settings: Settings | None = None, **options: Any) -> TelegramPlatform:
        app = App(settings or self.settings(), self.db, self.services, Core(self.db, self.services))
        options.setdefault("poll_timeout", 2)
        return TelegramPlatform(app, **options)

    async def start(self, settings: Settings | None = None, **options: Any) -> TelegramPlatform:
        """A platform serving by long polling, or by webhook on its own HTTP server if the settings say so."""
        platform = self.platform(settings, **options)
        if platform.webhook_url:
            server = WebServer(self.db, platform.app.settings.http_host, platform.app.settings.http_port)
            platform.attach(server)
            await server.start()
            self.servers.append(server)
        await platform.start()
        self.running.append(platform)
        return platform

    async def stop(self, platform: TelegramPlatform) -> None:
        self.running.remove(platform)
        await platform.stop()

    async def close(self) -> None:
        for platform in reversed(self.running):
            await platform.stop()
        for server in self.servers:
            await server.stop()

    def check_every_keyboard(self) -> None:
        """What every test checks of all it saw: callback data within Telegram's 64 bytes, HTML Telegram parsed."""
        for sent in self.api.outbox:
            for button in sent.buttons:
                assert 1 <= len(button["callback_data"].encode()) <= MAX_CALLBACK_DATA, button
        refused = [c.error.description for c in self.api.calls
                   if c.error is not None and ("BUTTON_DATA" in c.error.description or "parse entities" in
                                               c.error.description or "too long" in c.error.description)]
        assert not refused, refused


@pytest.fixture
async def telegram_rig(telegram_api: TelegramStandIn, db: Database, services: Services):
    rig = TelegramRig(telegram_api, db, services)
    yield rig
    await rig.close()
    rig.check_every_keyboard()


@pytest.fixture
async def telegram(telegram_rig: TelegramRig) -> TelegramPlatform:
    """A running Telegram bot (long polling) on the test's database."""
    return await telegram_rig.start()


# --- Slack ---------------------------------------------------------------------------------------
# The real Bolt app (a SlackPlatform) behind the shared HTTP server — or on a Socket Mode websocket —
# calling the Web API stand-in. Every answer of /slack/events is timed: each test checks they all came
# back within Slack's 3 seconds, that Slack refused none of the blocks, views or modals the bot sent,
# and that every message with blocks carried a plain-text fallback.

import aiohttp  # noqa: E402

from bot.slack import SlackPlatform  # noqa: E402
from tests.e2e.slack_api import (  # noqa: E402
    BOT_TOKEN,
    SIGNING_SECRET,
    Answer,
    SlackApiStandIn,
    SlackPerson,
    SlackWire,
)

SLACK_ACK_LIMIT = 3.0
#: Every timed answer of the session; the slowest is printed when each rig closes.
SLACK_ANSWERS: list[Answer] = []


@pytest.fixture
async def slack_api():
    api = await SlackApiStandIn().start()
    yield api
    await api.stop()


class SlackRig:
    """Starts SlackPlatforms against the stand-in on the test's database; stops them all at the end."""

    def __init__(self, api: SlackApiStandIn, db: Database, services: Services) -> None:
        self.api, self.db, self.services = api, db, services
        self.platforms: list[SlackPlatform] = []
        self.servers: list[WebServer] = []
        self.wire: SlackWire | None = None
        self._http: aiohttp.ClientSession | None = None

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "slack_api_url": self.api.base_url,
            "default_locale": "en", "default_timezone": "Asia/Shanghai", "http_host": "127.0.0.1",
            "http_port": free_port(), **overrides,
        }
        return Settings(_env_file=None, **values)

    async def start(self, settings: Settings | None = None, **options: Any) -> SlackPlatform:
        """A platform in HTTP mode on its own shared server (Socket Mode if the settings have an app token)."""
        settings = settings or self.settings()
        platform = SlackPlatform(App(settings, self.db, self.services, Core(self.db, self.services)), **options)
        if platform.socket_token is None:
            server = WebServer(self.db, settings.http_host, settings.http_port)
            platform.attach(server)
            server.platforms.append(platform.name)
            await server.start()
            self.servers.append(server)
            self._http = self._http or aiohttp.ClientSession()
            self.wire = SlackWire(f"http://{settings.http_host}:{settings.http_port}/slack/events", self._http)
        await platform.start()
        self.platforms.append(platform)
        return platform

    async def stop(self, platform: SlackPlatform) -> None:
        self.platforms.remove(platform)
        await platform.stop()

    def person(self, user: str, name: str, **options: Any) -> SlackPerson:
        assert self.wire is not None, "start a platform in HTTP mode first"
        return SlackPerson(self.api, self.wire, self.settle, user=user, name=name, **options)

    async def settle(self) -> None:
        for platform in self.platforms:
            await platform.drain()

    async def close(self) -> None:
        for platform in reversed(self.platforms):
            await platform.stop()
        for server in self.servers:
            await server.stop()
        if self._http is not None:
            await self._http.close()

    def check(self) -> None:
        answers = self.wire.answers if self.wire else []
        SLACK_ANSWERS.extend(answers)
        assert all(a.seconds < SLACK_ACK_LIMIT for a in answers), [(a.what, a.seconds) for a in answers]
        refused = [(c.method, c.error, c.problems) for c in self.api.calls
                   if c.error in ("invalid_blocks", "invalid_arguments", "invalid_trigger_id", "expired_trigger_id")]
        assert not refused, refused
        no_fallback = [c.method for c in self.api.calls_to("chat.postMessage", "chat.postEphemeral", "chat.update")
                       if c.params.get("blocks") and not c.params.get("text")]
        assert not no_fallback, no_fallback
        if SLACK_ANSWERS:
            slowest = max(SLACK_ANSWERS, key=lambda a: a.seconds)
            print(f"\nslowest Slack answer so far: {slowest.seconds * 1000:.1f} ms ({slowest.what})")


@pytest.fixture
async def slack_rig(slack_api: SlackApiStandIn, db: Database, services: Services):
    rig = SlackRig(slack_api, db, services)
    yield rig
    await rig.close()
    rig.check()


@pytest.fixture
async def slack(slack_rig: SlackRig) -> SlackPlatform:
    """A running Slack bot (HTTP mode) on the test's database."""
    return await slack_rig.start()

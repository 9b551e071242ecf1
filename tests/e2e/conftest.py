"""End-to-end fixtures: the real bot process parts against local stand-ins of the platform APIs.

The database (`db`, SQLite file and PostgreSQL), `clock` and `services` come from
tests/conftest.py. Each platform has its own section below.
"""
from __future__ import annotations

import socket
from typing import Any

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

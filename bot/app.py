"""The composition root: storage, handlers, scheduler and adapters on one asyncio loop."""
from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from bot import logs
from bot.config import Settings
from bot.console import Console
from handlers.context import Clock, Services
from handlers.core import Core
from reminders.delivery import Sender
from reminders.scheduler import Scheduler
from storage import search_changes
from storage.db import Database
from storage.search import CustomerSearch

if TYPE_CHECKING:
    from bot.web import WebServer

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Platform(Protocol):
    """One chat platform: an adapter serving requests and a sender for deliveries."""

    name: str
    sender: Sender

    def attach(self, web: WebServer) -> None:
        """Add HTTP routes (webhooks, events) to the shared server, if the platform needs any."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class App:
    settings: Settings
    db: Database
    services: Services
    core: Core

    @classmethod
    def build(cls, settings: Settings, clock: Clock = utcnow) -> "App":
        db = Database(settings.database_url)
        logs.protect(db.url.password if isinstance(db.url.password, str) else None)
        services = Services(
            clock=clock, search=CustomerSearch(clock),
            default_timezone=settings.default_timezone, default_locale=settings.default_locale,
        )
        return cls(settings, db, services, Core(db, services))

    def platforms(self) -> list[Platform]:
        """Every platform whose token is set (each platform's libraries load here, only when it has a token:
        the console starts without python-telegram-bot or Slack's)."""
        found: list[Platform] = []
        if self.settings.has_telegram:
            from bot.telegram import TelegramPlatform

            found.append(TelegramPlatform(self))
        if self.settings.has_slack:
            from bot.slack import SlackPlatform

            found.append(SlackPlatform(self))
        return found

    async def run(self) -> None:
        """Apply migrations, then serve every platform that has a token, else the console."""
        platforms = self.platforms()
        if not platforms:
            quiet_logs_for_the_terminal()
        await self.db.upgrade()
        changes = None if self.db.is_sqlite else await search_changes.follow(self.db.url, self.services.search)
        try:
            if not platforms:
                await self.console()
                return
            await self.serve(platforms)
        finally:
            if changes is not None:
                await changes.stop()
            await self.db.dispose()

    async def serve(self, platforms: list[Platform]) -> None:
        from bot.web import WebServer  # aiohttp's server: not loaded for the console

        web = WebServer(self.db, self.settings.http_host, self.settings.http_port, clock=self.services.clock,
                        metrics_address=self.settings.metrics_address)
        for platform in platforms:
            platform.attach(web)
            web.platforms.append(platform.name)
        await web.start()
        started: list[Platform] = []
        scheduler = self.scheduler({platform.name: platform.sender for platform in platforms})
        try:
            for platform in platforms:
                await platform.start()
                started.append(platform)
            await scheduler.start()
            await _until_stopped()
        finally:
            await scheduler.stop()
            for platform in reversed(started):
                await platform.stop()
            await web.stop()

    async def console(self, user: str | None = None) -> None:
        """The terminal chat; `user` is who is typing (`crm-bot console --as NAME`)."""
        console = Console(self.core, default_locale=self.settings.default_locale, user=user)
        scheduler = self.scheduler({console.sender.platform: console.sender})
        await scheduler.start()
        try:
            await console.run()
        finally:
            await scheduler.stop()

    def scheduler(self, senders: dict[str, Sender]) -> Scheduler:
        """Reminders, sweeps and digests, delivered through these platforms' senders."""
        return Scheduler(self.db, self.services, senders, poll_seconds=self.settings.reminder_poll_seconds)


def quiet_logs_for_the_terminal() -> None:
    """In the terminal chat, routine logs (migrations, scheduler polls) would interleave with the
    replies: show warnings and errors only, unless LOG_LEVEL=DEBUG asks for everything."""
    root = logging.getLogger()
    if root.level > logging.DEBUG:
        root.setLevel(max(root.level, logging.WARNING))


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")

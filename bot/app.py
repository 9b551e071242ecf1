"""The composition root: storage, handlers, scheduler and adapters on one asyncio loop."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from bot.config import Settings
from handlers.context import Clock, Services
from handlers.core import Core
from storage.db import Database
from storage.search import CustomerSearch

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class App:
    settings: Settings
    db: Database
    services: Services
    core: Core

    @classmethod
    def build(cls, settings: Settings, clock: Clock = utcnow) -> "App":
        db = Database(settings.database_url)
        services = Services(
            clock=clock, search=CustomerSearch(clock),
            default_timezone=settings.default_timezone, default_locale=settings.default_locale,
        )
        return cls(settings, db, services, Core(db, services))

    async def run(self) -> None:
        """Apply migrations, then serve every platform that has a token, else the console."""
        await self.db.upgrade()
        try:
            await self.console()
        finally:
            await self.db.dispose()

    async def console(self) -> None:
        from bot.console import Console

        await Console(self.core, default_locale=self.settings.default_locale).run()

"""The bot's one HTTP server: /healthz, Slack's /slack/events, Telegram's webhook.

Adapters add their routes before `start()`; everything shares HTTP_HOST:HTTP_PORT.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from sqlalchemy import text

from storage.db import Database

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    def __init__(self, db: Database, host: str, port: int) -> None:
        self.db = db
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=16 * 1024 * 1024)
        self.app.router.add_get("/healthz", self.health)
        self.platforms: list[str] = []
        self._runner: web.AppRunner | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)

    async def health(self, request: web.Request) -> web.Response:
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - health reports any database failure
            return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
        return web.json_response({"status": "ok", "platforms": self.platforms})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("HTTP server on %s:%s (%s)", self.host, self.port, ", ".join(self.platforms) or "health only")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

"""The bot's one HTTP server: /healthz, Slack's /slack/events (and with OAuth /slack/install and
/slack/oauth_redirect), Telegram's webhook.

Adapters add their routes before `start()`; everything shares HTTP_HOST:HTTP_PORT.
No request body is read past `MAX_BODY` (what Slack and Telegram send is far
smaller). /healthz answers anyone, so it says a status and the platforms served,
nothing else: why the database failed goes to the log.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from sqlalchemy import text

from storage.db import Database

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024


class WebServer:
    def __init__(self, db: Database, host: str, port: int) -> None:
        self.db = db
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=MAX_BODY)
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
            log.warning("health check: the database does not answer (%s)", type(exc).__name__)
            return web.json_response({"status": "error"}, status=503)
        return web.json_response({"status": "ok", "platforms": self.platforms})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("HTTP server on %s:%s (%s)", self.host, self.port, ", ".join(self.platforms) or "health only")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

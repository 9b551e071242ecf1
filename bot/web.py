"""The bot's HTTP server: Slack's /slack/events (and with OAuth /slack/install and
/slack/oauth_redirect), Telegram's webhook, /healthz and /metrics.

Adapters add their routes before `start()`; they share HTTP_HOST:HTTP_PORT. /healthz
and /metrics are there too, unless METRICS_PORT is set: then they are served on
METRICS_HOST:METRICS_PORT alone, so the public port carries platform traffic only
and the figures stay on a private address. No request body is read past `MAX_BODY`
(what Slack and Telegram send is far smaller). /healthz says a status and the
platforms served, nothing else: why the database failed goes to the log.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from handlers import metrics
from handlers.context import Clock
from storage import schedule
from storage.db import Database

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024


class WebServer:
    def __init__(self, db: Database, host: str, port: int, *, clock: Clock = lambda: datetime.now(timezone.utc),
                 metrics_address: tuple[str, int] | None = None) -> None:
        self.db, self.clock = db, clock
        self.host, self.port = host, port
        self.app = web.Application(client_max_size=MAX_BODY)
        self.metrics_address = metrics_address
        self.operations = web.Application(client_max_size=MAX_BODY) if metrics_address else self.app
        self.operations.router.add_get("/healthz", self.health)
        self.operations.router.add_get("/metrics", self.metrics)
        self.platforms: list[str] = []
        self._runners: list[web.AppRunner] = []

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

    async def metrics(self, request: web.Request) -> web.Response:
        """The figures (handlers.metrics), the due-not-sent gauge read from the database now."""
        try:
            async with self.db.transaction() as session:
                metrics.REMINDERS_DUE.set(await schedule.count_waiting(session, self.clock()))
        except Exception as exc:  # noqa: BLE001 - the other figures are still worth a scrape
            log.warning("metrics: the database does not answer (%s); the due gauge is stale", type(exc).__name__)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        await self._serve(self.app, self.host, self.port)
        log.info("HTTP server on %s:%s (%s)", self.host, self.port, ", ".join(self.platforms) or "health only")
        if self.metrics_address is not None:
            await self._serve(self.operations, *self.metrics_address)
            log.info("/metrics and /healthz on %s:%s", *self.metrics_address)

    async def _serve(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port).start()

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

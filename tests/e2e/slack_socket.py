"""A local stand-in of Slack's Socket Mode: the websocket apps.connections.open points to.

On connect it says `hello`, as Slack does; `send` pushes an envelope
(`events_api`, `slash_commands`, `interactive`) shaped like Slack's and waits
for the app's ack — a message carrying the same `envelope_id`, with the
response payload if the app sent one — and how long the ack took.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.e2e.slack_api import APP_ID


@dataclass
class Ack:
    envelope_id: str
    payload: dict[str, Any] | None
    seconds: float


class SocketModeStandIn:
    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self.connected = asyncio.Event()
        self._socket: web.WebSocketResponse | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> SocketModeStandIn:
        app = web.Application()
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"ws://127.0.0.1:{self._runner.addresses[0][1]}/link/?ticket={uuid.uuid4()}&app_id={APP_ID}"
        return self

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        self.connections += 1
        await socket.send_json({"type": "hello", "num_connections": 1,
                                "debug_info": {"host": "applink-stand-in", "build_number": 1,
                                               "approximate_connection_time": 18060},
                                "connection_info": {"app_id": APP_ID}})
        self.connected.set()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            waiting = self._waiting.pop(data.get("envelope_id", ""), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(data)
        self.connected.clear()
        return socket

    async def send(self, kind: str, payload: dict[str, Any], *, timeout: float = 3.0) -> Ack:
        """Push one envelope and wait for its ack (Slack gives up after 3 seconds)."""
        await asyncio.wait_for(self.connected.wait(), timeout)
        assert self._socket is not None
        envelope_id = str(uuid.uuid4())
        answered: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[envelope_id] = answered
        started = time.perf_counter()
        await self._socket.send_json({
            "envelope_id": envelope_id, "payload": payload, "type": kind,
            "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": "",
        })
        ack = await asyncio.wait_for(answered, timeout)
        return Ack(envelope_id, ack.get("payload"), time.perf_counter() - started)

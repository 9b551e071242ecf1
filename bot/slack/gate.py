"""What POST /slack/events checks on the raw bytes, before anything parses them.

In order: the size (Slack's payloads are far under `MAX_BODY`; a larger one is
refused from its Content-Length, or as soon as the bytes read pass the limit,
so nobody makes the bot buffer megabytes), the timestamp (digits, within five
minutes), the v0 HMAC-SHA256 signature over those exact bytes, and only then
that the body is what Slack sends (UTF-8; a JSON object, or a form whose
`payload`, if any, is one). Whatever fails gets a 4xx answer and a DEBUG line,
never a 500 or a traceback; Bolt then checks the signature again and does the rest.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_AGE = 5 * 60
_CHUNK = 64 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.reason)


async def checked_body(request: web.Request, secret: str, *, now: Callable[[], float] = time.time) -> str:
    """The request's body, once it passed every check; `Refused` says why it did not."""
    try:
        body = await _read(request)
        _check_signature(request, body, secret, now())
        text = body.decode("utf-8")
        _check_shape(request.content_type, text)
    except Refused as refused:
        log.debug("refused a request to %s: %s %s", request.path, refused.status, refused.reason)
        raise
    except (UnicodeDecodeError, ValueError):
        log.debug("refused a request to %s: not what Slack sends", request.path)
        raise Refused(400, "malformed request") from None
    return text


async def _read(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_BODY:
        raise Refused(413, "request too large")
    body = bytearray()
    while chunk := await request.content.read(_CHUNK):
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, "request too large")
    return bytes(body)


def _check_signature(request: web.Request, body: bytes, secret: str, now: float) -> None:
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        raise Refused(401, "unsigned request")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise Refused(400, "malformed timestamp")
    if abs(now - int(timestamp)) > MAX_AGE:
        raise Refused(401, "stale request")
    if not SignatureVerifier(secret).is_valid(body, timestamp, signature):
        raise Refused(401, "invalid signature")


#: Per payload type, the text Bolt reads before any listener could look (`body["actions"][0]["action_id"]` …):
#: a payload without it is not one Slack sends, and would fail inside Bolt.
_REQUIRED: dict[str, tuple[object, ...]] = {
    "event_callback": ("event", "type"),
    "block_actions": ("actions", 0, "action_id"),
    "view_submission": ("view", "callback_id"),
    "view_closed": ("view", "callback_id"),
    "shortcut": ("callback_id",),
    "message_action": ("callback_id",),
}


def _check_shape(content_type: str, text: str) -> None:
    """A JSON object (events), or a form (commands; interactions, whose `payload` is a JSON object), with
    what its type needs."""
    if content_type == "application/json":
        body = json.loads(text)
    else:
        payload = parse_qs(text, strict_parsing=bool(text)).get("payload")
        if payload is None:
            return
        body = json.loads(payload[0])
    if not isinstance(body, dict):
        raise ValueError("not an object")
    part: object = body
    for step in _REQUIRED.get(str(body.get("type")), ()):
        holds = isinstance(part, list) and isinstance(step, int) and len(part) > step \
            or isinstance(part, dict) and step in part
        part = part[step] if holds else None  # type: ignore[index]
    if _REQUIRED.get(str(body.get("type"))) and not (isinstance(part, str) and part):
        raise ValueError(f"a {body.get('type')} payload without what it needs")

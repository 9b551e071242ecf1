"""Logs never hold a secret, and hold customer data only at DEBUG.

Each platform hands its tokens and secrets to `protect()` as it starts (the
Telegram bot token and webhook secret, the Slack bot token, signing secret and
app token), and the composition root the database password. A log record
factory then writes `[secret]` in their place in every record's message and
traceback, whichever logger, handler or level emits it (a Bot API URL carries
the token; python-telegram-bot's DEBUG lines carry the webhook secret).

`protect()` also keeps the third-party loggers that print whole requests and
their bodies (python-telegram-bot, httpx/httpcore, Slack's SDK and Bolt,
aiosqlite, asyncpg, aiohttp) at INFO or above, so `LOG_LEVEL=DEBUG` shows the
bot's own debugging lines, not every payload. The bot's own INFO and higher
lines name ids, never what a customer record holds.

`LOG_FORMAT=json` writes each record as one JSON object on one line (`JsonLines`),
so a log shipper reads a multi-line traceback as part of its record.
"""
from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

REDACTED = "[secret]"
#: Shorter values are not secrets worth the name (and would blank ordinary words).
MIN_SECRET = 8
#: Loggers that dump requests, bodies or statements at DEBUG.
CHATTY = ("telegram", "httpx", "httpcore", "slack_bolt", "slack_sdk", "aiosqlite", "asyncpg", "aiohttp")

_secrets: set[str] = set()
_installed = False


def protect(*secrets: str | None) -> None:
    """Keep these values out of every log line from now on, and the chatty libraries quiet."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET:
            _secrets.update({secret, quote(secret, safe="")})
    for name in CHATTY:
        library = logging.getLogger(name)
        library.setLevel(max(logging.INFO, library.level))
    _install()


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: a quoted form contains no shorter one
        text = text.replace(secret, REDACTED)
    return text


def _install() -> None:
    global _installed
    if _installed:
        return
    made = logging.getLogRecordFactory()

    def scrubbed(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(scrubbed)
    _installed = True


def _scrub(record: logging.LogRecord) -> None:
    """The record's message and traceback with the secrets written out, formatted once here."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed log call: logging reports it when it formats the record
        return
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class JsonLines(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, and the
    exception's traceback (or stack) when the record has one; already scrubbed of secrets."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False)

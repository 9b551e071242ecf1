"""The holes of the attack report (issue 12) at the platforms' doors, each with a test that failed before the fix:
/slack/events checks size, timestamp and signature on the raw bytes (2); secrets never reach a log, customer data
only at DEBUG (3); Slack Connect guests act in their own team (6); malformed bodies and payloads get a 4xx or are
ignored, never a 500 or an apology, and link previews are off (10); /healthz says a status only (11).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import select

from bot import logs
from bot.web import WebServer
from handlers.i18n import t
from handlers.registry import _BY_ALIAS, COMMANDS
from storage.db import Database
from storage.models import Identity, Member, Reminder, Workspace
from tests.e2e.conftest import free_port
from tests.e2e.slack_api import BOT_TOKEN, SIGNING_SECRET, signature
from tests.e2e.telegram_api import TelegramStandIn
from tests.e2e.test_slack import count, opened, text_of
from tests.e2e.test_telegram import ALICE, one, scalar

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


# --- 2. /slack/events: size, timestamp, signature on the raw bytes, then the shape ---------------------------------

@SQLITE_ONLY
async def test_slack_requests_are_checked_on_their_raw_bytes_and_malformed_ones_get_a_4xx(
    slack, slack_rig, slack_api, db, caplog
) -> None:
    wire = slack_rig.wire
    huge = b"x" * (15 * 1024 * 1024 + 700 * 1024)  # 15.7 MB, unsigned
    started = time.perf_counter()
    async with slack_rig._http.post(wire.url, data=huge, headers={"Content-Type": "application/json"}) as answer:
        assert answer.status == 413
    assert time.perf_counter() - started < 2

    async def chunks():  # no Content-Length: refused once the bytes read pass the limit
        for _ in range(64):
            yield b"y" * 65536

    async with slack_rig._http.post(wire.url, data=chunks(), headers={"Content-Type": "application/json"}) as answer:
        assert answer.status == 413

    now = int(time.time())
    bad_timestamp = await wire.post(b"{}", "application/json", what="timestamp",
                                    headers={"X-Slack-Request-Timestamp": "soon",
                                             "X-Slack-Signature": signature(b"{}", now)})
    assert bad_timestamp.status == 400
    for body, content_type in ((b'{"type": ', "application/json"), (b"[1, 2]", "application/json"),
                               (b"\xff\xfe{}", "application/json"),
                               (urlencode({"payload": "[1]"}).encode(), "application/x-www-form-urlencoded"),
                               (urlencode({"payload": "{not json"}).encode(), "application/x-www-form-urlencoded")):
        signed = await wire.post(body, content_type, what="malformed")  # signed with the right secret
        assert signed.status == 400, body
    forged = await wire.post(b'{"type": "event_callback"}', "application/json", what="forged", secret="nope")
    assert forged.status == 401
    await slack_rig.settle()
    assert errors_logged(caplog) == [] and "Traceback" not in caplog.text
    assert slack_api.calls == [] and await count(db, Workspace) == 0


# --- 3. logs ------------------------------------------------------------------------------------------------------

async def test_no_secret_reaches_a_log_at_any_level_and_customer_data_only_debug(
    telegram_rig, telegram_api: TelegramStandIn, slack_rig, db, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    webhook_secret = "Webhook-Secret_0123456789abcdef"
    bot = await telegram_rig.start(telegram_rig.settings(http_port=port, telegram_webhook_url=url,
                                                         telegram_webhook_secret=webhook_secret))
    slack = await slack_rig.start()
    for library in logs.CHATTY:  # quiet by default; an operator who turns one up still sees no secret
        assert logging.getLogger(library).level >= logging.INFO, library
        logging.getLogger(library).setLevel(logging.DEBUG)
    try:
        assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, "/start")) == 200
        phone, name = "13977778888", "Quincy Vantablack"
        assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, f'/add "{name}" {phone}')) == 200

        async def crash(ctx: Any, args: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setitem(_BY_ALIAS, "show", dataclasses.replace(COMMANDS["show"], func=crash))
        assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, f"/show {name} {phone}")) == 200
        alice = slack_rig.person("U0ALICE01", "Alice")
        await alice.command(f'add "{name} Two" {phone}')
        logging.getLogger("telegram.ext").debug("request to %s/bot%s/getMe", "http://x", telegram_api.token)
        try:
            raise ValueError(f"token {BOT_TOKEN} in an exception")
        except ValueError:
            logging.getLogger("slack_sdk").exception("failed")
    finally:
        for library in logs.CHATTY:
            logging.getLogger(library).setLevel(logging.INFO)
    assert slack.signing_secret == SIGNING_SECRET
    secrets = (telegram_api.token, telegram_api.token.split(":")[1], webhook_secret, BOT_TOKEN, SIGNING_SECRET)
    written = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}\n{r.stack_info or ''}" for r in caplog.records)
    assert "[secret]" in written  # they were there to hide
    for secret in secrets:
        assert secret not in written and secret not in caplog.text, secret
    above_debug = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records if r.levelno > logging.DEBUG)
    assert "handler failed" in above_debug  # the crash is logged, without what the command said
    assert phone not in above_debug and "Quincy" not in above_debug and "Vantablack" not in above_debug


# --- 6. Slack Connect: the acting user's own team --------------------------------------------------------------------

@SQLITE_ONLY
async def test_a_slack_connect_guest_never_acts_in_the_host_book(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" 13800138000')
    card = alice.last()
    await alice.command("add")
    view = opened(slack_api)
    guest = slack_rig.person("U0GUEST01", "Olga", team="T2")  # from another organisation, in a shared channel
    submission = guest.submission(view, {"name": "Planted Lead"})
    submission["team"] = {"id": "T1", "domain": "team-t1"}  # the host, as Slack sends it in a shared channel
    submission["view"]["app_installed_team_id"] = "T1"
    answer = await slack_rig.wire.interaction(submission)
    await slack_rig.settle()
    assert answer.status == 200
    press = copy.deepcopy(card)
    await guest.press("Log", press)
    await slack_rig.settle()
    async with db.transaction() as session:
        host = await session.scalar(select(Workspace.id).where(Workspace.name == "team-t1"))
        in_host = set(await session.scalars(select(Member.name).where(Member.workspace_id == host)))
        guest_books = set(await session.scalars(select(Identity.workspace_id).where(Identity.external_id == "U0GUEST01")))
    assert in_host == {"Alice"} and host not in guest_books
    await alice.command("find planted")
    assert "No customers match" in text_of(alice.last()) and "Planted" not in text_of(alice.last())


# --- 10. malformed input: 4xx or ignored, never a 500 or "something went wrong" ---------------------------------------

@SQLITE_ONLY
async def test_malformed_webhook_bodies_and_payloads_are_refused_quietly(
    telegram_rig, telegram_api: TelegramStandIn, slack, slack_rig, slack_api, db, caplog
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    bot = await telegram_rig.start(telegram_rig.settings(http_port=port, telegram_webhook_url=url,
                                                         telegram_webhook_secret="s3cret-Token_1"))
    headers = {"X-Telegram-Bot-Api-Secret-Token": bot.webhook_secret, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for body in (b"[1, 2, 3]", b'"text"', b"not json", b'{"update_id": "x"}', b"{}",
                     b'{"update_id": 1, "message": "x"}', b'{"update_id": 2, "message": {"x": 1}}'):
            async with http.post(url, data=body, headers=headers) as answer:
                assert answer.status == 400, body

    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" 13800138000')
    card = alice.last()
    before = len(slack_api.calls)
    for broken in ({"user": None}, {"actions": None}, {"actions": []}, {"actions": [{"value": None}]},
                   {"actions": [{"action_id": "crm.0", "value": 7}]}, {"user": {"name": "no id"}},
                   {"type": "view_submission", "view": {"state": {}}}, {"type": "shortcut", "callback_id": None}):
        body = {"type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U0ALICE01", "team_id": "T1"},
                "container": {"type": "message", "message_ts": card["ts"], "channel_id": card["channel"]},
                "trigger_id": slack_api.trigger(), "actions": [{"action_id": "crm.0", "value": "flog:1"}],
                "api_app_id": "ACRM00001", **broken}
        answer = await slack_rig.wire.interaction(body)
        assert answer.status in (200, 400, 404), (broken, answer.status)  # refused, or acked and ignored
    await slack_rig.settle()
    apologies = [c for c in slack_api.calls[before:] if t("en", "error.internal") in json.dumps(c.params)]
    assert apologies == [] and errors_logged(caplog) == []


@SQLITE_ONLY
async def test_a_unicode_digit_in_callback_data_and_link_previews(
    telegram, telegram_api: TelegramStandIn, db
) -> None:
    await one(telegram_api, ALICE, "/start")
    card = await one(telegram_api, ALICE, "/add Li Wei prefs=https://evil.example/track")
    sends = [c for c in telegram_api.calls_of("sendMessage") if "evil.example" in str(c.params.get("text"))]
    assert sends and all(c.params["link_preview_options"] == {"is_disabled": True} for c in sends)
    await one(telegram_api, ALICE, "/remind #1 tomorrow call back")
    reminder = await scalar(db, select(Reminder.id))
    for data in (f"rdone:{reminder}:t²", f"rsnz:{reminder}:1d:m²", f"show:{reminder}²"):
        telegram_api.push(telegram_api.callback_update(ALICE, card, data))
        answer = await telegram_api.take_one(ALICE.id)
        assert answer.text != t("en", "error.internal"), data


# --- 11. /healthz -------------------------------------------------------------------------------------------------------

async def test_healthz_answers_a_status_only(caplog) -> None:
    closed = free_port()
    database = Database(f"postgresql://postgres:hunter2-secret@127.0.0.1:{closed}/crm")
    port = free_port()
    server = WebServer(database, "127.0.0.1", port)
    server.platforms.append("telegram")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as answer:
            assert answer.status == 503 and await answer.json() == {"status": "error"}
    finally:
        await server.stop()
        await database.dispose()
    assert "health check: the database does not answer" in caplog.text

"""Webhook mode behind a load balancer: every process serves the webhook, so one update (or a Slack
retry) can reach two processes at once. The redelivery key is a row in the shared PostgreSQL
database: the first transaction to insert it applies the update, the other waits for it and then
skips (handlers.core)."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Interaction, ProcessedUpdate, Workspace
from tests.e2e.conftest import SlackRig, TelegramRig
from tests.e2e.slack_api import SlackApiStandIn, SlackWire
from tests.e2e.telegram_api import Person, TelegramStandIn

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)
SECRET = "shared-webhook-secret"
ALICE = Person(5_300_000_001, "Alice", "en")


async def count(db: Database, model: type) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_one_telegram_update_posted_to_two_processes_is_applied_and_answered_once(
        telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database) -> None:
    settings = [telegram_rig.settings(telegram_webhook_secret=SECRET) for _ in range(2)]
    for each in settings:
        each.telegram_webhook_url = f"http://127.0.0.1:{each.http_port}/telegram"
        await telegram_rig.start(each)
    update = telegram_api.message(ALICE, "/start")
    update["update_id"] = 700_000_001
    telegram_api.remember_chat(ALICE.chat)
    async with aiohttp.ClientSession() as http:
        async def post(url: str) -> int:
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                return response.status

        statuses = await asyncio.gather(*(post(each.telegram_webhook_url) for each in settings))
    assert statuses == [200, 200]
    await telegram_api.take(ALICE.id)
    await asyncio.sleep(0.5)  # a second answer would be here by now
    assert len(telegram_api.sent(ALICE.id)) == 1
    assert await count(db, Workspace) == 1
    assert await count(db, ProcessedUpdate) == 1


async def test_a_slack_event_and_its_retry_reaching_two_processes_are_applied_once(
        slack_rig: SlackRig, slack_api: SlackApiStandIn, db: Database) -> None:
    settings = [slack_rig.settings() for _ in range(2)]
    for each in settings:
        await slack_rig.start(each)
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    assert slack_rig._http is not None
    wires = [SlackWire(f"http://127.0.0.1:{each.http_port}/slack/events", slack_rig._http) for each in settings]
    event = alice.dm_event("log #1 call: sent the quote")
    started = time.monotonic()
    first, again = await asyncio.gather(wires[0].event(event), wires[1].event(event, retry=1))
    await slack_rig.settle()
    assert first.status == again.status == 200
    assert time.monotonic() - started < 3  # both answered within Slack's 3 seconds
    assert await count(db, Interaction) == 1
    assert len([m for m in alice.messages(alice.dm) if "Logged for" in m.get("text", "")]) == 1


async def test_processes_without_a_configured_secret_all_accept_the_one_telegram_was_given(
        telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database) -> None:
    """Each start sets the webhook; whichever process set it last, Telegram's header passes at every one."""
    settings = [telegram_rig.settings() for _ in range(2)]
    for each in settings:
        each.telegram_webhook_url = f"http://127.0.0.1:{each.http_port}/telegram"
        await telegram_rig.start(each)
    given = telegram_api.webhook["secret_token"]
    async with aiohttp.ClientSession() as http:
        for n, each in enumerate(settings):
            update = telegram_api.message(Person(5_300_000_010 + n, f"Rep{n}", "en"), "/start")
            update["update_id"] = 700_000_010 + n
            telegram_api.remember_chat(update["message"]["chat"])
            async with http.post(each.telegram_webhook_url, json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": given}) as response:
                assert response.status == 200
    assert await count(db, Workspace) == 2

"""A member who leaves, end to end, on SQLite and PostgreSQL: leaving the Telegram group (the `left_chat_member`
service message, or a `chat_member` update) or a deactivated Slack account (`user_change` with `deleted: true`)
suspends them in that book at once; their private chat no longer acts in it; the admin is told, with a Restore
button, and restores them. The updates are the platforms' documented shapes, recorded in payloads/.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.telegram import TelegramPlatform
from handlers.i18n import t
from reminders.scheduler import Scheduler
from storage.models import Member
from tests.e2e.slack_api import SlackApiStandIn, recorded
from tests.e2e.telegram_api import TelegramStandIn, payload
from tests.e2e.test_slack import text_of
from tests.e2e.test_telegram import ALICE, BOB, CAROL, FORUM, TEAM, eventually, one, scalar

BOTH_DATABASES = pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)


async def access_lost(db, name: str) -> str | None:
    """How the member called `name` lost access (None: they have it)."""
    return await scalar(db, select(Member.removed_how).where(Member.name == name))


@BOTH_DATABASES
async def test_leaving_the_telegram_group_suspends_until_the_admin_restores(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db, services
) -> None:
    await one(telegram_api, ALICE, "/start", chat=TEAM)
    await one(telegram_api, BOB, "/add Tom Li 13800138000", chat=TEAM)  # Bob joins the group's book as a rep
    await one(telegram_api, ALICE, "/help")  # Alice's private chat with the bot, where she is told
    assert "#1 Tom Li" in (await one(telegram_api, BOB, "/find tom")).text  # his private chat reads the book

    left = payload("left_chat_member")
    del left["update_id"]
    telegram_api.push(left)
    await eventually(lambda: access_lost(db, "Bob"))
    assert await access_lost(db, "Bob") == "left"

    refused = t("zh", "error.no_access", workspace="Sales team")
    for text in ("/find tom", "/show #1", "/export", "/reminders"):
        assert (await one(telegram_api, BOB, text)).text == refused, text
    assert (await one(telegram_api, BOB, "/find tom", chat=TEAM)).text == refused  # nor in the group

    await Scheduler(db, services, {"telegram": telegram.sender}).poll()
    notice = await telegram_api.take_one(ALICE.id)
    assert "Bob left the group of “Sales team”" in notice.text and "/team remove Bob" in notice.text
    telegram_api.press(ALICE, notice, "Restore")
    restored = await telegram_api.take_one(ALICE.id)
    assert restored.method == "editMessageText" and restored.text == "Bob has access again."
    assert await access_lost(db, "Bob") is None
    assert "#1 Tom Li" in (await one(telegram_api, BOB, "/find tom")).text


@BOTH_DATABASES
async def test_a_member_removed_from_the_group_by_an_admin_is_suspended_by_the_chat_member_update(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db
) -> None:
    await one(telegram_api, ALICE, "/start", chat=FORUM, thread_id=42)
    assert "chat_member" in telegram_api.allowed_updates  # Telegram sends it only when asked (the stand-in too)
    await one(telegram_api, CAROL, "/add Globex", chat=FORUM, thread_id=42)
    banned = payload("chat_member_banned")
    del banned["update_id"]
    telegram_api.push(banned)
    await eventually(lambda: access_lost(db, "Carol"))
    assert (await one(telegram_api, CAROL, "/show Globex")).text == t("en", "error.no_access", workspace="Acme sales")
    team = await one(telegram_api, ALICE, "/team", chat=FORUM, thread_id=42)
    assert "Without access (1):" in team.text and "Carol · rep · left the group" in team.text
    await one(telegram_api, ALICE, "/team restore Carol", chat=FORUM, thread_id=42)
    assert "#1 Globex" in (await one(telegram_api, CAROL, "/show Globex")).text


@BOTH_DATABASES
async def test_a_deactivated_slack_account_is_suspended_until_the_admin_restores(
    slack, slack_rig, slack_api: SlackApiStandIn, db, services
) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    bob = slack_rig.person("U0BOB0001", "Bob")
    await alice.command("me")  # the first user: admin
    await bob.command('add "Li Wei" 13800138000')
    assert "#1 Li Wei" in text_of(bob.last())

    changed = recorded("user_change")
    changed["event"]["user"].update(deleted=False)
    await slack_rig.wire.event(changed)  # a profile change of an active account: nothing happens
    await slack_rig.settle()
    assert await access_lost(db, "Bob") is None
    changed = recorded("user_change")
    changed["event_id"] = "Ev0USERCHG02"
    answer = await slack_rig.wire.event(changed)
    await slack_rig.settle()
    assert answer.status == 200 and await access_lost(db, "Bob") == "deactivated"

    await bob.say("show #1")
    assert text_of(bob.last(bob.dm)).startswith("You no longer have access to “team-t1”")
    await bob.command("find li")
    assert "Li Wei" not in text_of(bob.ephemerals()[-1])

    await Scheduler(db, services, {"slack": slack.sender}).poll()
    notice = alice.last(alice.dm)
    assert "Bob's Slack account was deactivated" in text_of(notice)
    await alice.press("Restore", {**notice, "channel": alice.dm})
    assert await access_lost(db, "Bob") is None
    await bob.say("show #1")
    assert bob.last(bob.dm)["blocks"][0]["text"]["text"] == "#1 Li Wei"

"""The Telegram bot end to end: the real python-telegram-bot Application polling a local Bot API
stand-in over HTTP, on a real SQLite file (and PostgreSQL where marked `BOTH_DATABASES`).

Updates are the recorded payloads in payloads/telegram/, filled in per test; what the bot sent is
read from the stand-in's recorder, waiting for it (no fixed sleeps).
"""
from __future__ import annotations

import asyncio
import codecs
import dataclasses
import os
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from telegram import Message as TgMessage

from bot.telegram import TelegramPlatform, api_urls, derived_secret
from handlers.help import command_menu
from handlers.i18n import t
from handlers.messages import Attachment, Button, Reply
from handlers.registry import _BY_ALIAS, COMMANDS, find_command
from reminders.delivery import Delivery, DeliveryError, Outcome, RecipientBlocked, Route
from storage import workspaces
from storage.db import Database
from storage.models import (Customer, Identity, Interaction, Member, ProcessedUpdate, Purchase, ReceivedUpdate, Space,
                            Workspace)
from tests.chat import Chat
from tests.e2e.conftest import RecordedMarks, TelegramRig, free_port
from tests.e2e.telegram_api import BOT_USERNAME, NOT_MODIFIED, Outgoing, Person, TelegramStandIn, group_chat, payload

ALICE = Person(5123456789, "Alice", "en", "alice_w")
BOB = Person(5987654321, "Bob", "zh-hans", "bob_li")
CAROL = Person(5000000003, "Carol", "en", "carol_c")
DAN = Person(5000000004, "Dan", "en")
TEAM = group_chat(-4087654321, "Sales team")
FORUM = group_chat(-1002233445566, "Acme sales", forum=True)
TOPIC = 42
FIXTURES = Path(__file__).parents[1] / "fixtures"

CALLBACK_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
BOTH_DATABASES = pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)


def apology(locale: str) -> str:
    return t(locale, "error.internal")


async def say(api: TelegramStandIn, person: Person, text: str, *, chat: dict | None = None, count: int = 1,
              **where: Any) -> list[Outgoing]:
    api.says(person, text, chat=chat, **where)
    return await api.take((chat or person.chat)["id"], count)


async def one(api: TelegramStandIn, person: Person, text: str, **where: Any) -> Outgoing:
    return (await say(api, person, text, **where))[0]


async def team_book(api: TelegramStandIn, *adds: str) -> None:
    """Alice starts the TEAM group's customer book and adds customers there."""
    await one(api, ALICE, "/start", chat=TEAM)
    for add in adds:
        await one(api, ALICE, f"/add {add}", chat=TEAM)


async def handled_all(telegram: TelegramPlatform, api: TelegramStandIn) -> None:
    """Wait until the poller has fetched and handled every update pushed so far."""
    async def settled() -> bool:
        return not api.queue and telegram.poller is not None and telegram.poller.pending == 0
    await eventually(settled)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll an async check until it is truthy (the database side of waiting)."""
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return value


async def scalar(db: Database, statement: Any) -> Any:
    async with db.transaction() as session:
        return await session.scalar(statement)


async def identity_of(db: Database, person: Person) -> Identity:
    return await scalar(db, select(Identity).where(Identity.platform == "telegram",
                                                   Identity.external_id == str(person.id)))


async def interactions(db: Database) -> list[str]:
    async with db.transaction() as session:
        return list(await session.scalars(select(Interaction.summary).order_by(Interaction.id)))


# --- starting, private chats, groups, topics ---------------------------------------------------------

def test_api_urls_accept_the_root_or_the_bot_path() -> None:
    assert api_urls("http://127.0.0.1:8081") == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")
    assert api_urls("http://127.0.0.1:8081/bot/") == ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/file/bot")
    assert api_urls(None) is None


@SQLITE_ONLY
async def test_a_bot_api_not_reachable_yet_at_start_is_tried_again(telegram_rig: TelegramRig,
                                                                    telegram_api: TelegramStandIn) -> None:
    telegram_api.fail_next("getMe", times=2, code=502, description="Bad Gateway")  # the network is coming up
    await telegram_rig.start()
    assert [c.error is None for c in telegram_api.calls_of("getMe")] == [False, False, True]
    assert "is ready" in (await one(telegram_api, ALICE, "/start")).text


@BOTH_DATABASES
async def test_private_start_creates_a_solo_workspace(telegram: TelegramPlatform, telegram_api: TelegramStandIn,
                                                      db: Database) -> None:
    reply = await one(telegram_api, ALICE, "/start")
    assert t("en", "start.created_solo", workspace="Alice's customers") in reply.text
    assert reply.bold == [t("en", "start.title")]
    identity = await identity_of(db, ALICE)
    member = await scalar(db, select(Member).where(Member.id == identity.member_id))
    workspace = await scalar(db, select(Workspace).where(Workspace.id == identity.workspace_id))
    assert (member.role, member.name, workspace.name) == ("admin", "Alice", "Alice's customers")
    assert (identity.dm_chat_id, identity.language) == (str(ALICE.id), "en")
    assert await scalar(db, select(func.count()).select_from(Space)) == 0  # a private chat binds no space
    # polling started clean: the webhook was deleted before the first getUpdates
    methods = [c.method for c in telegram_api.calls]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    assert set(telegram_api.allowed_updates) == {"message", "callback_query", "my_chat_member", "chat_member"}


@BOTH_DATABASES
async def test_group_start_two_members_and_log_in_a_forum_topic(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    started = await one(telegram_api, ALICE, f"/start@{BOT_USERNAME}", chat=FORUM, thread_id=TOPIC)
    assert t("en", "start.created_group", workspace="Acme sales") in started.text
    assert started.thread_id == TOPIC
    added = await one(telegram_api, BOB, '/add "Tom Li" 13800138000 company=Acme', chat=FORUM, thread_id=TOPIC)
    assert "#1 Tom Li" in added.text and added.thread_id == TOPIC
    logged = await one(telegram_api, ALICE, f"/log@{BOT_USERNAME} Tom call: asked for a quote", chat=FORUM,
                       thread_id=TOPIC)
    assert logged.thread_id == TOPIC and "Logged for #1 Tom Li" in logged.text
    team = await one(telegram_api, ALICE, "/team", chat=FORUM, thread_id=TOPIC)
    assert "Alice" in team.text and "Bob" in team.text
    async with db.transaction() as session:
        space = await session.scalar(select(Space).where(Space.external_id == str(FORUM["id"])))
        roles = dict((await session.execute(select(Member.name, Member.role)
                                            .where(Member.workspace_id == space.workspace_id))).all())
    assert roles == {"Alice": "admin", "Bob": "rep"}
    assert await interactions(db) == ["asked for a quote"]


@SQLITE_ONLY
async def test_a_plain_group_before_start_and_after(telegram: TelegramPlatform, telegram_api: TelegramStandIn) -> None:
    first = await one(telegram_api, ALICE, "/find tom", chat=TEAM)
    assert first.text == t("en", "error.start_first")
    started = await one(telegram_api, ALICE, "/start", chat=TEAM)
    assert t("en", "start.created_group", workspace="Sales team") in started.text
    assert started.thread_id is None


@SQLITE_ONLY
async def test_other_bots_commands_and_group_chatter_are_ignored(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await team_book(telegram_api, "Tom")
    telegram_api.says(ALICE, "/log@other_helper_bot Tom call: not for us", chat=TEAM)
    telegram_api.says(BOB, "anyone seen the Acme quote?", chat=TEAM)
    telegram_api.says(BOB, f"@{BOT_USERNAME}s_cousin show Tom", chat=TEAM)  # another bot's name, not a mention
    help_reply = await one(telegram_api, BOB, f"/help@{BOT_USERNAME}", chat=TEAM, template="command_with_botname")
    # one chat is handled in order: help's answer comes after the three before it were handled, silently
    assert t("zh", "help.title") in help_reply.text
    assert len(telegram_api.sent(TEAM["id"])) == 3  # /start, /add, /help
    assert await interactions(db) == []
    mention = await one(telegram_api, ALICE, f"@{BOT_USERNAME} show Tom", chat=TEAM)
    assert "#1 Tom" in mention.text
    reply_to_bot = telegram_api.messages[(str(TEAM["id"]), mention.message_id)]
    answered = await one(telegram_api, ALICE, "help", chat=TEAM, reply_to=reply_to_bot)
    assert t("en", "help.title") in answered.text


@BOTH_DATABASES
async def test_a_group_upgraded_to_a_supergroup_keeps_its_customer_book(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start", chat=TEAM)
    await one(telegram_api, BOB, "/add Tom company=Acme", chat=TEAM)
    # enabling topics (or making the group public) gives the chat a new id; Telegram says so in both chats
    moved_to, moved_from = payload("group_migrated_to_supergroup"), payload("supergroup_migrated_from_group")
    upgraded = moved_from["message"]["chat"]
    for update in (moved_to, moved_from):
        del update["update_id"]
        telegram_api.push(update)
    await handled_all(telegram, telegram_api)  # another chat's update may be handled first, as on Telegram
    shown = await one(telegram_api, BOB, "/show Tom", chat=upgraded)
    assert "#1 Tom" in shown.text
    team = await one(telegram_api, ALICE, "/team", chat=upgraded)
    assert "Alice" in team.text and "Bob" in team.text
    assert len(telegram_api.sent(TEAM["id"])) == 2  # /start and /add: the service messages got no reply


@BOTH_DATABASES
async def test_the_two_upgrade_messages_binding_the_supergroup_at_once_is_no_error(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of Telegram's two upgrade messages may find the new chat unbound while the other binds it
    (both look before either commits): the one that loses the insert leaves the binding as it is."""
    await one(telegram_api, ALICE, "/start", chat=TEAM)
    moved_to, moved_from = payload("group_migrated_to_supergroup"), payload("supergroup_migrated_from_group")
    for update in (moved_to, moved_from):
        del update["update_id"]
    telegram_api.push(moved_to)
    await handled_all(telegram, telegram_api)
    upgraded = moved_from["message"]["chat"]
    assert "Alice" in (await one(telegram_api, ALICE, "/team", chat=upgraded)).text  # bound by the first
    looked_up = workspaces.workspace_for_space

    async def not_yet_committed(session: Any, platform: str, external_id: str) -> Workspace | None:
        return None if external_id == str(upgraded["id"]) else await looked_up(session, platform, external_id)

    monkeypatch.setattr(workspaces, "workspace_for_space", not_yet_committed)  # what the second one saw
    message = TgMessage.de_json(moved_from["message"], telegram.application.bot)
    await telegram._group_upgraded(message)
    monkeypatch.undo()
    assert "Alice" in (await one(telegram_api, ALICE, "/team", chat=upgraded)).text


@SQLITE_ONLY
async def test_a_user_of_another_language_gets_english_not_the_default_locale(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    telegram.default_locale = telegram.core.services.default_locale = "zh"  # DEFAULT_LOCALE=zh, as by default
    ivan = Person(5000000007, "Иван", "ru")
    reply = await one(telegram_api, ivan, "/start")
    assert t("en", "start.created_solo", workspace="Иван's customers") in reply.text
    nameless = Person(5000000008, "Li", None)  # Telegram tells nothing: the default locale
    assert t("zh", "help.title") in (await one(telegram_api, nameless, "/help")).text


@SQLITE_ONLY
async def test_a_command_may_end_in_a_newline_or_a_tab(telegram: TelegramPlatform, telegram_api: TelegramStandIn,
                                                       db: Database) -> None:
    await team_book(telegram_api, "Tom")
    logged = await one(telegram_api, ALICE, f"/log@{BOT_USERNAME}\n#1 call: first line\nsecond line", chat=TEAM)
    assert "Logged for #1 Tom" in logged.text
    assert await interactions(db) == ["first line\nsecond line"]
    assert (await one(telegram_api, ALICE, "/help\tlog")).bold[0].startswith("/log")
    assert telegram_api.unread(TEAM["id"]) == []


@SQLITE_ONLY
async def test_help_and_link_work_in_a_private_chat_before_any_membership(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    help_reply = await one(telegram_api, BOB, "/help")
    assert help_reply.bold == [t("zh", "help.title")]
    console = Chat(telegram.core, user_id="dan", name="Dan", language="en")  # Dan starts on another platform
    await console.say("/add Tom")
    await console.say("/link")
    code = console.text.split("/link ")[1].split()[0]
    linked = await one(telegram_api, DAN, f"/link {code}")
    assert linked.text.startswith("Linked") and "Dan" in linked.text
    shown = await one(telegram_api, DAN, "/show Tom")  # the same member, the same customer book
    assert "#1 Tom" in shown.text
    account = await identity_of(db, DAN)
    assert account.member_id == await scalar(db, select(Identity.member_id).where(Identity.platform == "console"))


# --- every command family ---------------------------------------------------------------------------------

NOT_UNDERSTOOD = ("I don't know the command", "Sorry, something went wrong")


@SQLITE_ONLY
async def test_every_registered_command_family(telegram: TelegramPlatform, telegram_api: TelegramStandIn,
                                               db: Database) -> None:
    covered: set[str] = set()

    async def run(person: Person, text: str, expect: str = "", count: int = 1) -> list[Outgoing]:
        replies = await say(telegram_api, person, text, count=count)
        seen = "\n".join(r.text for r in replies)
        assert not any(bad in seen for bad in NOT_UNDERSTOOD), f"{text!r} → {seen}"
        assert expect in seen, f"{text!r} → {seen}"
        entry = find_command(text.split()[0].lstrip("/"))
        assert entry is not None
        covered.add(entry.name)
        return replies

    await run(ALICE, "/start", "is ready")
    await run(ALICE, "/add Tom Li 13800138000 company=Acme", "Added #1 Tom Li")
    await run(ALICE, '/add "Tom Wang" tom@wang.com', "Added #2 Tom Wang")
    await run(ALICE, "/show #1", "Phone: +8613800138000")
    await run(ALICE, "/edit #1 title=CEO", "Title: CEO")
    await run(ALICE, "/find tom", "2 found")
    await run(ALICE, "/log #1 call: asked for a quote next: friday", "Logged for #1 Tom Li")
    await run(ALICE, "/tag #1 key-account", "key-account")
    await run(ALICE, "/tags", "key-account")
    await run(ALICE, "/deal #1 12k first order", "Deal recorded: ¥12,000")
    await run(ALICE, "/feedback #1 5 great", "★★★★★")
    await run(ALICE, "/entry #1 feedback 1 4 good", "Changed feedback 1 of #1 Tom Li · Acme: Satisfaction: 5 → 4")
    await run(ALICE, "/undo", "Undone: your correction of feedback 1 of #1 Tom Li · Acme")
    await run(ALICE, "/remind #2 tomorrow call back", "Reminder #2")
    await run(ALICE, "/reminders", "pending reminders")
    await run(ALICE, "/done 2", "Reminder #2 done")
    await run(ALICE, "/snooze 1 3d", "Reminder #1 moved")
    await run(ALICE, "/silent")
    invite = (await run(ALICE, "/invite", "Invite code"))[0]
    code = invite.text.split("/join ")[1].split()[0]
    await run(BOB, f"/join {code}")
    await run(ALICE, "/team", "Bob")
    await run(ALICE, "/role Bob manager")
    await run(ALICE, "/assign #2 Bob", "Bob")
    await run(ALICE, "/dupes")
    await run(ALICE, "/history #1", "History of #1 Tom Li")
    await run(ALICE, "/link", "/link ")
    await run(ALICE, "/settings", "Asia/Shanghai")
    await run(ALICE, "/me tz=Europe/Berlin", "Europe/Berlin")
    await run(ALICE, "/digest", "Daily digest")
    exported = (await run(ALICE, "/export", "exported"))[0]
    assert exported.method == "sendDocument" and exported.document is not None
    await run(ALICE, "/import", "/import")
    await run(ALICE, "/help log", "/log")
    merge = (await run(ALICE, "/merge #1 #2", "Merge"))[0]
    telegram_api.press(ALICE, merge, t("en", "merge.yes"))
    merged = await telegram_api.take_one(ALICE.id)
    assert merged.method == "editMessageText" and merged.message_id == merge.message_id
    deleting = (await run(ALICE, "/delete #1", "Delete #1"))[0]
    telegram_api.press(ALICE, deleting, t("en", "delete.yes"))
    await telegram_api.take_one(ALICE.id)
    assert await scalar(db, select(Customer.deleted_at).where(Customer.number == 1)) is not None
    await run(ALICE, "/restore #1", "#1 Tom Li")
    forgetting = (await run(ALICE, "/forget #1", "Erase"))[0]
    telegram_api.press(ALICE, forgetting, t("en", "common.cancel"))
    await telegram_api.take_one(ALICE.id)
    assert await scalar(db, select(Customer.name).where(Customer.number == 1)) == "Tom Li"
    await run(ALICE, "/add", "1/")
    await run(ALICE, "/cancel", t("en", "common.cancelled"))
    # a command answering with several messages: read them up to the answer of the command after it
    telegram_api.says(ALICE, "/today")
    telegram_api.says(ALICE, "/help tags")
    await telegram_api.wait_until(lambda: any(m.bold and m.bold[0].startswith("/tags")
                                              for m in telegram_api.unread(ALICE.id)))
    my_day = telegram_api.unread(ALICE.id)[:-1]
    await telegram_api.take(ALICE.id, len(my_day) + 1)
    assert my_day[0].bold == [t("en", "home.title", name="Alice")]
    assert not any(bad in m.text for m in my_day for bad in NOT_UNDERSTOOD)
    covered.add("today")
    missing = set(COMMANDS) - covered
    assert not missing, f"registered commands this test does not cover yet: {sorted(missing)}"


# --- buttons ------------------------------------------------------------------------------------------------

@SQLITE_ONLY
async def test_which_one_buttons_answer_the_query_and_edit_the_message(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, ALICE, '/add "Tom Li" company=Acme')
    await one(telegram_api, ALICE, '/add "Tom Wang" company=Globex')
    question = await one(telegram_api, ALICE, "/log tom visit: brought samples")
    assert question.text.startswith(t("en", "lookup.which", ref="tom").split("\n")[0][:10])
    assert len(question.buttons) == 3
    telegram_api.press(ALICE, question, "Tom Wang")
    picked, logged = await telegram_api.take(ALICE.id, 2)
    [answer] = telegram_api.calls_of("answerCallbackQuery")
    assert answer.error is None
    assert picked.method == "editMessageText" and picked.message_id == question.message_id
    assert "Tom Wang" in picked.text and picked.buttons == []
    assert logged.method == "sendMessage" and "Logged for #2 Tom Wang" in logged.text
    assert await interactions(db) == ["brought samples"]
    # pressing the spent button again: the choice is gone, nothing is logged twice
    telegram_api.push(telegram_api.callback_update(ALICE, question, question.buttons[1]["callback_data"]))
    expired = await telegram_api.take_one(ALICE.id)
    assert t("en", "error.choice_expired") in expired.text
    assert await interactions(db) == ["brought samples"]


@SQLITE_ONLY
async def test_someone_elses_button_in_a_group_answers_them_alone(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await team_book(telegram_api, '"Tom Li" company=Acme', '"Tom Wang" company=Globex')
    await one(telegram_api, BOB, "/team", chat=TEAM)
    question = await one(telegram_api, ALICE, "/log tom visit: brought samples", chat=TEAM)
    telegram_api.press(BOB, question, "Tom Wang")  # Alice's question, Bob's finger
    await telegram_api.wait_until(lambda: telegram_api.calls_of("answerCallbackQuery"))
    [refusal] = telegram_api.calls_of("answerCallbackQuery")
    assert refusal.params["show_alert"] in (True, "true")
    assert any("\u4e00" <= char <= "\u9fff" for char in refusal.params["text"])  # in Bob's language, for him
    # pressed again while the group was busy: Telegram no longer takes an answer, so the words go to the chat
    telegram_api.fail_next("answerCallbackQuery", times=2, code=400, description=CALLBACK_TOO_OLD)
    telegram_api.press(BOB, question, "Tom Wang")
    late = await telegram_api.take_one(TEAM["id"])
    assert late.method == "sendMessage" and late.text == refusal.params["text"]
    telegram_api.press(ALICE, question, "Tom Wang")  # her choice still stands, and the group saw nothing of Bob's
    picked, logged = await telegram_api.take(TEAM["id"], 2)
    assert picked.method == "editMessageText" and "Logged for #2 Tom Wang" in logged.text
    assert await interactions(db) == ["brought samples"]
    # in a private chat a refusal stays a message, where it can be read again
    await one(telegram_api, BOB, "/start")
    card = await one(telegram_api, BOB, "/show #1")
    telegram_api.push(telegram_api.callback_update(BOB, card, "pick:gone:0"))
    assert (await telegram_api.take_one(BOB.id)).text == t("zh", "error.choice_expired")


@SQLITE_ONLY
async def test_paging_edits_in_place_and_an_unchanged_message_is_no_error(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    for number in range(12):
        await one(telegram_api, ALICE, f"/add Client{number:02d} company=Initech")
    first = await one(telegram_api, ALICE, "/find initech")
    assert "Client00" in first.text and "Client11" not in first.text
    telegram_api.press(ALICE, first, t("en", "page.next"))
    second = await telegram_api.take_one(ALICE.id)
    assert second.method == "editMessageText" and second.message_id == first.message_id
    assert "Client11" in second.text
    telegram_api.fail_next("editMessageText", code=400, description=NOT_MODIFIED)  # a double tap
    telegram_api.press(ALICE, second, t("en", "page.prev"))
    await telegram_api.wait_until(lambda: len(telegram_api.calls_of("answerCallbackQuery")) == 2)
    await one(telegram_api, ALICE, "/tags")  # the chat moved on: "not modified" sent nothing new, no apology
    assert [m.method for m in telegram_api.sent(ALICE.id)[-2:]] == ["editMessageText", "sendMessage"]
    assert not [m for m in telegram_api.sent(ALICE.id) if apology("en") in m.text]


@SQLITE_ONLY
async def test_a_message_that_cannot_be_edited_gets_a_new_one(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    for number in range(11):
        await one(telegram_api, ALICE, f"/add Client{number:02d}")
    first = await one(telegram_api, ALICE, "/find client")
    telegram_api.fail_next("editMessageText", code=400, description="Bad Request: message can't be edited")
    telegram_api.press(ALICE, first, t("en", "page.next"))
    fresh = await telegram_api.take_one(ALICE.id)
    assert fresh.method == "sendMessage" and "Client10" in fresh.text


# --- the guided /add, across a restart ----------------------------------------------------------------------

@SQLITE_ONLY
async def test_guided_add_step_by_step_with_skip_and_a_restart(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database
) -> None:
    bot = await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    question = await one(telegram_api, ALICE, "/add")
    assert "1/8" in question.text and {b["text"] for b in question.buttons} == {t("en", "common.cancel")}
    question = await one(telegram_api, ALICE, "Li Wei")  # name
    assert "2/8" in question.text
    telegram_api.press(ALICE, question, t("en", "guided.skip"))  # company
    question = await telegram_api.take_one(ALICE.id)
    assert "3/8" in question.text
    await telegram_rig.stop(bot)  # the process goes away mid-way …
    await telegram_rig.start()  # … and a new one carries on from the database
    question = await one(telegram_api, ALICE, "Purchasing manager")  # title
    assert "4/8" in question.text
    question = await one(telegram_api, ALICE, "13800138000")  # phone
    for step in range(5, 9):  # email, region, industry, source
        assert f"{step}/8" in question.text
        telegram_api.press(ALICE, question, t("en", "guided.skip"))
        question = await telegram_api.take_one(ALICE.id)
    assert "#1 Li Wei" in question.text
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer))
    assert (customer.name, customer.company, customer.title, customer.phone) == (
        "Li Wei", None, "Purchasing manager", "+8613800138000")


# --- files ------------------------------------------------------------------------------------------------------

@SQLITE_ONLY
async def test_import_a_gbk_csv_and_export_it_again(telegram: TelegramPlatform, telegram_api: TelegramStandIn,
                                                    db: Database) -> None:
    await one(telegram_api, ALICE, "/start")
    content = (FIXTURES / "customers-gbk.csv").read_bytes()
    telegram_api.push(telegram_api.document_update(ALICE, "客户.csv", content, caption="/import"))
    summary = await telegram_api.take_one(ALICE.id)
    assert summary.bold == [t("en", "import.title", name="客户.csv")]
    assert "Rows read: 8. Added: 7;" in summary.text
    assert telegram_api.calls_of("getFile") and telegram_api.calls_of("sendChatAction")
    assert await scalar(db, select(Customer.company).where(Customer.name == "李伟")) == "华东贸易"
    # /import as a reply to a document already in the chat
    csv = "name,phone\nZhao Lei,13900139000\n".encode()
    document = telegram_api.push(telegram_api.document_update(ALICE, "more.csv", csv))["message"]
    await one(telegram_api, ALICE, "/import", reply_to=document)
    assert await scalar(db, select(Customer.phone).where(Customer.name == "Zhao Lei")) == "+8613900139000"
    exported = await one(telegram_api, ALICE, "/export")
    assert exported.method == "sendDocument" and exported.document is not None
    name, data = exported.document
    assert name.endswith(".csv") and data.startswith(codecs.BOM_UTF8)
    assert "李伟" in data.decode("utf-8-sig") and "Zhao Lei" in data.decode("utf-8-sig")
    assert t("en", "export.done", count=f"{await scalar(db, select(func.count()).select_from(Customer)):,}") \
        in exported.text


@SQLITE_ONLY
async def test_a_long_import_shows_progress_in_one_edited_message(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    rows = "\n".join(f"Person {n},1390000{n:04d}" for n in range(2500))
    telegram_api.push(telegram_api.document_update(ALICE, "big.csv", f"name,phone\n{rows}\n".encode(),
                                                   caption="/import"))
    title = t("en", "import.title", name="big.csv")
    await telegram_api.wait_until(lambda: any(m.bold == [title] for m in telegram_api.sent(ALICE.id)),
                                  timeout=60, what="the import summary")
    messages = telegram_api.sent(ALICE.id)[1:]
    progress = [m for m in messages if "Importing" in m.text]
    assert progress[0].method == "sendMessage" and len(progress) >= 2
    assert all(m.method == "editMessageText" and m.message_id == progress[0].message_id for m in progress[1:])


@SQLITE_ONLY
async def test_a_file_with_a_column_no_rule_knows_is_previewed_with_buttons(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start")
    content = (FIXTURES / "layouts" / "ledger.xlsx").read_bytes()
    telegram_api.push(telegram_api.document_update(ALICE, "台账.xlsx", content, caption="/import"))
    preview = await telegram_api.take_one(ALICE.id)
    assert "Name ← 联系人 · Company ← 客户名称 · Phone ← 手机号码 + 联系电话" in preview.text
    assert [b["text"] for b in preview.buttons] == ["Import", "Change", "Cancel"]
    assert await scalar(db, select(func.count()).select_from(Customer)) == 0
    telegram_api.press(ALICE, preview, "Change")  # read 工号 into the notes, without starting over
    columns = await telegram_api.take_one(ALICE.id)
    assert columns.method == "editMessageText" and "工号 → Not imported" in [b["text"] for b in columns.buttons]
    telegram_api.press(ALICE, columns, "工号 → Not imported")
    targets = await telegram_api.take_one(ALICE.id)
    telegram_api.press(ALICE, targets, "Notes")
    again = await telegram_api.take_one(ALICE.id)
    assert "Notes ← 备注 + 最后跟进时间 + 工号" in again.text
    telegram_api.press(ALICE, again, "Import")
    await telegram_api.wait_until(lambda: any(m.bold == [t("en", "import.title", name="台账.xlsx")]
                                              for m in telegram_api.sent(ALICE.id)), what="the summary")
    assert "工号: A-017" in await scalar(db, select(Customer.prefs).where(Customer.name == "李伟"))


@SQLITE_ONLY
async def test_a_contact_card_shared_into_the_chat_adds_then_updates_a_customer(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start")

    def share(contact: dict) -> None:
        update = telegram_api.message(ALICE, "")
        message = update["message"]
        message.pop("text")
        message["contact"] = contact
        telegram_api.push(update)

    share({"phone_number": "8613800138000", "first_name": "伟", "last_name": "李", "user_id": 6000000001})
    added = await telegram_api.take_one(ALICE.id)
    assert "Added: 1;" in added.text
    share({"phone_number": "+86 138 0013 8000", "first_name": "Wei", "last_name": "Li",
           "vcard": "BEGIN:VCARD\nVERSION:3.0\nN:Li;Wei;;;\nFN:Wei Li\nTEL;TYPE=CELL:+86 138 0013 8000\n"
                    "EMAIL:li.wei@example.cn\nORG:华东贸易\nEND:VCARD"})
    updated = await telegram_api.take_one(ALICE.id)
    assert "line 1 Wei Li → #1 李伟 (same phone)" in updated.text
    async with db.transaction() as session:
        [customer] = list(await session.scalars(select(Customer)))
    assert (customer.name, customer.phone, customer.email, customer.company) == (
        "李伟", "+8613800138000", "li.wei@example.cn", "华东贸易")


@SQLITE_ONLY
async def test_another_chats_command_is_answered_while_a_big_import_runs(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    """The import writes a batch per transaction and queues behind waiting commands between them: Bob's
    /tags (another book) is answered before Alice's import ends, not after it."""
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, BOB, "/start")
    rows = "\n".join(f"Person {n},1390000{n:04d}" for n in range(6000))
    telegram_api.push(telegram_api.document_update(ALICE, "big.csv", f"name,phone\n{rows}\n".encode(),
                                                   caption="/import"))
    await telegram_api.wait_until(lambda: any("Importing" in m.text for m in telegram_api.sent(ALICE.id)),
                                  timeout=60, what="the first progress message")
    telegram_api.says(BOB, "/tags")
    title = t("en", "import.title", name="big.csv")
    await telegram_api.wait_until(lambda: any(m.bold == [title] for m in telegram_api.sent(ALICE.id)),
                                  timeout=120, what="the import summary")
    order = [(o.chat_id, o.bold) for o in telegram_api.outbox]
    bobs_answer = max(i for i, (chat, _) in enumerate(order) if chat == str(BOB.id))
    summary = next(i for i, (chat, bold) in enumerate(order) if chat == str(ALICE.id) and bold == [title])
    assert bobs_answer < summary
    assert await scalar(db, select(func.count()).select_from(Customer)) == 6000


@SQLITE_ONLY
async def test_a_file_over_10_mb_is_refused_before_downloading(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    telegram_api.push(telegram_api.document_update(ALICE, "huge.csv", b"name\nx\n", caption="/import",
                                                   size=11 * 2**20))
    refused = await telegram_api.take_one(ALICE.id)
    assert refused.text == t("en", "import.error.too_big", size="11.0", limit=10)
    assert not telegram_api.calls_of("getFile")


# --- languages, escaping, length ----------------------------------------------------------------------------

@SQLITE_ONLY
async def test_a_chinese_user_gets_chinese_and_the_menus_are_registered(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    reply = await one(telegram_api, BOB, "/start")
    assert t("zh", "start.created_solo", workspace=t("zh", "start.solo_name", name="Bob")) in reply.text
    unknown = await one(telegram_api, BOB, "/frobnicate")
    assert unknown.text == t("zh", "error.unknown_command", command="/frobnicate")
    english = [{"command": c, "description": d} for c, d in command_menu("en")]
    chinese = [{"command": c, "description": d} for c, d in command_menu("zh")]
    assert telegram_api.commands[""] == english and telegram_api.commands["zh"] == chinese
    assert english != chinese and {c["command"] for c in english} >= {"log", "add", "help", "start"}


@SQLITE_ONLY
async def test_markup_in_user_input_is_shown_literally(telegram: TelegramPlatform,
                                                       telegram_api: TelegramStandIn) -> None:
    await one(telegram_api, ALICE, "/start")
    name = '<b>Tom & "Jerry"</b>'
    card = await one(telegram_api, ALICE, f"/add '{name}' company=<i>Acme</i>")
    assert f"#1 {name}" in card.text and "<i>Acme</i>" in card.text
    assert "&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;" in card.html
    assert card.bold[0] == f"#1 {name}"  # our bold title, holding the literal text


@SQLITE_ONLY
async def test_the_4096_limit_counts_text_as_shown_not_its_escapes(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    note = "<&>" * 1300  # 3,900 characters on screen, 16,900 as escaped HTML
    await telegram.sender.send(str(ALICE.id), Reply(title="Note", text=note))
    [sent] = await telegram_api.take(ALICE.id, 1)
    assert sent.text == f"Note\n{note}"
    await telegram.sender.send(str(ALICE.id), Reply(text="&" * 5000))  # too long even as shown: two parts
    first, second = await telegram_api.take(ALICE.id, 2)
    assert (len(first.text), len(second.text)) == (4096, 904)


@SQLITE_ONLY
async def test_long_replies_are_split_under_4096_with_the_keyboard_last(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    items = [f"#{n} <Customer> & company number {n} — " + "x" * 60 for n in range(200)]
    reply = Reply(title="Long list", items=items, buttons=[[Button("Next", "pg:tok:1")]])
    await telegram.sender.send(str(ALICE.id), reply)
    parts = await telegram_api.wait_until(lambda: telegram_api.sent(ALICE.id)[1:] if len(
        telegram_api.sent(ALICE.id)) > 4 else None)
    assert all(len(p.text) <= 4096 for p in parts)
    assert "\n".join(p.text for p in parts) == Reply(title="Long list", items=items).plain_text()
    assert [bool(p.buttons) for p in parts] == [False] * (len(parts) - 1) + [True]


# --- reliability -------------------------------------------------------------------------------------------------

@SQLITE_ONLY
async def test_an_update_delivered_twice_is_applied_once(telegram_rig: TelegramRig, telegram_api: TelegramStandIn,
                                                         db: Database) -> None:
    bot = await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, ALICE, "/add Tom")
    update = telegram_api.says(ALICE, "/log Tom call: first call")
    await telegram_api.take_one(ALICE.id)
    telegram_api.redeliver(update)  # back to back, in one batch
    await one(telegram_api, ALICE, "/show Tom")
    assert telegram_api.unread(ALICE.id) == []
    await telegram_rig.stop(bot)  # a crash before Telegram heard the update was handled:
    telegram_api.redeliver(update)
    await telegram_rig.start()  # the new process gets it again
    shown = await one(telegram_api, ALICE, "/show Tom")
    assert "first call" in shown.text
    assert telegram_api.unread(ALICE.id) == []
    assert await interactions(db) == ["first call"]
    key = f"telegram:{telegram_api.bot_id}:{update['update_id']}"
    assert await scalar(db, select(func.count()).select_from(ProcessedUpdate).where(ProcessedUpdate.key == key)) == 1


@SQLITE_ONLY
async def test_an_answer_telegram_refused_is_explained_and_kept_for_a_redelivery(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database
) -> None:
    bot = await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, ALICE, "/add Tom")
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=500, description="Internal Server Error")
    update = telegram_api.says(ALICE, "/log Tom call: said yes")  # applied; then the answer is refused
    apology = await telegram_api.take_one(ALICE.id)
    assert apology.text == t("en", "error.answer_not_shown")  # not "nothing was changed": it was
    assert await interactions(db) == ["said yes"]
    await telegram_rig.stop(bot)  # as if killed before Telegram heard the update was handled
    telegram_api.redeliver(update)
    await telegram_rig.start()
    answer = await telegram_api.take_one(ALICE.id)  # the answer after all, and the log not repeated
    assert answer.text.startswith("Logged for #1 Tom") and "said yes" in answer.text
    assert await interactions(db) == ["said yes"]
    telegram_api.redeliver(update)  # shown now: a further redelivery gets nothing
    assert "said yes" not in (await one(telegram_api, ALICE, "/tags")).text
    assert telegram_api.unread(ALICE.id) == []


class BotProcess:
    """The real `crm-bot run` in its own process, against the stand-in, as a team runs it."""

    def __init__(self, api: TelegramStandIn, db: Database, workdir: Path) -> None:
        self.api, self.workdir = api, workdir
        self.env = {**os.environ, "TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_BASE_URL": api.base_url,
                    "DATABASE_URL": db.url.render_as_string(hide_password=False), "HTTP_HOST": "127.0.0.1",
                    "HTTP_PORT": str(free_port()), "DEFAULT_LOCALE": "en", "LOG_LEVEL": "WARNING"}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        starts = len(self.api.calls_of("deleteWebhook"))  # polling begins right after it
        with (self.workdir / "bot.log").open("a") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.workdir, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT)
        await self.api.wait_until(lambda: len(self.api.calls_of("deleteWebhook")) > starts, timeout=60,
                                  what="the bot starting to poll")

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no last getUpdates."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@pytest.fixture
async def bot(telegram_api: TelegramStandIn, db: Database, tmp_path: Path):
    """`crm-bot run` in its own process, serving Alice, whose book holds Tom; stopped after the test."""
    bot = BotProcess(telegram_api, db, tmp_path)
    try:
        await bot.start()
        await one(telegram_api, ALICE, "/start")
        await one(telegram_api, ALICE, "/add Tom")
        yield bot
    finally:
        await bot.stop()


@BOTH_DATABASES
async def test_a_bot_killed_mid_burst_loses_no_update_and_applies_none_twice(
    bot: BotProcess, telegram_api: TelegramStandIn, db: Database
) -> None:
    burst = [f"burst {n}" for n in range(40)]
    for summary in burst:
        telegram_api.says(ALICE, f"/log Tom call: {summary}")
    await telegram_api.take_one(ALICE.id, timeout=30)  # the first is handled, most are still waiting
    await bot.kill()
    handled_before = len(await interactions(db))
    assert handled_before < len(burst)
    # what was fetched was confirmed at once, and what was not handled is kept for the next process
    kept = await scalar(db, select(func.count()).select_from(ReceivedUpdate).outerjoin(
        ProcessedUpdate, ProcessedUpdate.key == ReceivedUpdate.key).where(ProcessedUpdate.key.is_(None)))
    assert kept + len(telegram_api.queue) >= len(burst) - handled_before and kept > 0
    await bot.start()

    async def all_handled() -> bool:
        return len(await interactions(db)) >= len(burst)

    await eventually(all_handled, timeout=60)
    telegram_api.says(ALICE, "/tags")  # the chat is answered in order: after this answer, the burst's are all in
    await telegram_api.wait_until(lambda: "burst" not in telegram_api.sent(ALICE.id)[-1].text, timeout=30,
                                  what="the answer to /tags, after the burst's")
    assert await interactions(db) == burst
    replies = Counter(m.text.split("“")[1].split("”")[0] for m in telegram_api.sent(ALICE.id) if "burst" in m.text)
    assert max(replies.values()) == 1 and len(replies) == len(burst)  # every answer, once


async def test_polling_goes_on_when_the_get_updates_connection_is_taken_for_good(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    """A getUpdates cancelled mid-request (the lease lost, a stop) can keep the only connection of
    getUpdates' pool for good (encode/httpcore#1093), and every poll after it then waits for the pool in
    vain: a process that took the polling lease back never polled again. The poller starts a new HTTP
    client when getUpdates times out waiting for its pool."""
    await one(telegram_api, ALICE, "/start")
    assert telegram.poller is not None
    request = telegram.poller.bot._request[0]

    tries: list[httpx.Request] = []

    def pool_taken(asked: httpx.Request) -> httpx.Response:
        tries.append(asked)
        raise httpx.PoolTimeout("every connection of the pool is taken")

    request._client = httpx.AsyncClient(transport=httpx.MockTransport(pool_taken))
    await telegram_api.wait_until(lambda: tries, timeout=15, what="a getUpdates through the taken pool")
    assert "/help" in (await one(telegram_api, ALICE, "/help")).text


@BOTH_DATABASES
async def test_each_update_is_handed_out_once_and_forgotten_once_handled(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    """A batch is kept in the database and confirmed by the next getUpdates, while it is still being
    handled: Telegram hands each update out once (it used to hand an unhandled one out on every poll),
    and the database keeps none once all are handled."""
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, ALICE, "/add Tom")
    for n in range(30):
        telegram_api.says(ALICE, f"/log Tom call: burst {n}")
    await telegram_api.wait_until(lambda: len(telegram_api.sent(ALICE.id)) >= 32, timeout=30, what="30 answers")
    handed = [u["update_id"] for c in telegram_api.calls_of("getUpdates", ok=True) for u in c.result or []]
    assert len(handed) == len(set(handed)) >= 32

    async def forgotten() -> bool:
        return await scalar(db, select(func.count()).select_from(ReceivedUpdate)) == 0

    await eventually(forgotten)


@BOTH_DATABASES
async def test_a_bot_killed_before_its_answer_left_answers_after_the_restart(
    bot: BotProcess, telegram_api: TelegramStandIn, db: Database
) -> None:
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=429, retry_after=60)
    telegram_api.says(ALICE, "/log Tom call: said yes")
    await telegram_api.wait_until(lambda: telegram_api.calls_of("sendMessage", ok=False), timeout=30,
                                  what="the answer held back by a 429")
    assert await interactions(db) == ["said yes"]  # applied, and its answer waits out the 429

    async def kept_again() -> bool:  # the 429 has reached the bot, which took its on-the-wire mark back
        return await scalar(db, select(func.count()).select_from(ProcessedUpdate)
                            .where(ProcessedUpdate.unanswered.is_not(None))) == 1

    await eventually(kept_again)
    await bot.kill()
    telegram_api.clear_rules()
    await bot.start()
    answer = await telegram_api.take_one(ALICE.id, timeout=30)
    assert answer.text.startswith("Logged for #1 Tom") and "said yes" in answer.text
    assert "said yes" not in (await one(telegram_api, ALICE, "/tags")).text  # the answer came once
    assert telegram_api.unread(ALICE.id) == []
    assert await interactions(db) == ["said yes"]


@SQLITE_ONLY
async def test_a_429_is_waited_out_and_the_reply_still_arrives(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start")
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=429, retry_after=1)
    reply = await one(telegram_api, ALICE, "/help")
    assert t("en", "help.title") in reply.text
    refused, delivered = telegram_api.calls_of("sendMessage")[-2:]
    assert refused.error is not None and refused.error.retry_after == 1 and delivered.error is None
    assert delivered.at - refused.at >= 1.0


@SQLITE_ONLY
async def test_a_429_in_one_group_holds_back_that_group_only(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn
) -> None:
    await one(telegram_api, ALICE, "/start", chat=TEAM)
    await one(telegram_api, CAROL, "/start")
    telegram_api.fail_next("sendMessage", chat_id=TEAM["id"], code=429, retry_after=3)  # the group is flooded
    telegram_api.says(ALICE, "/help", chat=TEAM)
    await telegram_api.wait_until(lambda: telegram_api.calls_of("sendMessage", ok=False))
    started = time.monotonic()
    await one(telegram_api, CAROL, "/help")  # a private chat is not kept waiting for the group
    assert time.monotonic() - started < 2
    answer = await telegram_api.take_one(TEAM["id"])
    assert t("en", "help.title") in answer.text
    refused, delivered = [c for c in telegram_api.calls_of("sendMessage") if c.chat_id == str(TEAM["id"])][-2:]
    assert refused.error is not None and delivered.at - refused.at >= 3.0


@BOTH_DATABASES
async def test_a_user_who_blocked_the_bot_is_recorded_and_others_are_served(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, CAROL, "/start")
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=403)
    telegram_api.says(ALICE, "/help")
    assert t("en", "help.title") in (await one(telegram_api, CAROL, "/help")).text

    async def alice_blocked() -> Any:
        return (await identity_of(db, ALICE)).blocked_at

    assert await eventually(alice_blocked) == telegram.app.services.clock()
    assert (await identity_of(db, CAROL)).blocked_at is None
    # unblocking (Telegram's my_chat_member update) clears it; blocking again records it
    unblocked = payload("my_chat_member_blocked")
    del unblocked["update_id"]
    change = unblocked["my_chat_member"]
    change.update(chat=ALICE.chat, **{"from": ALICE.user})
    change["old_chat_member"].update(status="kicked", until_date=0)
    change["new_chat_member"] = {"user": change["new_chat_member"]["user"], "status": "member"}
    telegram_api.push(unblocked)

    async def alice_free() -> bool:
        return (await identity_of(db, ALICE)).blocked_at is None

    await eventually(alice_free)
    blocked = payload("my_chat_member_blocked")
    del blocked["update_id"]
    blocked["my_chat_member"].update(chat=ALICE.chat, **{"from": ALICE.user})
    telegram_api.push(blocked)
    await eventually(alice_blocked)


@SQLITE_ONLY
async def test_the_sender_renders_deliveries_and_maps_failures(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database
) -> None:
    bot = await telegram_rig.start(max_retries=0)
    await one(telegram_api, ALICE, "/start")
    reminder = Reply(title="Reminder", text="Call <Tom>", buttons=[[Button("Done", "rdone:1")]])
    await bot.sender.send(str(ALICE.id), reminder)
    sent = await telegram_api.take_one(ALICE.id)
    assert (sent.text, sent.bold, sent.buttons[0]["callback_data"]) == ("Reminder\nCall <Tom>", ["Reminder"], "rdone:1")
    await bot.sender.send(str(ALICE.id), Reply(text="Weekly chart", image=Attachment("chart.png", PNG, "image/png")))
    chart = await telegram_api.take_one(ALICE.id)
    assert chart.method == "sendPhoto" and chart.photo == PNG and chart.text == "Weekly chart"
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=429, retry_after=7)
    with pytest.raises(DeliveryError) as flood:
        await bot.sender.send(str(ALICE.id), Reply(text="later"))
    assert flood.value.retry_after == 7 and not isinstance(flood.value, RecipientBlocked)
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=502, description="Bad Gateway")
    with pytest.raises(DeliveryError):
        await bot.sender.send(str(ALICE.id), Reply(text="later"))
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=403)
    with pytest.raises(RecipientBlocked):
        await bot.sender.send(str(ALICE.id), Reply(text="hello?"))
    assert (await identity_of(db, ALICE)).blocked_at is not None
    with pytest.raises(RecipientBlocked):
        await bot.sender.send("5999999999", Reply(text="never started the bot"))


@SQLITE_ONLY
async def test_a_delivery_is_marked_on_the_wire_before_its_request_reaches_telegram_and_only_then(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database
) -> None:
    """The mark reminders.claims reads after a crash: set after the flood limiter, before the request."""
    bot = await telegram_rig.start(max_retries=0)
    await one(telegram_api, ALICE, "/start")
    delivery = Delivery(db, {"telegram": bot.sender}, clock=lambda: datetime.now(timezone.utc), first_backoff=0.05)
    marks = RecordedMarks(lambda: len(telegram_api.calls_of("sendMessage")))
    result = await delivery.deliver([Route("telegram", str(ALICE.id))], [Reply(text="Call Tom")], marks=marks)
    assert result.outcome is Outcome.SENT and marks.events == [("on wire", 1)]  # one sendMessage so far: /start's
    await telegram_api.take_one(ALICE.id)
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=502, description="Bad Gateway")
    marks.events.clear()
    await delivery.deliver([Route("telegram", str(ALICE.id))], [Reply(text="Call Ann")], marks=marks)
    assert marks.events[:2] == [("on wire", 2), ("failed", 3)]  # the refused try takes its mark back
    await bot.sender.send(str(ALICE.id), Reply(text="a reply, not a delivery"))  # no delivery under way: no mark
    assert len(marks.events) == 3


@SQLITE_ONLY
async def test_a_delivery_waiting_out_a_429_is_not_on_the_wire_while_it_waits(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn, db: Database
) -> None:
    """A kill during the wait must send it again: the limiter takes the mark back until the retry leaves."""
    bot = await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    delivery = Delivery(db, {"telegram": bot.sender}, clock=lambda: datetime.now(timezone.utc))
    marks = RecordedMarks(lambda: len(telegram_api.calls_of("sendMessage")))
    telegram_api.fail_next("sendMessage", chat_id=ALICE.id, code=429, retry_after=1)
    result = await delivery.deliver([Route("telegram", str(ALICE.id))], [Reply(text="Call Tom")], marks=marks)
    assert result.outcome is Outcome.SENT
    # /start's answer went before; the 429 takes the mark back while it waits; the retry marks again
    assert marks.events == [("on wire", 1), ("failed", 2), ("on wire", 2)]
    assert (await telegram_api.take_one(ALICE.id)).text == "Call Tom"


@SQLITE_ONLY
async def test_a_rep_who_only_used_the_group_is_reachable_once_they_press_start(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start", chat=TEAM)
    await one(telegram_api, BOB, "/team", chat=TEAM)  # Bob joins in the group, never opens a private chat
    telegram_api.fail_next("sendMessage", chat_id=BOB.id, code=403,
                           description="Forbidden: bot can't initiate conversation with a user")
    with pytest.raises(RecipientBlocked):
        await telegram.sender.send(str(BOB.id), Reply(text="⏰ Revisit Tom"))
    assert (await identity_of(db, BOB)).blocked_at is not None
    # Telegram sends no my_chat_member for a first START: the /start it sends is the sign
    await one(telegram_api, BOB, "/start")
    assert (await identity_of(db, BOB)).blocked_at is None
    await telegram.sender.send(str(BOB.id), Reply(text="⏰ Revisit Tom"))
    assert (await telegram_api.take_one(BOB.id)).text == "⏰ Revisit Tom"


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@SQLITE_ONLY
async def test_one_chat_keeps_its_order_and_a_slow_chat_blocks_no_one(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database
) -> None:
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, CAROL, "/start")
    await one(telegram_api, ALICE, "/add Tom")
    for number in range(20):
        telegram_api.says(ALICE, f"/log Tom call: burst {number}")
    replies = await telegram_api.take(ALICE.id, 20)
    assert [r.text.split("“")[1].split("”")[0] for r in replies] == [f"burst {n}" for n in range(20)]
    assert await interactions(db) == [f"burst {n}" for n in range(20)]
    telegram_api.delay("sendMessage", 1.5, chat_id=ALICE.id)
    telegram_api.says(ALICE, "/help")
    telegram_api.says(CAROL, "/help")
    await telegram_api.take_one(CAROL.id, timeout=1.2)
    assert telegram_api.unread(ALICE.id) == []  # Alice's reply is still on its slow way
    await telegram_api.take_one(ALICE.id)
    processor = telegram.application.update_processor
    await telegram_api.wait_until(lambda: processor.chats_waiting == 0, what="chat locks dropped when idle")


# --- webhook mode --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("configured_secret", ["s3cret-Token_1", None])
@SQLITE_ONLY
async def test_webhook_checks_the_secret_token(telegram_rig: TelegramRig, telegram_api: TelegramStandIn,
                                               configured_secret: str | None) -> None:
    port = telegram_rig.settings().http_port
    url = f"http://127.0.0.1:{port}/telegram/hook"
    bot = await telegram_rig.start(telegram_rig.settings(http_port=port, telegram_webhook_url=url,
                                                         telegram_webhook_secret=configured_secret))
    [hook] = telegram_api.calls_of("setWebhook")
    assert hook.params["url"] == url and hook.params["allowed_updates"] == ["message", "callback_query",
                                                                           "my_chat_member", "chat_member"]
    assert hook.params["secret_token"] == bot.webhook_secret
    if configured_secret:
        assert bot.webhook_secret == configured_secret
    else:  # none configured: one made from the token, the same in every process of the bot
        assert len(bot.webhook_secret) >= 32 and telegram_api.token not in bot.webhook_secret
        assert bot.webhook_secret == derived_secret(telegram_api.token)
    assert not telegram_api.calls_of("deleteWebhook")
    assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, "/start")) == 200
    # answered once handled (a bot that dies first leaves it to Telegram to send again): the reply is out already
    assert [m.text for m in telegram_api.unread(ALICE.id) if "is ready" in m.text]
    assert "is ready" in (await telegram_api.take_one(ALICE.id)).text
    assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, "/help"), secret="wrong") == 403
    assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, "/help"), secret=None) == 403
    edited = payload("edited_message")
    del edited["update_id"]
    edited["edited_message"].update(chat=ALICE.chat, **{"from": ALICE.user})
    assert await telegram_api.deliver_webhook(edited) == 200
    assert await telegram_api.deliver_webhook(telegram_api.message(ALICE, "/tags")) == 200
    after = await telegram_api.take_one(ALICE.id)
    assert t("en", "help.title") not in after.text  # the refused /help and the edit did nothing
    assert telegram_api.unread(ALICE.id) == []


# --- failures -----------------------------------------------------------------------------------------------------

@SQLITE_ONLY
async def test_a_crashing_command_gets_an_apology_and_the_bot_carries_on(
    telegram: TelegramPlatform, telegram_api: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    await one(telegram_api, BOB, "/start")

    async def crash(ctx: Any, args: Any) -> Reply:
        raise RuntimeError("boom")

    monkeypatch.setitem(_BY_ALIAS, "tags", dataclasses.replace(COMMANDS["tags"], func=crash))
    assert (await one(telegram_api, BOB, "/tags")).text == apology("zh")
    original = telegram.core.handle
    calls = 0

    async def adapter_crash(request: Any) -> list[Reply]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return await original(request)

    monkeypatch.setattr(telegram.core, "handle", adapter_crash)
    assert (await one(telegram_api, BOB, "/help")).text == apology("zh")
    assert t("zh", "help.title") in (await one(telegram_api, BOB, "/help")).text


# --- correcting an entry (issue 15 item 9) ----------------------------------------------------------

@BOTH_DATABASES
async def test_the_cards_delete_button_removes_a_deal_and_the_tier_follows(
        telegram: TelegramPlatform, telegram_api: TelegramStandIn, db: Database) -> None:
    await one(telegram_api, ALICE, "/start")
    await one(telegram_api, ALICE, "/add Tom 13700000001 company=Acme")
    await one(telegram_api, ALICE, "/deal Tom 12000 licence")
    card = await one(telegram_api, ALICE, "/show Tom")
    assert "Latest deal: deal 1 · ¥12,000" in card.text
    telegram_api.press(ALICE, card, t("en", "button.entry_delete", entry="deal 1"))
    question = await telegram_api.take_one(ALICE.id)
    assert question.text.startswith("Remove deal 1 of #1 Tom · Acme?")
    telegram_api.press(ALICE, question, t("en", "entry.delete_yes"))
    removed = await telegram_api.take_one(ALICE.id)
    assert removed.method == "editMessageText" and removed.message_id == question.message_id
    assert removed.text.startswith("Removed from #1 Tom · Acme: deal 1 · ") and "Value tier: A (high value) → —" in removed.text
    assert await scalar(db, select(Customer.tier).where(Customer.number == 1)) is None
    assert await scalar(db, select(func.count()).select_from(Purchase)) == 0
    undone = await one(telegram_api, ALICE, "/undo")
    assert undone.text.startswith("Your last change (removed a deal, #1 Tom · Acme,")


@SQLITE_ONLY
async def test_updates_still_being_handled_are_handed_out_and_parsed_once(
    telegram_rig: TelegramRig, telegram_api: TelegramStandIn
) -> None:
    """With slow answers the updates are still being handled when the next poll goes: it confirms them
    all the same (they are kept in the database), so none is handed out again (issue 13: 9 hand-outs an
    update when the offset waited for the oldest one still being handled)."""
    bot = await telegram_rig.start()
    await one(telegram_api, ALICE, "/start")
    telegram_api.delay("sendMessage", 0.7, chat_id=ALICE.id)  # slow answers: the updates are a while in hand
    for n in range(3):
        telegram_api.says(ALICE, f"/log Tom call: number {n}" if n else "/add Tom")
    answers = await telegram_api.take(ALICE.id, 3, timeout=30)
    assert [a.text.split(":")[0] for a in answers][1:] == ["Logged for #1 Tom", "Logged for #1 Tom"]
    handed_out = sum(len(call.result) for call in telegram_api.calls_of("getUpdates") if call.result)
    assert bot.poller is not None and bot.poller.parsed == 4  # /start and the three
    assert handed_out == bot.poller.parsed

"""Slack end to end: the real Bolt app (SlackPlatform) receiving signed requests shaped as Slack sends
them, calling the Web API stand-in over HTTP, on a real SQLite file (and PostgreSQL where marked).

Every test's rig also checks that each answer of /slack/events came back within 3 seconds and that
Slack refused none of the blocks, views and modals the bot sent (tests/e2e/conftest.py).
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy import func, select, text

from bot.slack import EVENTS_PATH, SHORTCUTS
from bot.slack.blocks import MESSAGE_BLOCKS, message_blocks
from handlers.messages import Attachment, Button, Reply
from handlers.registry import COMMANDS, find_command
from reminders.delivery import Delivery, DeliveryError, NotInstalled, Outcome, RecipientBlocked, Route
from storage.models import Customer, CustomerTag, Identity, Interaction, Member, Purchase, Reminder, Workspace
from tests.chat import Chat
from tests.e2e.slack_api import (
    APP_TOKEN,
    BOT_USER,
    SlackApiStandIn,
    SlackPerson,
    block_problems,
    buttons,
    recorded,
    visible_text,
)
from tests.e2e.conftest import RecordedMarks
from tests.e2e.slack_socket import SocketModeStandIn

FIXTURES = Path(__file__).parents[1] / "fixtures"
sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def text_of(message: dict[str, Any]) -> str:
    return visible_text(message["blocks"])


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """The raw mrkdwn Slack parses in these blocks (where a mention or link could hide)."""
    texts = [b["text"] for b in blocks if isinstance(b.get("text"), dict)]
    texts += [f for b in blocks for f in b.get("fields", [])] + [e for b in blocks for e in b.get("elements", [])]
    return [t["text"] for t in texts if t.get("type") == "mrkdwn"]


async def count(db, model, *where) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def posts(api: SlackApiStandIn) -> int:
    """Everything the bot has said so far (messages, ephemeral messages, updates, modals, files, response URLs)."""
    return len(api.ok_calls("chat.postMessage", "chat.postEphemeral", "chat.update", "views.open",
                            "files.completeUploadExternal", "response_url"))


def opened(api: SlackApiStandIn) -> dict[str, Any]:
    """The modal the last views.open opened, as Slack stored it (with its view id)."""
    view_id = list(api.views)[-1]
    return api.views[view_id]


# --- the app manifest ------------------------------------------------------------------------------------------

def test_the_manifest_asks_for_exactly_what_the_adapter_serves() -> None:
    manifest = yaml.safe_load((Path(__file__).parents[2] / "slack-manifest.yml").read_text())
    features, settings = manifest["features"], manifest["settings"]
    urls = [settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"],
            *(c["url"] for c in features["slash_commands"])]
    assert {urlsplit(url).path for url in urls} == {EVENTS_PATH} and settings["interactivity"]["is_enabled"]
    assert [c["command"] for c in features["slash_commands"]] == ["/crm"] and features["slash_commands"][0]["usage_hint"]
    assert {s["callback_id"] for s in features["shortcuts"]} == set(SHORTCUTS)
    assert features["app_home"]["home_tab_enabled"] and features["app_home"]["messages_tab_enabled"]
    assert sorted(settings["event_subscriptions"]["bot_events"]) == ["app_home_opened", "app_mention",
                                                                     "app_uninstalled", "message.im",
                                                                     "tokens_revoked", "user_change"]
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == [
        "app_mentions:read", "chat:write", "commands", "files:read", "files:write", "im:history", "im:write",
        "team:read", "users:read"]
    assert settings["socket_mode_enabled"] is False


# --- HTTP mode: signatures, url_verification, health ---------------------------------------------------------

@sqlite_only
async def test_signatures_are_checked_and_url_verification_is_answered(slack, slack_rig, slack_api, db) -> None:
    wire = slack_rig.wire
    challenge = await wire.event(recorded("url_verification"))
    assert challenge.status == 200 and challenge.json() == {"challenge": recorded("url_verification")["challenge"]}

    alice = slack_rig.person("U0ALICE01", "Alice")
    forged = await wire.command(alice.command_form('add "Li Wei" 13800138000'), secret="not-the-signing-secret")
    stale = await wire.command(alice.command_form('add "Li Wei" 13800138000'), timestamp=int(time.time()) - 301)
    stale_event = await wire.event(alice.dm_event("add Wang Fang"), timestamp=int(time.time()) - 600)
    await slack_rig.settle()
    assert (forged.status, stale.status, stale_event.status) == (401, 401, 401)
    assert await count(db, Workspace) == 0 and await count(db, Customer) == 0
    assert [c.method for c in slack_api.calls] == []  # nothing was done, not even users.info

    async with slack_rig._http.get(wire.url.replace("/slack/events", "/healthz")) as health:
        assert (await health.json()) == {"status": "ok", "platforms": ["slack"]}

    recent = await wire.command(alice.command_form('add "Li Wei" 13800138000'), timestamp=int(time.time()) - 240)
    await slack_rig.settle()
    assert recent.status == 200 and await count(db, Customer) == 1  # within 5 minutes: fine


# --- /crm, the card, roles -----------------------------------------------------------------------------------

async def test_slash_command_posts_the_card_and_first_user_is_admin(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    bob = slack_rig.person("U0BOB0001", "Bob")
    answer = await alice.command('add "Li Wei" 13800138000 li.wei@example.com company=Acme')
    assert answer.text == ""  # acked with an empty body: the command itself isn't echoed
    card = alice.last()
    assert card["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "#1 Li Wei", "emoji": True},
                                 "block_id": card["blocks"][0]["block_id"]}
    assert "*Company*\nAcme" in mrkdwn_texts(card["blocks"]) and "Added #1 Li Wei · Acme." in text_of(card)
    assert [(e["text"]["text"], e["value"]) for _, e in buttons(card["blocks"])] == [
        ("Log", "flog:1"), ("Remind", "frem:1"), ("Tag", "ftag:1")]
    assert card["text"].startswith("#1 Li Wei\n")  # the notification fallback

    await bob.command("me")
    assert "*Role*\nrep" in text_of(bob.last())
    async with db.transaction() as session:
        roles = dict((await session.execute(select(Member.name, Member.role))).all())
        workspace = await session.scalar(select(Workspace))
    assert roles == {"Alice": "admin", "Bob": "rep"} and workspace.name == "team-t1"
    info = slack_api.calls_to("users.info")
    assert {c.params["user"] for c in info} == {"U0ALICE01", "U0BOB0001"} and len(info) == 2  # cached per user


# --- modals --------------------------------------------------------------------------------------------------

@sqlite_only
async def test_add_form_validates_in_the_modal_and_card_buttons_open_forms(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    form = alice.command_form("add")
    answer = await slack_rig.wire.command(form)
    await slack_rig.settle()
    opening = slack_api.ok_calls("views.open")[-1]
    assert opening.params["trigger_id"] == form["trigger_id"]
    assert opening.at - slack_api.triggers[form["trigger_id"]] < 3 and answer.seconds < 3
    view = opened(slack_api)
    assert view["title"]["text"] == "New customer" and view["callback_id"] == "crm_form"
    assert [b["block_id"] for b in view["blocks"]][:4] == ["field.name", "field.company", "field.title", "field.phone"]
    assert json.loads(view["private_metadata"])["channel"] == "C0SALES01"

    refused = await alice.submit(view, {"name": "Wang Fang", "phone": "12", "email": "not-an-email"})
    assert refused.json()["response_action"] == "errors"
    assert set(refused.json()["errors"]) == {"field.phone", "field.email"}
    assert "“12”" in refused.json()["errors"]["field.phone"]
    assert await count(db, Customer) == 0 and posts(slack_api) == 1  # nothing saved, nothing posted

    saved = await alice.submit(view, {"name": "Wang Fang", "phone": "13900139000", "company": "Acme"})
    assert saved.text == "" and refused.seconds < 3 and saved.seconds < 3
    card = alice.last()
    assert card["blocks"][0]["text"]["text"] == "#1 Wang Fang" and "+8613900139000" in text_of(card)

    await alice.press("Log", card)
    log_view = opened(slack_api)
    assert log_view["title"]["text"] == "Log: Wang Fang"
    assert json.loads(log_view["private_metadata"])["context"] == {"customer_id": "1"}
    await alice.submit(log_view, {"channel": "visit", "summary": "showed the samples", "next": "friday"})
    assert await count(db, Interaction, Interaction.channel == "visit") == 1
    assert "Logged for #1 Wang Fang · Acme: visit" in text_of(alice.last())

    await alice.press("Remind", card)
    remind_view = opened(slack_api)
    bad_date = await alice.submit(remind_view, {"when": "someday maybe"})
    assert list(bad_date.json()["errors"]) == ["field.when"]
    await alice.submit(remind_view, {"when": "tomorrow 10am", "note": "bring the price list"})
    assert "2026-11-19 Thu 10:00" in text_of(alice.last())

    await alice.press("Tag", card)
    await alice.submit(opened(slack_api), {"tags": "vip-lead trade-fair"})
    async with db.transaction() as session:
        tags = set(await session.scalars(select(CustomerTag.name).where(CustomerTag.auto.is_(False))))
    assert tags == {"vip-lead", "trade-fair"}

    await alice.command("log")  # no text: the form asks which customer too
    assert [b["block_id"] for b in opened(slack_api)["blocks"]][0] == "field.customer"


@sqlite_only
async def test_the_cards_edit_button_opens_the_entry_filled_in_and_saves_the_correction(slack, slack_rig, slack_api,
                                                                                        db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" 13800138000 company=Acme', channel=alice.dm)
    await alice.command("log #1 call: sent the quote", channel=alice.dm)
    await alice.command("show #1", channel=alice.dm)
    await alice.press("Edit log 1", alice.last(alice.dm))
    view = opened(slack_api)
    assert view["title"]["text"] == "log 1: Li Wei"
    fields = {b["block_id"]: b["element"] for b in view["blocks"] if b.get("type") == "input"}
    assert fields["field.summary"]["initial_value"] == "sent the quote"
    assert fields["field.channel"]["initial_option"]["value"] == "call"
    wrong = await alice.submit(view, {"channel": "call", "summary": "x" * 2001})
    assert list(wrong.json()["errors"]) == ["field.summary"]
    await alice.submit(view, {"channel": "visit", "summary": "sent the quote in person"})
    async with db.transaction() as session:
        assert (await session.execute(select(Interaction.channel, Interaction.summary))).one() == (
            "visit", "sent the quote in person")
    assert "Changed log 1 of #1 Li Wei · Acme: Channel: call → visit; Summary: sent the quote → sent the quote " \
           "in person." in text_of(alice.last(alice.dm))


@sqlite_only
async def test_a_form_the_core_cannot_answer_in_time_is_acked_and_answered_after(slack_rig, slack_api, db) -> None:
    await slack_rig.start(form_budget=0.3)
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command("add")
    view = opened(slack_api)
    release = asyncio.Event()

    async def hold_the_database() -> None:  # as a long import would: SQLite has one writer
        async with db.transaction() as session:
            await session.execute(text("UPDATE workspaces SET name = name"))
            await release.wait()

    holder = asyncio.create_task(hold_the_database())
    await asyncio.sleep(0.05)
    answer = await slack_rig.wire.interaction(alice.submission(view, {"name": "Wang Fang", "phone": "12"}))
    assert answer.status == 200 and answer.text == "" and 0.3 <= answer.seconds < 1  # the modal closes in time
    release.set()
    await holder
    await slack_rig.settle()
    assert "phone: “12” is too short for a phone number in CN" in text_of(alice.ephemerals()[-1])  # the errors, as a message
    assert await count(db, Customer) == 0


@sqlite_only
async def test_global_shortcut_opens_the_add_form_and_answers_in_the_dm(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.shortcut("crm_add")
    view = opened(slack_api)
    assert view["title"]["text"] == "New customer" and json.loads(view["private_metadata"]).get("channel") is None
    await alice.submit(view, {"name": "Zhou Jie"})
    assert alice.last(alice.dm)["blocks"][0]["text"]["text"] == "#1 Zhou Jie"


# --- mentions and direct messages ----------------------------------------------------------------------------

@sqlite_only
async def test_mentions_and_direct_messages(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    bob = slack_rig.person("U0BOB0001", "Bob")
    await alice.mention("add Zhao Lei 13700137000 company=Acme")
    assert alice.last()["blocks"][0]["text"]["text"] == "#1 Zhao Lei"

    await alice.say("find zhao")  # a DM: no /crm, no mention
    assert "#1 Zhao Lei · Acme" in text_of(alice.last(alice.dm))

    # Slack's encoding comes back as typed: entities, e-mail links, user mentions.
    await alice.say("add Ma &amp; Sons <mailto:ma@example.com|ma@example.com> company=Acme")
    await alice.say("log #2 call: met <@U0BOB0001> at the fair")
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.number == 2))
        summary = await session.scalar(select(Interaction.summary))
    assert (customer.name, customer.email) == ("Ma & Sons", "ma@example.com") and summary == "met @Bob at the fair"

    thread = alice.event("app_mention", text=f"<@{BOT_USER}> show #1", channel="C0SALES01",
                         thread_ts="1763449000.000100")
    await slack_rig.wire.event(thread)
    await slack_rig.settle()
    assert alice.last()["thread_ts"] == "1763449000.000100"

    before = posts(slack_api)
    edited = alice.event("message_changed", channel=alice.dm)
    from_a_bot = alice.event("message_im", text="add Spam Bot", channel=alice.dm, bot_id="B0OTHER01",
                             subtype="bot_message")
    for body in (edited, from_a_bot):
        assert (await slack_rig.wire.event(body)).status == 200
    await slack_rig.settle()
    assert posts(slack_api) == before and await count(db, Customer) == 2

    await alice.mention("add")  # a channel mention: no trigger_id, and answers would not arrive
    [offer] = [m for m in alice.ephemerals() if "Open the form" in json.dumps(m["blocks"])]
    opened = len(slack_api.ok_calls("views.open"))
    await alice.press("Open the form", offer)  # the press carries a trigger_id: the modal opens
    assert len(slack_api.ok_calls("views.open")) == opened + 1

    await bob.say("add")  # no trigger_id in a DM: the guided flow, one question at a time
    assert "Name" in text_of(bob.last(bob.dm))
    await bob.say("Qian Wei")
    await bob.press("Cancel", bob.last(bob.dm))
    assert "Cancelled" in text_of(bob.last(bob.dm)) and await count(db, Customer) == 2


@sqlite_only
async def test_a_book_first_used_from_the_dm_or_home_tab_is_named_after_the_workspace(slack, slack_rig, slack_api,
                                                                                      db) -> None:
    """Events carry no team name: team.info gives it (and a team.info that fails leaves the team id)."""
    slack_api.teams["T2"] = "Huadong Trade"
    carol = slack_rig.person("U0CAROL01", "Carol", team="T2")
    dave = slack_rig.person("U0DAVE001", "Dave", team="T3")
    await carol.open_home()
    await carol.say("team")
    await dave.say("team")
    assert "Members of “Huadong Trade”: 1" in text_of(carol.last(carol.dm))
    assert "Members of “T3”: 1" in text_of(dave.last(dave.dm))
    assert len(slack_api.calls_to("team.info")) == 2  # once per workspace


@sqlite_only
async def test_a_mention_of_the_app_under_another_bot_user_id_is_read_as_the_command(slack, slack_rig, slack_api,
                                                                                    db) -> None:
    """An org-wide install has a bot user per workspace: the event's `authorizations` name this one's."""
    carol = slack_rig.person("U0CAROL01", "Carol", team="T2", channel="C0OTHER01")
    body = carol.event("app_mention", text="<@UCRMBOT02> add Zhao Lei 13700137000", channel="C0OTHER01")
    body["authorizations"][0]["user_id"] = "UCRMBOT02"
    assert (await slack_rig.wire.event(body)).status == 200
    await slack_rig.settle()
    assert carol.last("C0OTHER01")["blocks"][0]["text"]["text"] == "#1 Zhao Lei"
    assert "UCRMBOT02" not in [c.params.get("user") for c in slack_api.calls_to("users.info")]


@sqlite_only
async def test_an_ephemeral_reply_to_someone_not_in_the_channel_goes_through_the_response_url(slack, slack_rig,
                                                                                              slack_api, db) -> None:
    """A shared channel, or one the person just left: chat.postEphemeral says user_not_in_channel."""
    alice = slack_rig.person("U0ALICE01", "Alice")
    slack_api.fail_next("chat.postEphemeral", "user_not_in_channel")
    await alice.command("show #9")
    answered = slack_api.ok_calls("response_url")[-1].params
    assert answered["response_type"] == "ephemeral" and "couldn't find" in visible_text(answered["blocks"])


@sqlite_only
async def test_which_one_is_asked_privately_and_the_choice_updates_the_question(slack, slack_rig, slack_api,
                                                                               db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    await alice.command('add "Li Wei" company=Globex')

    await alice.command("log li call: sent the quote")  # in the channel: only Alice sees the question
    question = alice.ephemerals()[-1]
    assert "Which one?" in text_of(question)
    await alice.press("Globex", question)
    replaced = slack_api.ok_calls("response_url")[-1].params
    assert replaced["replace_original"] is True and "→ #2 Li Wei · Globex" in visible_text(replaced["blocks"])
    assert "Logged for #2 Li Wei · Globex: call" in text_of(alice.last())
    assert await count(db, Interaction) == 1

    await alice.say("show li")  # in the DM: an ordinary message, updated in place
    question = alice.last(alice.dm)
    await alice.press("Acme", question)
    updated = slack_api.ok_calls("chat.update")[-1].params
    assert updated["ts"] == question["ts"] and "→ #1 Li Wei · Acme" in visible_text(updated["blocks"])
    assert alice.last(alice.dm)["blocks"][0]["text"]["text"] == "#1 Li Wei"


# --- every command family ------------------------------------------------------------------------------------

#: One invocation per registered command, typed as /crm in the DM with the app, and a piece of what it answers.
EVERY_COMMAND: list[tuple[str, str]] = [
    ('add "Li Wei" 13800138000 company=Acme', "Added #1 Li Wei"),
    ("add Wang Fang 13900139000", "Added #2 Wang Fang"),
    ("add Zhao Lei", "Added #3 Zhao Lei"),
    ("show #1", "#1 Li Wei"),
    ("edit #1 title=CEO", "Updated: Title"),
    ("find acme", "1 found"),
    ("log #1 call: sent the quote next: friday", "Logged for #1 Li Wei"),
    ("deal #1 12k first order", "Deal recorded: ¥12,000"),
    ("feedback #1 5 great service", "★★★★★"),
    ("entry #1 feedback 1 4 good service", "Changed feedback 1 of #1 Li Wei · Acme: Satisfaction: 5 → 4"),
    ("undo", "Undone: your correction of feedback 1 of #1 Li Wei · Acme"),
    ("remind #2 tomorrow 10am call back", "Reminder #2"),
    ("reminders", "Your pending reminders: 2"),
    ("done 1", "Reminder #1 done"),
    ("snooze 2 next monday", "Reminder #2 moved to 2026-11-23 Mon 09:00"),
    ("silent", "None of your customers"),
    ("tag #1 vip-lead", "#vip-lead"),
    ("tags", "#vip-lead — 1"),
    ("assign #2 Alice", "already belongs to Alice"),
    ("dupes", "No likely duplicates"),
    ("merge #2 #3", "Merge #3 Zhao Lei into #2 Wang Fang?"),
    ("delete #3", "Delete #3 Zhao Lei?"),
    ("restore #3", "isn't deleted, so there is nothing to restore"),
    ("forget #3", "Erase #3 Zhao Lei for good?"),
    ("history #1", "History of #1 Li Wei"),
    ("start", "Your role: admin"),
    ("team", "Alice (you) · admin"),
    ("invite", "Invite code for"),
    ("join ABCDEF", "unknown or has expired"),
    ("role Alice admin", "already admin"),
    ("link", "Your link code"),
    ("settings", "Settings of"),
    ("me", "*Accounts*\nSlack"),
    ("import", "send me the CSV file in a direct message"),
    ("export", "Customers exported: 3"),
    ("digest", "Daily digest"),
    ("help", "What I can do"),
    ("today", "My day · Alice"),
    ("cancel", "Cancelled"),
]


@sqlite_only
async def test_every_registered_command_works_through_slash_commands(slack, slack_rig, slack_api, db) -> None:
    covered = {find_command(text.split()[0]).name for text, _ in EVERY_COMMAND}
    assert covered >= set(COMMANDS), f"commands without a Slack test: {sorted(set(COMMANDS) - covered)}"
    alice = slack_rig.person("U0ALICE01", "Alice")
    for text, expected in EVERY_COMMAND:
        before = len(slack_api.calls)
        await alice.command(text, channel=alice.dm)
        said = slack_api.calls[before:]
        shown = "\n".join(visible_text(c.params.get("blocks", [])) for c in said if c.error is None)
        assert expected in shown, (text, shown)
        assert "something went wrong" not in shown, text
    exported = [f for f in slack_api.files.values() if f.name.startswith("customers-")]
    assert exported and exported[0].content.startswith(b"\xef\xbb\xbf") and exported[0].channel == alice.dm

    await alice.command("delete #3", channel=alice.dm)  # a confirmation's buttons edit the question in place
    question = alice.last(alice.dm)
    await alice.press("Delete", question)
    assert await count(db, Customer, Customer.deleted_at.is_not(None)) == 1
    assert slack_api.ok_calls("chat.update")[-1].params["ts"] == question["ts"]

    await alice.command("show #1", channel=alice.dm)  # the card's Delete button on an entry asks the same way
    await alice.press("Delete deal 1", alice.last(alice.dm))
    question = alice.last(alice.dm)
    assert "Remove deal 1 of #1 Li Wei · Acme?" in text_of(question)
    await alice.press("Remove", question)
    assert await count(db, Purchase) == 0
    assert slack_api.ok_calls("chat.update")[-1].params["ts"] == question["ts"]
    assert "Removed from #1 Li Wei · Acme: deal 1" in text_of(alice.last(alice.dm))


# --- files: import and export --------------------------------------------------------------------------------

@sqlite_only
async def test_import_a_gbk_csv_shared_in_the_dm_and_export_with_a_bom(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command("import")  # a slash command can't carry a file: it says how
    assert "send me the CSV file in a direct message" in text_of(alice.ephemerals()[-1])

    gbk = (FIXTURES / "customers-gbk.csv").read_bytes()
    await alice.share("客户名单.csv", gbk, text="import")
    assert slack_api.ok_calls("download")  # fetched with the bot token (the stand-in refuses anything else)
    summary = alice.last(alice.dm)
    assert "Import of 客户名单.csv" in text_of(summary)
    async with db.transaction() as session:
        names = set(await session.scalars(select(Customer.name)))
    assert {"李伟", "王芳"} <= names

    await alice.share("more.csv", "name,phone\nSun Li,13600136000\n".encode(), text="")  # no text: still an import
    assert await count(db, Customer, Customer.name == "Sun Li") == 1
    await alice.share("notes.csv", b"name\nNobody\n", text="log #1 call: sent the file")  # not an import: no download
    assert len(slack_api.ok_calls("download")) == 2

    await alice.command("export")  # in the channel: the whole book goes to the asker's DM only, files.upload v2
    calls = [c.method for c in slack_api.calls if c.method.startswith("files.") or c.method == "upload"]
    assert calls[-3:] == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    completed = slack_api.ok_calls("files.completeUploadExternal")[-1].params
    assert completed["channel_id"] == "DU0ALICE01"
    assert not [c for c in slack_api.ok_calls("chat.postMessage") if c.params.get("channel") == "C0SALES01"
                and "exported" in c.params.get("text", "")]
    exported = slack_api.files[completed["files"][0]["id"]]
    assert exported.content.startswith(b"\xef\xbb\xbf") and "李伟" in exported.content.decode("utf-8-sig")


@sqlite_only
async def test_a_shared_file_is_read_from_the_link_the_event_gives(slack, slack_rig, slack_api, db) -> None:
    """Only url_private in the event: read it, no files.info needed; only the id: ask files.info."""
    alice = slack_rig.person("U0ALICE01", "Alice")
    linked = slack_api.host_file("leads.csv", b"name,phone\nSun Li,13600136000\n")
    del linked["url_private_download"]
    await slack_rig.wire.event(alice.event("message_file_share", text="import", channel=alice.dm, files=[linked]))
    await slack_rig.settle()
    assert await count(db, Customer, Customer.name == "Sun Li") == 1 and not slack_api.calls_to("files.info")

    hidden = slack_api.host_file("more.csv", b"name,phone\nQian Bo,13700137000\n")
    await slack_rig.wire.event(alice.event("message_file_share", text="import", channel=alice.dm,
                                           files=[{"id": hidden["id"], "file_access": "check_file_info"}]))
    await slack_rig.settle()
    assert await count(db, Customer, Customer.name == "Qian Bo") == 1
    assert [c.params["file"] for c in slack_api.ok_calls("files.info")] == [hidden["id"]]


@sqlite_only
async def test_a_private_answer_in_a_channel_says_its_file_went_to_the_dm(slack, slack_rig, slack_api, db,
                                                                          clock) -> None:
    """Slack has no files only one person sees: the Monday chart of /crm digest goes to the DM, and the
    answer in the channel says so."""
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    clock.advance(days=5)  # Monday 23 November: the weekly digest, with its chart
    await alice.command("digest")
    answer = alice.ephemerals()[-1]
    assert "Weekly digest" in text_of(answer) and "The file is in your direct messages with me" in text_of(answer)
    assert slack_api.ok_calls("files.completeUploadExternal")[-1].params["channel_id"] == alice.dm

    await alice.command("digest", channel=alice.dm)  # in the DM, the chart comes along: nothing to point at
    assert "The file is in your direct messages" not in text_of(alice.last(alice.dm))


@sqlite_only
async def test_a_long_import_shows_progress_in_one_edited_message(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    rows = "\n".join(f"Customer {i},139{i:08d}" for i in range(1200))
    await alice.share("big.csv", f"name,phone\n{rows}\n".encode(), text="import")
    progress = [c.method for c in slack_api.ok_calls("chat.postMessage", "chat.update")
                if "Importing" in c.params["text"]]
    assert progress[0] == "chat.postMessage" and set(progress[1:]) == {"chat.update"}
    shown = [text_of(m) for m in alice.messages(alice.dm) if "Importing" in m["text"]]
    assert shown == ["Importing… 1,200/1,200 rows"]  # one message, edited as the import went on
    assert await count(db, Customer) == 1200


# --- App Home ------------------------------------------------------------------------------------------------

async def test_app_home_shows_my_day_and_its_buttons_work(slack, slack_rig, slack_api, db, clock) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    await alice.command('add "Wang Fang" company=Globex')
    await alice.command("remind #1 tomorrow 10am send the quote")
    clock.advance(days=35)  # both silent (no contact for 35 days, cadence 30), the reminder overdue
    await alice.command("remind #2 in 2 hours call back")
    await alice.command("log #2 call: asked about prices")

    await alice.open_home()
    home = alice.home()
    shown = text_of(home)
    assert home["blocks"][0]["text"]["text"] == "My day · Alice"
    assert "2 due today · 1 silent customers" in shown
    assert "⚠ Overdue · Reminder #1: #1 Li Wei · Acme" in shown and "Reminder #2: #2 Wang Fang · Globex" in shown
    assert "Gone silent: 1" in shown and "#1 Li Wei · Acme · silent 35 days" in shown
    assert "call · #2 Wang Fang · Globex: asked about prices" in shown
    labels = [e["text"]["text"] for _, e in buttons(home["blocks"])]
    assert labels.count("Done") == 2 and "Log #1" in labels and "➕ Add customer" in labels

    await alice.press("Done", home)  # the first reminder, the overdue one
    async with db.transaction() as session:
        status = dict((await session.execute(select(Reminder.number, Reminder.status))).all())
    assert status == {1: "done", 2: "pending"}
    home = alice.home()
    assert home["blocks"][0]["type"] == "context" and "✓ Reminder #1 done." in text_of(home)
    assert "Reminder #1:" not in text_of(home) and "1 due today" in text_of(home)

    await alice.press("Log #1", home)  # a form from the Home tab; submitting it redraws the tab
    log_view = opened(slack_api)
    assert json.loads(log_view["private_metadata"])["home"] is True
    published = len(slack_api.ok_calls("views.publish"))
    await alice.submit(log_view, {"channel": "visit", "summary": "back in touch"})
    assert len(slack_api.ok_calls("views.publish")) == published + 1
    assert "Gone silent: 0" in text_of(alice.home())
    assert "Logged for #1 Li Wei · Acme: visit" in text_of(alice.last(alice.dm))  # the outcome, in the DM

    await alice.press("➕ Add customer", alice.home())
    assert opened(slack_api)["title"]["text"] == "New customer"


@sqlite_only
async def test_my_day_is_one_message_and_a_press_redraws_only_its_part(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    for minutes in (20, 30, 40):
        await alice.command(f"remind #1 in {minutes} minutes call back {minutes}")
    posted = len(slack_api.ok_calls("chat.postMessage"))
    await alice.command("today")
    assert len(slack_api.ok_calls("chat.postMessage")) == posted + 1
    day = alice.last()
    assert "My day · Alice" in text_of(day) and "Gone silent: 0" in text_of(day) and "My latest activity" in text_of(day)

    await alice.press("Done", day, nth=1)  # the second reminder's
    redrawn = alice.last()
    assert redrawn["ts"] == day["ts"] and "✓ Reminder #2 done." in text_of(redrawn)
    assert text_of(redrawn).count("Reminder #1:") == 1 and text_of(redrawn).count("Reminder #3:") == 1
    assert [e["text"]["text"] for _, e in buttons(redrawn["blocks"])].count("Done") == 2
    async with db.transaction() as session:
        status = dict((await session.execute(select(Reminder.number, Reminder.status))).all())
    assert status == {1: "pending", 2: "done", 3: "pending"}


@sqlite_only
async def test_a_press_on_the_home_tab_is_answered_on_the_home_tab(slack, slack_rig, slack_api, db) -> None:
    """What a press sends to the DM is named on top of the tab; an error is shown there, not in the DM."""
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    for minutes in (20, 30, 40, 50, 60, 70):
        await alice.command(f"remind #1 in {minutes} minutes call back")
    await alice.open_home()
    stale = alice.home()
    await alice.press("All my reminders", stale)
    assert "Your pending reminders: 6" in text_of(alice.last(alice.dm))
    assert "Sent to the Messages tab: Your pending reminders: 6" in visible_text(alice.home()["blocks"][:1])

    await alice.command("done 1")
    in_dm = len(alice.messages(alice.dm))
    await alice.press("Done", stale)  # reminder #1, already done from the channel
    assert len(alice.messages(alice.dm)) == in_dm
    assert "already" in visible_text(alice.home()["blocks"][:1])

    await alice.press("➕ Add customer", alice.home())
    await alice.submit(opened(slack_api), {"name": "Zhao Min"})
    assert "Sent to the Messages tab: #2 Zhao Min" in visible_text(alice.home()["blocks"][:1])


# --- redelivery, rate limits, deliveries ---------------------------------------------------------------------

async def test_an_event_slack_retries_is_applied_once(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    event = alice.dm_event("log #1 call: sent the quote")
    first = await slack_rig.wire.event(event)
    again = await slack_rig.wire.event(event, retry=1)
    await slack_rig.settle()
    assert first.status == again.status == 200
    assert await count(db, Interaction) == 1
    assert len([m for m in alice.messages(alice.dm) if "Logged for" in text_of(m)]) == 1


@sqlite_only
async def test_a_rate_limited_post_waits_out_retry_after(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    slack_api.fail_next("chat.postMessage", "ratelimited", retry_after=1)
    answer = await slack_rig.wire.command(alice.command_form('add "Li Wei" company=Acme'))
    await slack_rig.settle()
    refused, sent = slack_api.calls_to("chat.postMessage")
    assert (refused.status, refused.error, sent.error) == (429, "ratelimited", None)
    assert sent.at - refused.at >= 1.0 and answer.seconds < 1.0
    assert alice.last()["blocks"][0]["text"]["text"] == "#1 Li Wei"


@sqlite_only
async def test_a_delivery_is_marked_on_the_wire_as_the_posting_request_starts(slack_rig, slack_api, db) -> None:
    """What reminders.claims reads after a crash: marked when chat.postMessage (or the upload's
    completion) starts, never for the calls before it, and not for replies to commands."""
    platform = await slack_rig.start(rate_limit_retries=0)
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command("me")
    delivery = Delivery(db, {"slack": platform.sender}, clock=lambda: datetime.now(timezone.utc))

    class Marks:
        def __init__(self) -> None:
            self.seen: list[list[str]] = []

        async def on_wire(self) -> None:
            self.seen.append([call.method for call in slack_api.calls])

        async def not_on_wire(self) -> None:
            raise AssertionError("nothing failed")

    marks = Marks()
    before = len(slack_api.calls)
    image = Reply(text="", image=Attachment("week.png", b"\x89PNG...", "image/png"))
    result = await delivery.deliver([Route("slack", "U0ALICE01")], [Reply(text="Call Tom"), image], marks=marks)
    assert result.outcome is Outcome.SENT and len(marks.seen) == 2
    assert marks.seen[0][before:] == []  # chat.postMessage had not reached the stand-in yet
    assert "files.getUploadURLExternal" in marks.seen[1] and "files.completeUploadExternal" not in marks.seen[1][before:]
    await alice.command("me")  # a reply to a command: no delivery under way, no mark
    assert len(marks.seen) == 2


@sqlite_only
async def test_a_delivery_waiting_out_a_429_is_not_on_the_wire_while_it_waits(slack_rig, slack_api, db) -> None:
    """A kill during the wait must send it again: the 429 takes the mark back until the retry leaves."""
    platform = await slack_rig.start()
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command("me")
    delivery = Delivery(db, {"slack": platform.sender}, clock=lambda: datetime.now(timezone.utc))

    marks = RecordedMarks(lambda: len(slack_api.calls_to("chat.postMessage")))
    before = len(slack_api.calls_to("chat.postMessage"))
    slack_api.fail_next("chat.postMessage", "ratelimited", retry_after=1)
    result = await delivery.deliver([Route("slack", "U0ALICE01")], [Reply(text="Call Tom")], marks=marks)
    assert result.outcome is Outcome.SENT
    assert marks.events == [("on wire", before), ("failed", before + 1), ("on wire", before + 1)]
    assert text_of(slack_api.ok_calls("chat.postMessage")[-1].params) == "Call Tom"


async def test_sender_delivers_to_the_dm_and_maps_failures(slack_rig, slack_api, db) -> None:
    platform = await slack_rig.start(rate_limit_retries=0)
    alice = slack_rig.person("U0ALICE01", "Alice")
    gone = slack_rig.person("U0GONE001", "Gone")
    await alice.command("me")
    await gone.command("me")
    sender = platform.sender
    assert sender.platform == "slack"

    reminder = Reply(text="Reminder #1: #1 Li Wei on 2026-11-19 Thu 10:00",
                     buttons=[[Button("Done", "rdone:1", "primary"), Button("Snooze 1 day", "rsnz:1:1d")]])
    await sender.send("U0ALICE01", reminder)
    sent = slack_api.ok_calls("chat.postMessage")[-1]
    assert sent.params["channel"] == "U0ALICE01" and "Reminder #1" in sent.params["text"]
    assert [e["value"] for _, e in buttons(sent.params["blocks"])] == ["rdone:1", "rsnz:1:1d"]

    await sender.send("U0ALICE01", Reply(text="Weekly chart", image=Attachment("week.png", b"\x89PNG...", "image/png")))
    assert slack_api.ok_calls("conversations.open")[-1].params["users"] == "U0ALICE01"
    assert slack_api.ok_calls("files.completeUploadExternal")[-1].params["channel_id"] == "DU0ALICE01"

    slack_api.fail_next("chat.postMessage", "ratelimited", retry_after=7)
    with pytest.raises(DeliveryError) as limited:
        await sender.send("U0ALICE01", reminder)
    assert not isinstance(limited.value, RecipientBlocked) and limited.value.retry_after == 7.0

    slack_api.fail_next("chat.postMessage", "fatal_error")
    with pytest.raises(DeliveryError) as failed:
        await sender.send("U0ALICE01", reminder)
    assert not isinstance(failed.value, RecipientBlocked)

    slack_api.fail_next("chat.postMessage", "Service Unavailable", status=503, retry_after=30)
    with pytest.raises(DeliveryError) as unavailable:  # a proxy's text page, not Slack's JSON
        await sender.send("U0ALICE01", reminder)
    assert not isinstance(unavailable.value, RecipientBlocked) and unavailable.value.retry_after == 30.0

    slack_api.fail_next("chat.postMessage", "account_inactive")  # the bot's workspace is gone: nobody blocked us
    with pytest.raises(NotInstalled):
        await sender.send("U0ALICE01", reminder)
    slack_api.fail_next("chat.postMessage", "user_disabled")
    with pytest.raises(RecipientBlocked):
        await sender.send("U0GONE001", reminder)
    with pytest.raises(RecipientBlocked):
        await sender.send("U0NOBODY1", reminder)  # never existed: channel_not_found
    async with db.transaction() as session:
        blocked = dict((await session.execute(select(Identity.external_id, Identity.blocked_at))).all())
    assert blocked["U0GONE001"] is not None and blocked["U0ALICE01"] is None


# --- tenancy, language, escaping, limits ---------------------------------------------------------------------

async def test_two_slack_workspaces_never_see_each_others_customers(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice", team="T1")
    carol = slack_rig.person("U0CAROL01", "Carol", team="T2", channel="C0OTHER01")
    await alice.command('add "Li Wei" 13800138000 company=Acme')
    await carol.command("find li")
    assert "No customers match “li”" in text_of(carol.last("C0OTHER01"))
    for ref in ("#1", "13800138000", "li wei"):
        await carol.command(f"show {ref}")
        assert "couldn't find" in text_of(carol.ephemerals()[-1]), ref
    forged = {"channel": "C0OTHER01", "ts": "1763449999.000001", "blocks": [
        {"type": "actions", "block_id": "f", "elements": [
            {"type": "button", "action_id": "crm.0", "text": {"type": "plain_text", "text": "Show"}, "value": "show:1"},
            {"type": "button", "action_id": "crm.1", "text": {"type": "plain_text", "text": "Log"},
             "value": "flog:1"}]}]}
    opened_before = len(slack_api.ok_calls("views.open"))
    for label in ("Show", "Log"):
        await carol.press(label, forged)
        assert "That button has expired" in text_of(carol.ephemerals()[-1]), label
    assert len(slack_api.ok_calls("views.open")) == opened_before
    assert "Li Wei" not in "\n".join(text_of(m) for m in carol.messages("C0OTHER01") + carol.ephemerals())
    async with db.transaction() as session:
        spaces = (await session.execute(
            select(Workspace.name, func.count(Member.id)).join(Member).group_by(Workspace.name))).all()
    assert sorted(spaces) == [("team-t1", 1), ("team-t2", 1)]


@sqlite_only
async def test_a_guest_from_another_organisation_in_a_shared_channel_never_enters_this_book(slack, slack_rig,
                                                                                            slack_api, db) -> None:
    """Slack Connect: the event names the installing workspace; the guest's own is event.user_team."""
    alice = slack_rig.person("U0ALICE01", "Alice", team="T1")
    carol = slack_rig.person("U0CAROL01", "Carol", team="T2")
    await alice.command('add "Li Wei" 13800138000 company=Acme')
    body = carol.event("app_mention", text=f"<@{BOT_USER}> find li", channel="C0SALES01", user_team="T2")
    body["team_id"] = body["context_team_id"] = body["authorizations"][0]["team_id"] = "T1"
    body["is_ext_shared_channel"] = True
    await slack_rig.wire.event(body)
    await slack_rig.settle()
    assert "No customers match “li”" in text_of(alice.last())
    async with db.transaction() as session:
        books = dict((await session.execute(select(Member.name, Member.workspace_id))).all())
    assert set(books) == {"Alice", "Carol"} and books["Alice"] != books["Carol"]


@sqlite_only
async def test_a_chinese_slack_user_gets_chinese(slack, slack_rig, slack_api, db) -> None:
    bob = slack_rig.person("U0BOB0001", "Bob", locale="zh-CN", tz="Asia/Shanghai")
    await bob.command("help")
    assert "我能做什么" in text_of(bob.last())
    await bob.command("添加 李伟 13800138000 公司=华东贸易")  # UTF-8 in a signed form body
    assert bob.last()["blocks"][0]["text"]["text"] == "#1 李伟"
    await bob.command("show #9")
    assert "没有找到" in text_of(bob.ephemerals()[-1])
    await bob.command("add")
    view = opened(slack_api)
    assert view["title"]["text"] == "新客户" and view["close"]["text"] == "取消"
    refused = await bob.submit(view, {"name": "李伟", "phone": "12"})
    assert "12" in refused.json()["errors"]["field.phone"] and "电话" in refused.json()["errors"]["field.phone"]
    await bob.command("import")
    assert "私信" in text_of(bob.ephemerals()[-1])


@sqlite_only
async def test_replies_name_commands_as_a_slack_user_types_them(slack, slack_rig, slack_api, db) -> None:
    """`/remind`, `/invite`, `/join`, `/me`, `/feedback` are Slack's own commands: ours are `/crm remind` …"""
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command("help")
    shown = text_of(alice.last())
    assert "/crm remind — " in shown and "/crm invite — " in shown and "/crm help <command> for details" in shown
    assert set(re.findall(r"(?<![\w/])/(\w+)", shown)) == {"crm"}
    await alice.command("show #9")
    assert "Try /crm find #9 to search." in text_of(alice.ephemerals()[-1])
    await alice.command("log")
    refused = await alice.submit(opened(slack_api), {"customer": "nobody", "summary": "met"})
    assert "Try /crm find nobody to search." in refused.json()["errors"]["field.customer"]
    await alice.command("add Zhao 13700137000")
    await alice.command("log #1 note: see https://acme.example/log and /tmp/export")  # user text, no command
    assert "“see https://acme.example/log and /tmp/export”" in text_of(alice.last())


@sqlite_only
async def test_user_text_is_escaped_and_never_mentions_anyone(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    typed = "<!channel> & *bold* <@U0ALICE01>"
    slack_encoded = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    await alice.say(f'add "{slack_encoded}" company=&lt;https://evil.example|Acme&gt;')
    await alice.say(f"log #1 call: {slack_encoded} <!here>")
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer))
        summary = await session.scalar(select(Interaction.summary))
    assert customer.name == typed and customer.company == "<https://evil.example|Acme>"
    assert summary == f"{typed} @here"
    for message in alice.messages(alice.dm):
        for raw in mrkdwn_texts(message["blocks"]) + [message["text"]]:
            assert "<!" not in raw and "<@" not in raw and "<http" not in raw, raw
    card, logged = alice.messages(alice.dm)[:2]
    assert "&lt;!channel&gt; &amp; *bold* &lt;@U0ALICE01&gt;" in card["text"]
    assert typed in text_of(card) and "<https://evil.example|Acme>" in text_of(card)
    assert f"{typed} @here" in text_of(logged)
    assert all(b.get("verbatim") for b in [t for m in alice.messages(alice.dm) for t in
                                           [b.get("text") for b in m["blocks"]] if t and t["type"] == "mrkdwn"])


@sqlite_only
async def test_long_lists_stay_within_block_kit_limits(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer))
        session.add_all(CustomerTag(workspace_id=customer.workspace_id, customer_id=customer.id, name=f"tag-{i:03d}",
                                    auto=False) for i in range(400))
    await alice.command("tags")
    listing = alice.last()
    assert "#tag-000 — 1" in text_of(listing) and "… and 350 more" in text_of(listing)

    long_list = Reply(title="x" * 400, text="long line " * 900, items=[f"customer {i}" for i in range(9000)],
                      buttons=[[Button(f"Pick #{i} " + "·" * 90, f"pick:tok:{i}")] for i in range(120)])
    blocks = message_blocks(long_list, "en")
    assert len(blocks) == MESSAGE_BLOCKS and block_problems(blocks, MESSAGE_BLOCKS) == []
    assert blocks[0]["text"]["text"] == "x" * 149 + "…"
    assert len(buttons(blocks)) == 120  # packed 25 to an actions block, none lost
    shown_items = visible_text(blocks).count("• customer ")
    assert f"…and {9000 - shown_items} more not shown." in visible_text(blocks)
    await slack.sender.send("U0ALICE01", long_list)  # and Slack takes it
    assert slack_api.calls_to("chat.postMessage")[-1].error is None


# --- Socket Mode ---------------------------------------------------------------------------------------------

@sqlite_only
async def test_socket_mode_acks_and_answers_commands_events_and_buttons(slack_rig, slack_api, db) -> None:
    socket = await SocketModeStandIn().start()
    slack_api.socket_url = socket.url
    try:
        platform = await slack_rig.start(slack_rig.settings(slack_app_token=APP_TOKEN, slack_signing_secret=None))
        assert slack_api.ok_calls("apps.connections.open") and socket.connections == 1  # with the app token
        alice = SlackPerson(slack_api, None, slack_rig.settle, user="U0ALICE01", name="Alice")

        ack = await socket.send("slash_commands", alice.command_form('add "Li Wei" company=Acme'))
        await platform.drain()
        assert ack.seconds < 3 and ack.payload is None  # acked with nothing to show: the card follows
        card = alice.last()
        assert card["blocks"][0]["text"]["text"] == "#1 Li Wei"

        ack = await socket.send("events_api", alice.dm_event("log #1 call: sent the quote"))
        await platform.drain()
        assert ack.seconds < 3 and "Logged for #1 Li Wei" in text_of(alice.last(alice.dm))

        button = next(e for _, e in buttons(card["blocks"]) if e["text"]["text"] == "Remind")
        press = recorded("block_actions") | {
            "trigger_id": slack_api.trigger(), "message": {k: v for k, v in card.items() if k != "channel"},
            "container": {"type": "message", "message_ts": card["ts"], "channel_id": "C0SALES01",
                          "is_ephemeral": False},
            "actions": [{"action_id": button["action_id"], "block_id": "b", "text": button["text"],
                         "value": button["value"], "type": "button", "action_ts": "1.1"}]}
        ack = await socket.send("interactive", press)
        await platform.drain()
        assert ack.seconds < 3 and opened(slack_api)["title"]["text"] == "Remind: Li Wei"

        await slack_rig.stop(platform)
        for _ in range(300):  # stopping closes the websocket
            if not socket.connected.is_set():
                break
            await asyncio.sleep(0.01)
        assert not socket.connected.is_set() and socket.connections == 1
    finally:
        await socket.stop()


# --- one person on two platforms -----------------------------------------------------------------------------

async def test_link_a_slack_account_with_a_telegram_account(slack, slack_rig, slack_api, db) -> None:
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.command('add "Li Wei" company=Acme')
    await alice.command("link")  # in a channel: refused, the code would be seen by all
    assert "private chat" in text_of(alice.ephemerals()[-1])
    await alice.command("link", channel=alice.dm)
    code = text_of(alice.last(alice.dm)).split("Your link code: ")[1].split()[0]

    telegram = Chat(slack.core, user_id="5123456789", name="Alice W", platform="telegram", space=None)
    await telegram.say(f"/link {code}")
    assert "Linked" in telegram.text
    await telegram.say("/find acme")
    assert "#1 Li Wei · Acme" in telegram.text
    async with db.transaction() as session:
        accounts = (await session.execute(select(Identity.platform, Identity.member_id))).all()
    assert len(accounts) == 2 and len({member for _, member in accounts}) == 1


@sqlite_only
async def test_the_import_mapping_modal_changes_a_column_before_anything_is_written(slack, slack_rig, slack_api,
                                                                                     db) -> None:
    """A file with a column no rule knows: the preview's Change opens a modal with one select per column;
    its signed view_submission shows the new preview, and Import lands the rows as mapped."""
    alice = slack_rig.person("U0ALICE01", "Alice")
    await alice.share("customers.csv", (FIXTURES / "customers-utf8-bom.csv").read_bytes())
    preview = alice.last(alice.dm)
    assert "Favourite colour" in text_of(preview) and await count(db, Customer) == 0

    await alice.press("Change", preview)
    view = opened(slack_api)
    assert view["title"]["text"] == "Columns of the file" and json.loads(view["private_metadata"])["form"] == "importmap"
    colour = next(b for b in view["blocks"] if b["label"]["text"] == "Favourite colour")
    assert colour["block_id"] == "field.9" and colour["element"]["initial_option"]["value"] == "unused"
    answer = await alice.submit(view, {"9": "notes"})  # every other select sent back as it was
    assert answer.seconds < 3 and await count(db, Customer) == 0  # a new preview, nothing written yet
    changed = alice.last(alice.dm)
    assert changed["ts"] != preview["ts"] and "Notes ← Favourite colour" in text_of(changed)
    assert "I don't know these columns" not in text_of(changed)

    await alice.press("Import", changed)
    await slack_rig.settle()
    assert "Rows read: 4. Added: 4;" in text_of(alice.last(alice.dm))
    async with db.transaction() as session:
        wendy = await session.scalar(select(Customer).where(Customer.name == "Wendy Wang"))
    assert "green" in (wendy.prefs or "")

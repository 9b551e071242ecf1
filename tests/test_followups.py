"""/remind, /reminders, /done, /snooze, /silent and their buttons — on SQLite and PostgreSQL.

Where a test needs a tier or a last contact it writes those derived columns
straight into the database: what is under test here is the cadence arithmetic,
not how tiers are scored or contacts logged (other modules' tests).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from handlers.i18n import t
from handlers.home import SUMMARY_CHARS as SHOWN_SUMMARY_CHARS
from storage import followups
from storage.models import AuditEntry, Customer, Identity, Member, Reminder, Workspace
from tests.chat import Chat
from tests.conftest import Clock

UTC = timezone.utc
#: What a rep is told when a manager's right is needed (core's wording, in Chinese).
MANAGERS_ONLY_ZH = t("zh", "error.forbidden", role=t("zh", "role.manager"))


# --- helpers ----------------------------------------------------------------------------

async def member_of(chat: Chat) -> Member:
    async with chat.core.db.transaction() as session:
        return await session.scalar(
            select(Member).join(Identity, Identity.member_id == Member.id)
            .where(Identity.external_id == chat.user_id, Identity.platform == chat.platform)
        )


async def set_role(chat: Chat, role: str) -> None:
    member = await member_of(chat)
    async with chat.core.db.transaction() as session:
        (await session.get(Member, member.id)).role = role


async def customer(chat: Chat, number: int) -> Customer:
    member = await member_of(chat)
    async with chat.core.db.transaction() as session:
        return await session.scalar(
            select(Customer).where(Customer.workspace_id == member.workspace_id, Customer.number == number))


async def set_customer(chat: Chat, number: int, **values: Any) -> None:
    """Write columns of customer #number directly (derived ones included)."""
    member = await member_of(chat)
    async with chat.core.db.transaction() as session:
        row = await session.scalar(
            select(Customer).where(Customer.workspace_id == member.workspace_id, Customer.number == number))
        for name, value in values.items():
            setattr(row, name, value)


async def reminder(chat: Chat, number: int) -> Reminder:
    member = await member_of(chat)
    async with chat.core.db.transaction() as session:
        return await session.scalar(
            select(Reminder).where(Reminder.workspace_id == member.workspace_id, Reminder.number == number))


async def reminders_count(chat: Chat) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Reminder)) or 0


async def audit_actions(chat: Chat) -> list[str]:
    async with chat.core.db.transaction() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def press_payload(chat: Chat, action: str) -> None:
    await chat.send(chat.request(action=action))


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- /remind ------------------------------------------------------------------------------

async def test_remind_reads_english_and_chinese_dates(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/remind 李伟 friday 3pm send the quote")
    assert alice.text == "Reminder #1: #1 李伟 · Acme on 2026-11-20 Fri 15:00 — send the quote"
    first = await reminder(alice, 1)
    assert first.due_at == at(2026, 11, 20, 7, 0) and first.explicit_time
    assert first.note == "send the quote" and first.member_id == (await member_of(alice)).id
    assert (await customer(alice, 1)).next_followup_at == first.due_at  # saved() ran

    await bob.say("/remind 李伟 下周五 带样品")
    assert bob.text == "提醒 #2：#1 李伟 · Acme，2026-11-27 周五 09:00 — 带样品"
    second = await reminder(bob, 2)
    assert second.due_at == at(2026, 11, 27, 1, 0) and not second.explicit_time  # 09:00 Shanghai
    assert second.note == "带样品" and second.member_id == (await member_of(bob)).id

    await alice.say("/remind #1 next monday 10am")
    assert (await reminder(alice, 3)).due_at == at(2026, 11, 23, 2, 0)
    assert (await reminder(alice, 3)).note == ""
    await bob.say("/提醒 李伟 3天后 回访")
    assert (await reminder(bob, 4)).due_at == at(2026, 11, 21, 7, 0)
    assert "remind" in await audit_actions(alice)


async def test_remind_errors_say_how_and_change_nothing(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    for text, expected in [
        ("/remind", "Write it like: /remind #12 friday 3pm"),
        ("/remind 李伟 yesterday", "has already passed"),
        ("/remind 李伟 today call back", "2026-11-18 Wed 09:00 has already passed"),
        ("/remind 李伟 whenever suits them", "couldn't read a date at the start of “whenever suits them”"),
        ("/remind nobody-like-this friday", "couldn't find a customer"),
        ("/remind 李伟 friday " + "x" * 1001, "at most 1000 characters"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
    await bob.say("/remind 李伟 昨天")
    assert "已经过去了" in bob.text
    await bob.say("/remind 李伟 改天 再说")
    assert "开头看不出时间" in bob.text
    assert await reminders_count(alice) == 0
    assert (await customer(alice, 1)).next_followup_at is None


async def test_remind_form_from_the_card_button(alice: Chat) -> None:
    await alice.say("/add 李伟")
    await alice.press("Remind")
    assert "(1/2) When?" in alice.text and "tomorrow 10am" in alice.text
    await alice.say("yesterday")
    assert "has already passed" in alice.text and "(1/2) When?" in alice.text  # asked again at once
    await alice.say("friday")
    await alice.say("bring samples")
    assert alice.text == "Reminder #1: #1 李伟 on 2026-11-20 Fri 09:00 — bring samples"

    # the same form as a Slack modal: errors come back per field
    card = await customer(alice, 1)
    await alice.submit("remind", {"when": "someday", "note": ""}, {"customer_id": str(card.id)})
    assert "someday" in alice.last[0].form_errors["when"]
    await alice.submit("remind", {"when": "", "note": "x"}, {"customer_id": str(card.id)})
    assert alice.last[0].form_errors == {"when": "This one is needed."}
    assert await reminders_count(alice) == 1


# --- /reminders ---------------------------------------------------------------------------

async def test_reminders_overdue_first_paged_with_buttons(alice: Chat, clock: Clock) -> None:
    await alice.say("/add 李伟")
    await alice.say("/add Wendy Wang")
    await alice.say("/remind 李伟 friday call back")  # #1, Fri 09:00
    await alice.say("/remind #2 tomorrow 10am")  # #2, Thu 10:00
    await alice.say("/remind #2 in 2 hours")  # #3, Wed 17:00
    clock.advance(hours=20)  # Thu 11:00 Shanghai: #3 and #2 are overdue
    await alice.say("/reminders")
    reply = alice.last[0]
    assert reply.text == "Your pending reminders: 3"
    assert reply.items == [
        "#3 · ⚠ overdue since 2026-11-18 Wed 17:00 · #2 Wendy Wang",
        "#2 · ⚠ overdue since 2026-11-19 Thu 10:00 · #2 Wendy Wang",
        "#1 · 2026-11-20 Fri 09:00 · #1 李伟 — call back",
    ]
    assert [b.label for b in reply.all_buttons()][:2] == ["Done #3", "Snooze #3 · 1 day"]

    await alice.press("Done #2")
    assert alice.last[0].edit and alice.last[0].notice == "✓ Reminder #2 done."
    assert alice.last[0].text.startswith("✓ Reminder #2 done.\nYour pending reminders: 2")
    assert [item[:3] for item in alice.last[0].items] == ["#3 ", "#1 "]
    done = await reminder(alice, 2)
    assert done.status == "done" and done.done_at == clock.now

    await alice.press("Snooze #3")  # overdue: a day from now
    assert (await reminder(alice, 3)).due_at == clock.now + timedelta(days=1)
    await alice.press("Snooze #1")  # still ahead: a day after its due time
    assert (await reminder(alice, 1)).due_at == at(2026, 11, 21, 1, 0)
    assert "Reminder #1 moved to 2026-11-21 Sat 09:00." in alice.text

    for n in range(12):
        await alice.say(f"/remind 李伟 in {n + 3} days note {n}")
    await alice.say("/我的提醒")
    assert alice.last[0].text == "Your pending reminders: 14" and len(alice.last[0].items) == 10
    await alice.press("Next")
    assert alice.last[0].edit and len(alice.last[0].items) == 4
    assert alice.last[0].items[-1].endswith("— note 11")


async def test_reminders_team_is_for_managers(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    await alice.say("/remind 李伟 friday")
    await bob.say("/remind 李伟 下周一 报价")
    await bob.say("/reminders")
    assert bob.last[0].text == "你未完成的提醒：1 个"
    assert bob.last[0].items == ["#2 · 2026-11-23 周一 09:00 · #1 李伟 — 报价"]
    await bob.say("/reminders team")
    assert bob.text == MANAGERS_ONLY_ZH
    await alice.say("/reminders team")
    assert alice.last[0].items == ["#1 · 2026-11-20 Fri 09:00 · #1 李伟 · for Alice",
                                   "#2 · 2026-11-23 Mon 09:00 · #1 李伟 · for Bob — 报价"]
    await alice.say("/reminders everyone")
    assert "or “team” for the whole team's" in alice.text


# --- /done, /snooze -----------------------------------------------------------------------------

async def test_done_and_snooze_by_number(alice: Chat, clock: Clock) -> None:
    await alice.say("/add 李伟")
    await alice.say("/remind 李伟 friday")  # #1
    await alice.say("/remind 李伟 next monday")  # #2
    await alice.say("/done 1")
    assert alice.last[0].text.startswith("✓ Reminder #1 done.\nReminder #1: #1 李伟 on 2026-11-20 Fri 09:00")
    assert {f.label: f.value for f in alice.last[0].fields} == {"Next follow-up": "2026-11-23 Mon 09:00"}
    assert (await customer(alice, 1)).next_followup_at == at(2026, 11, 23, 1, 0)
    assert [b.action for b in alice.last[0].all_buttons()] == [f"flog:{(await customer(alice, 1)).id}"]
    await alice.say("/done 1")
    assert alice.text == "Reminder #1 is already done, so there is nothing to change. /reminders lists the pending ones."
    await alice.say("/done 9")
    assert alice.text == "There is no reminder #9. /reminders lists yours with their numbers."
    await alice.say("/done soon")
    assert "Write it like: /done 3" in alice.text

    async with alice.core.db.transaction() as session:  # as if delivered and leased
        row = await session.scalar(select(Reminder).where(Reminder.number == 2))
        row.sent_at, row.claimed_until, row.attempts = clock.now, clock.now, 2
    await alice.say("/snooze 2 1d")
    moved = await reminder(alice, 2)
    assert moved.due_at == clock.now + timedelta(days=1)
    assert (moved.sent_at, moved.claimed_until, moved.attempts) == (None, None, 0)
    assert "Reminder #2 moved to 2026-11-19 Thu 15:00." in alice.text
    assert (await customer(alice, 1)).next_followup_at == moved.due_at
    await alice.say("/snooze #2 1w")
    assert (await reminder(alice, 2)).due_at == clock.now + timedelta(days=7)
    for text, expected in [("/snooze 2 yesterday", "has already passed"), ("/snooze 2", "Write it like: /snooze 3"),
                           ("/snooze 2 blah", "couldn't read the date"), ("/snooze 1 1d", "already done")]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
    assert (await reminder(alice, 2)).due_at == clock.now + timedelta(days=7)
    assert (await audit_actions(alice)).count("snooze") == 2 and "done" in await audit_actions(alice)
    await alice.say("/history #1")
    assert "moved a reminder — Reminder: 2; Due: 2026-11-19 Thu 15:00 → 2026-11-25 Wed 15:00" in alice.text
    assert "closed a reminder — Reminder: 1; Status: pending → done" in alice.text


async def test_reminder_buttons_as_delivered(alice: Chat, clock: Clock) -> None:
    await alice.say("/add 李伟")
    await alice.say("/remind 李伟 friday 10am visit")
    row = await reminder(alice, 1)
    await press_payload(alice, f"rsnz:{row.id}:1w")  # not due yet: a week after its due time
    reply = alice.last[0]
    assert reply.edit and reply.notice == "Reminder #1 moved to 2026-11-27 Fri 10:00."
    assert [b.label for b in reply.all_buttons()] == ["Done", "Snooze 1 day", "Snooze 1 week", "Log"]
    assert [b.action for b in reply.all_buttons()] == [
        f"rdone:{row.id}", f"rsnz:{row.id}:1d", f"rsnz:{row.id}:1w", f"flog:{row.customer_id}"]
    assert (await reminder(alice, 1)).explicit_time

    clock.advance(days=10)  # overdue now: a day from now
    await alice.press("Snooze 1 day")
    assert (await reminder(alice, 1)).due_at == clock.now + timedelta(days=1)
    await alice.press("Done")
    assert alice.last[0].edit and alice.last[0].text.startswith("✓ Reminder #1 done.")
    assert [b.label for b in alice.last[0].all_buttons()] == ["Log"]
    await press_payload(alice, f"rdone:{row.id}")
    assert "already done" in alice.text

    for stale in (f"rdone:{row.id + 100}", "rdone:x", "rdone", f"rsnz:{row.id}:2d", f"rsnz:{row.id}"):
        await press_payload(alice, stale)
        assert alice.text == "That button has expired. Please run the command again.", stale


async def test_another_members_reminder_is_refused(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    await alice.say("/remind 李伟 friday")
    row = await reminder(alice, 1)
    await bob.say("/完成 1")
    assert bob.text == "提醒 #1 属于 Alice，只有本人或经理可以完成或推迟。"
    await bob.say("/推迟 1 明天")
    assert "属于 Alice" in bob.text
    await press_payload(bob, f"rdone:{row.id}")
    assert "属于 Alice" in bob.text
    assert (await reminder(alice, 1)).status == "pending"
    assert (await reminder(alice, 1)).due_at == row.due_at

    await set_role(bob, "manager")
    await bob.say("/推迟 1 明天上午10点")
    assert bob.text.startswith("提醒 #1 已改到 2026-11-19 周四 10:00。")
    await bob.say("/完成 1")
    assert (await reminder(alice, 1)).status == "done"


async def test_another_workspaces_reminders_look_unknown(core: Any, alice: Chat) -> None:
    carol = Chat(core, user_id="carol", name="Carol", space="other-team", language="en")
    await alice.say("/add 李伟")
    await alice.say("/remind 李伟 friday")
    await alice.say("/remind 李伟 monday")
    await carol.say("/add 王芳")
    await carol.say("/remind 王芳 friday")  # carol's #1
    await carol.say("/done 2")
    assert carol.text == "There is no reminder #2. /reminders lists yours with their numbers."
    await carol.say("/snooze 2 1d")
    assert carol.text == "There is no reminder #2. /reminders lists yours with their numbers."
    await carol.say("/done 1")  # her own #1, not alice's
    assert (await reminder(alice, 1)).status == "pending" and (await reminder(carol, 1)).status == "done"

    alices_reminder, alices_customer = await reminder(alice, 2), await customer(alice, 1)
    for action in (f"rdone:{alices_reminder.id}", f"rsnz:{alices_reminder.id}:1d", f"rsnz:{alices_reminder.id}:1w:m0",
                   f"ssnz:{alices_customer.id}", f"slost:{alices_customer.id}:y", f"frem:{alices_customer.id}"):
        await press_payload(carol, action)
        assert carol.text == "That button has expired. Please run the command again.", action
    await carol.submit("remind", {"when": "friday"}, {"customer_id": str(alices_customer.id)})
    assert carol.text == "That button has expired. Please run the command again."
    await carol.say("/reminders")
    assert carol.last[0].text == "You have no pending reminders. Set one with /remind #12 friday 3pm call back."
    untouched = await reminder(alice, 2)
    assert (untouched.status, untouched.due_at) == ("pending", alices_reminder.due_at)
    assert (await customer(alice, 1)).silent_nudged_at is None and (await customer(alice, 1)).lost_at is None
    assert await reminders_count(alice) == 3


# --- /silent ------------------------------------------------------------------------------------

async def test_silent_at_the_edge_of_the_cadence(alice: Chat, clock: Clock) -> None:
    await alice.say("/add 李伟")  # never contacted, no tier: 30 days, counted from when added
    await alice.say("/add Wendy cadence=10")  # own cadence
    clock.advance(days=11, seconds=-1)
    await alice.say("/silent")
    assert alice.last[0].text == "None of your customers is past their contact cadence."
    clock.advance(seconds=1)
    await alice.say("/silent")
    assert alice.last[0].items == ["#2 Wendy · silent 11 days (cadence 10) · no tier"]
    clock.advance(days=20, seconds=-1)
    await alice.say("/沉默")
    assert len(alice.last[0].items) == 1
    clock.advance(seconds=1)
    await alice.say("/silent")
    assert alice.last[0].items == ["#1 李伟 · silent 31 days (cadence 30) · no tier",  # equally silent: by number
                                   "#2 Wendy · silent 31 days (cadence 10) · no tier"]


async def test_silent_tier_defaults_own_cadence_and_order(alice: Chat, clock: Clock) -> None:
    for name in ("A1", "A2", "C1", "C2", "B1", "Lost"):
        await alice.say(f"/add {name}")
    now = clock.now
    await set_customer(alice, 1, tier="A", last_contact_at=now - timedelta(days=15))  # 15 > 14
    await set_customer(alice, 2, tier="A", last_contact_at=now - timedelta(days=14, hours=23))  # not yet
    await set_customer(alice, 3, tier="C", last_contact_at=now - timedelta(days=40))  # 40 < 60
    await set_customer(alice, 4, tier="C", cadence_days=20, last_contact_at=now - timedelta(days=40))  # own wins
    await set_customer(alice, 5, tier="B", created_at=now - timedelta(days=31))  # never contacted: since added
    await set_customer(alice, 6, tier="B", created_at=now - timedelta(days=90), lost_at=now)  # lost: not silent
    await alice.say("/silent")
    assert alice.last[0].text == "Your silent customers: 3 (longest silent first)"
    assert alice.last[0].items == [
        "#4 C2 · silent 40 days (cadence 20) · C (low value)",
        "#5 B1 · silent 31 days (cadence 30) · B (middle value)",
        "#1 A1 · silent 15 days (cadence 14) · A (high value)",
    ]
    assert [b.label for b in alice.last[0].all_buttons()][:3] == ["Log #4", "Snooze #4", "Lost #4"]
    assert alice.last[0].all_buttons()[0].action == f"flog:{(await customer(alice, 4)).id}"
    clock.advance(hours=1)
    await alice.say("/silent")
    assert alice.last[0].items[-1] == "#2 A2 · silent 15 days (cadence 14) · A (high value)"

    # the sweep's entry: a workspace instead of a member's scope, everyone's customers, paged
    member = await member_of(alice)
    async with alice.core.db.transaction() as session:
        workspace = await session.get(Workspace, member.workspace_id)
        rows = await followups.silent_customers(session, workspace, None, clock.now, 2, 1)
        total = await followups.count_silent_customers(session, workspace, member.id, clock.now)
    assert [(r.customer.number, r.silent_days, r.cadence_days, r.owner_name) for r in rows] == [
        (5, 31, 30, "Alice"), (1, 15, 14, "Alice")]
    assert total == 4


async def test_silent_snooze_and_mark_lost_buttons(alice: Chat, clock: Clock) -> None:
    for n in range(12):
        await alice.say(f"/add Client{n:02d}")
        clock.advance(minutes=1)
    clock.advance(days=31)
    await alice.say("/silent")
    assert alice.last[0].text == "Your silent customers: 12 (longest silent first)"
    assert len(alice.last[0].items) == 10 and alice.last[0].items[0].startswith("#1 Client00")
    await alice.press("Next")
    assert alice.last[0].edit and [item[:4] for item in alice.last[0].items] == ["#11 ", "#12 "]
    await alice.press("Snooze #12")  # redraws page 2 of what is left: one row
    assert [item[:4] for item in alice.last[0].items] == ["#11 "] and "2/2" in alice.last[0].all_buttons()[-1].label
    await alice.say("/silent")
    await alice.press("Snooze #1")
    reply = alice.last[0]
    assert reply.edit and reply.text.startswith("#1 Client00 snoozed: not listed as silent again before 2027-01-18.")
    assert "Your silent customers: 10" in reply.text and reply.items[0].startswith("#2 Client01")
    assert (await customer(alice, 1)).silent_nudged_at == clock.now
    assert "silent_snooze" in await audit_actions(alice)

    await alice.press("Lost #2")
    assert alice.last[0].edit and "Mark #2 Client01 as lost?" in alice.text
    await alice.press("Cancel")
    assert alice.last[0].edit and alice.text.startswith("Cancelled. Nothing was changed.\nYour silent customers: 10")
    assert (await customer(alice, 2)).lost_at is None
    await alice.press("Lost #2")
    await alice.press("Mark lost")
    assert alice.text.startswith("#2 Client01 marked as lost (stage: churned).\nYour silent customers: 9")
    lost = await customer(alice, 2)
    assert lost.lost_at == clock.now and lost.stage == "churned"
    assert "lost" in await audit_actions(alice)

    assert len(alice.last[0].items) == 9 and "Next ›" not in [b.label for b in alice.last[0].all_buttons()]
    clock.advance(days=30, seconds=-1)  # the snooze lasts one cadence
    await alice.say("/silent")
    assert not any(item.startswith("#1 ") for item in alice.last[0].items)
    clock.advance(seconds=1)
    await alice.say("/silent")
    assert alice.last[0].items[0].startswith("#1 Client00 · silent 61 days")
    await alice.say("/history #2")
    assert "Alice · marked lost — Lost: — → 2026-12-19 Sat 15:12" in alice.text


async def test_silent_team_for_managers_in_both_languages(alice: Chat, bob: Chat, clock: Clock) -> None:
    await alice.say("/add 李伟")
    await bob.say("/add 王芳")
    clock.advance(days=31)
    await bob.say("/沉默")
    assert bob.last[0].text == "你的沉默客户：1 位（沉默最久的在前）"
    assert bob.last[0].items == ["#2 王芳 · 已沉默 31 天（周期 30 天）· 无等级"]
    assert [b.label for b in bob.last[0].all_buttons()] == ["记录 #2", "暂缓 #2", "流失 #2"]
    await bob.say("/silent team")
    assert bob.text == MANAGERS_ONLY_ZH
    await alice.say("/silent")
    assert alice.last[0].items == ["#1 李伟 · silent 31 days (cadence 30) · no tier"]
    await alice.say("/silent team")
    assert alice.last[0].items == ["#1 李伟 · silent 31 days (cadence 30) · no tier · owner Alice",
                                   "#2 王芳 · silent 31 days (cadence 30) · no tier · owner Bob"]
    await alice.press("Lost #2")
    await alice.press("Mark lost")  # a manager may mark anyone's customer lost
    assert alice.last[0].items == ["#1 李伟 · silent 31 days (cadence 30) · no tier · owner Alice"]
    bobs = await customer(bob, 2)
    await press_payload(bob, f"ssnz:{(await customer(alice, 1)).id}")  # a rep, on a colleague's customer
    assert bob.text == "只有客户的负责人或经理才能这样做。负责人可以用 /assign 把客户交给你。"
    assert (await customer(alice, 1)).silent_nudged_at is None and bobs.lost_at is not None


async def test_words_the_date_skips_stay_in_the_note(alice: Chat) -> None:
    await alice.say("/add Kim")
    await alice.say("/remind Kim tomorrow after lunch call")
    assert "2026-11-19 Thu 09:00 — after lunch call" in alice.text
    await alice.say("/remind Kim in 3 minutes after restart")
    assert "— after restart" in alice.text
    await alice.say("/remind Kim next monday 10am bring samples")
    assert "2026-11-23 Mon 10:00 — bring samples" in alice.text


# --- /today -----------------------------------------------------------------------------------------

async def test_my_day_is_three_messages_and_one_per_reminder_due(alice: Chat, clock: Clock) -> None:
    """A chat gets the day in few messages; each reminder keeps its own, so Done redraws only it."""
    await alice.say("/today")
    heading, silent, activity = alice.last
    assert heading.title == "My day · Alice" and [b.label for b in heading.all_buttons()] == [
        "➕ Add customer", "📝 Log a call or visit"]
    assert heading.text == ("Wed 2026-11-18 · 0 due today · 0 silent customers\n"
                            "Nothing due today. Set a reminder with /remind #12 friday 3pm call back.")
    assert silent.title == "Gone silent: 0" and activity.title == "My latest activity"
    assert activity.text.startswith("Nothing logged yet.") and not activity.items

    await alice.say('/add "Li Wei"')
    await alice.say("/remind #1 in 1 hour call back")
    await alice.say("/remind #1 in 2 hours send the quote")
    long_summary = "asked for samples " * 20
    await alice.say(f"/log #1 call: {long_summary}")
    clock.advance(days=40)
    await alice.say("/remind #1 in 3 hours follow up")
    await alice.say("/today")
    heading, *reminders, silent, activity = alice.last
    assert heading.text == "Mon 2026-12-28 · 3 due today · 1 silent customers"
    assert [r.text.split(":")[0] for r in reminders] == ["⚠ Overdue · Reminder #1", "⚠ Overdue · Reminder #2",
                                                         "Reminder #3"]
    assert all(r.buttons for r in reminders)
    assert silent.items == ["#1 Li Wei · silent 40 days"]
    assert activity.text.startswith("Log right after each call or visit")
    [row] = activity.items
    assert row.endswith("call · #1 Li Wei: " + " ".join(long_summary.split())[:SHOWN_SUMMARY_CHARS - 1] + "…")
    await alice.press("Done", [reminders[1]])
    assert alice.last[0].edit and "Reminder #2 done" in alice.text

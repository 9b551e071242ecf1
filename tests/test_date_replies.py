"""Dates in replies (issue 10): the words after a `next:` date are the reminder's note, the reply
says what a reading assumed, and a Move button gives the reminder another time."""
from __future__ import annotations

from datetime import datetime, timezone

from handlers.registry import payload
from storage.models import Interaction, Purchase, Reminder
from tests.chat import Chat
from tests.test_activity import counts, rows


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


async def test_log_next_keeps_the_words_after_the_date_as_the_reminders_note(alice: Chat) -> None:
    await alice.say("/add Bob")
    await alice.say("/log Bob call: x next: friday bring samples")
    assert "Logged for #1 Bob: call" in alice.text
    assert "Next follow-up: 2026-11-20 Fri 09:00 (reminder #1)." in alice.text
    assert "Reminder note: “bring samples”" in alice.text
    [interaction] = await rows(alice, Interaction)
    assert interaction.summary == "x"
    [reminder] = await rows(alice, Reminder)
    assert reminder.note == "bring samples" and reminder.due_at == utc(2026, 11, 20, 1)


async def test_deal_and_chinese_next_clauses_with_a_note(alice: Chat, bob: Chat) -> None:
    await alice.say("/add Bob")
    await alice.say("/deal Bob 500 first order next: in 2 weeks check")
    assert "Reminder note: “check”" in alice.text
    [purchase] = await rows(alice, Purchase)
    assert purchase.note == "first order"
    await bob.say("/log Bob 电话：聊了报价 下次：月底 带合同")
    assert "下次跟进：2026-11-30 周一 09:00（提醒 #2）。" in bob.text
    assert "月底按当月最后一天。" in bob.text
    await bob.say("/log Bob 电话：又聊了 下次：月底")
    reminders = await rows(alice, Reminder)
    assert [r.note for r in reminders] == ["check", "带合同", "又聊了"]  # no note: the summary, as before


async def test_a_next_clause_that_does_not_start_with_a_date_names_it_and_saves_nothing(alice: Chat) -> None:
    await alice.say("/add Bob")
    before = await counts(alice)
    await alice.say("/log Bob call: x next: bring samples friday")
    assert "“bring samples friday”" in alice.text
    assert await counts(alice) == before


async def test_a_reply_says_what_the_reading_assumed(alice: Chat, bob: Chat) -> None:
    await alice.say("/add Bob")
    await alice.say("/remind Bob next month send the catalogue")
    assert "2026-12-01 Tue 09:00 — send the catalogue" in alice.text
    assert "No day was given, so it is the 1st of the month." in alice.text
    await bob.say("/remind Bob 三点 回电话")
    assert "2026-11-18 周三 15:00 — 回电话" in bob.text
    assert "没写上午/下午，按 15:00（不是凌晨 3:00）" in bob.text
    await bob.say("/remind Bob 明天下午三点打电话")  # no space needed between the date and the note
    assert "2026-11-19 周四 15:00 — 打电话" in bob.text
    assert "没写上午/下午" not in bob.text


async def test_move_button_opens_a_form_that_moves_the_reminder(alice: Chat) -> None:
    await alice.say("/add Bob")
    await alice.say("/remind Bob friday call back")
    [reminder] = await rows(alice, Reminder)
    await alice.press("Move…")
    assert "Move reminder #1" in alice.text
    await alice.say("next tuesday 4pm")
    assert "Reminder #1 moved to 2026-11-24 Tue 16:00." in alice.text
    [moved] = await rows(alice, Reminder)
    assert moved.id == reminder.id and moved.due_at == utc(2026, 11, 24, 8)
    # as a modal: a time in the past is refused beside its field, and nothing moves
    await alice.submit("rmove", {"when": "yesterday"}, {"reminder_id": str(reminder.id)})
    assert "already passed" in alice.last[0].form_errors["when"]
    await alice.submit("rmove", {"when": "下周末"}, {"reminder_id": str(reminder.id)})
    assert "2026-11-28 Sat 09:00" in alice.text and "A weekend: set for its Saturday." in alice.text


async def test_snooze_shows_the_reading_and_a_move_button(alice: Chat) -> None:
    await alice.say("/add Bob")
    await alice.say("/remind Bob friday call back")
    await alice.say("/snooze 1 next week")
    assert "Reminder #1 moved to 2026-11-23 Mon 09:00." in alice.text
    assert "No day was given, so it is the Monday of that week." in alice.text
    assert alice.button("Move…").action == payload("rmov", (await rows(alice, Reminder))[0].id)

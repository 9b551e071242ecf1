"""/log, /tag, /tags, /deal, /feedback, their forms and buttons, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select, update

from handlers.registry import payload
from storage.models import (
    AuditEntry,
    Customer,
    CustomerTag,
    Feedback,
    Interaction,
    Member,
    Purchase,
    Reminder,
    Workspace,
)
from tests.chat import Chat

ACTIVITY = (Interaction, Purchase, Feedback, CustomerTag, Reminder, AuditEntry)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


async def counts(chat: Chat) -> dict[str, int]:
    """Rows per activity table (auto tags included: a refused command must not move them either)."""
    async with chat.core.db.transaction() as session:
        return {model.__name__: await session.scalar(select(func.count()).select_from(model)) or 0
                for model in ACTIVITY}


async def customer(chat: Chat, number: int = 1) -> Customer:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(Customer).where(Customer.number == number))


async def rows(chat: Chat, model: type) -> list:
    async with chat.core.db.transaction() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


async def manual_tags(chat: Chat, number: int = 1) -> list[str]:
    async with chat.core.db.transaction() as session:
        return list(await session.scalars(
            select(CustomerTag.name).join(Customer, Customer.id == CustomerTag.customer_id)
            .where(Customer.number == number, CustomerTag.auto.is_(False)).order_by(CustomerTag.name)))


async def set_visibility(chat: Chat, visibility: str) -> None:
    async with chat.core.db.transaction() as session:
        await session.execute(update(Workspace).values(visibility=visibility))


def fields(chat: Chat) -> dict[str, str]:
    return {f.label: f.value for reply in chat.last for f in reply.fields}


# --- /log ------------------------------------------------------------------------------------

async def test_log_with_channel_and_next_creates_a_reminder(alice: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: talked about the price next: 下周五")
    assert "Logged for #1 李伟 · Acme: call, 2026-11-18 Wed 15:00." in alice.text
    assert "“talked about the price”" in alice.text
    assert "Next follow-up: 2026-11-27 Fri 09:00 (reminder #1)." in alice.text
    assert fields(alice)["Stage"] == "lead → prospect"
    assert [b.label for b in alice.last[0].all_buttons()] == ["Log", "Remind", "Tag", "Move…"]

    [interaction] = await rows(alice, Interaction)
    assert (interaction.channel, interaction.summary, interaction.occurred_at) == (
        "call", "talked about the price", utc(2026, 11, 18, 7))
    [reminder] = await rows(alice, Reminder)
    assert reminder.due_at == utc(2026, 11, 27, 1) and not reminder.explicit_time
    assert reminder.member_id == interaction.member_id and reminder.status == "pending"
    record = await customer(alice)
    assert record.stage == "prospect"
    assert record.last_contact_at == utc(2026, 11, 18, 7)
    assert record.next_followup_at == utc(2026, 11, 27, 1)
    actions = [e.action for e in await rows(alice, AuditEntry)]
    assert actions == ["add", "log", "remind"]


async def test_log_channel_words_in_chinese_and_english(bob: Chat) -> None:
    await bob.say("/add 李伟")
    for text, channel, summary in [
        ("/记录 李伟 电话 聊了报价", "call", "聊了报价"),
        ("/log 李伟 微信：发了资料", "wechat", "发了资料"),
        ("/log #1 visit demo went well", "visit", "demo went well"),
        ("/log 李伟 meeting:", "meeting", ""),
        ("/log 李伟 call", "note", "call"),  # a lone channel word is the summary
        ("/log 李伟 午饭时聊了聊", "note", "午饭时聊了聊"),
    ]:
        await bob.say(text)
        assert "已记录 #1 李伟" in bob.text, (text, bob.text)
        latest = (await rows(bob, Interaction))[-1]
        assert (latest.channel, latest.summary) == (channel, summary), text
    assert "：电话，2026-11-18 周三 15:00" in (await bob.say("/log 李伟 电话：回访"))[0].text


async def test_log_back_dates_and_moves_last_contact(alice: Chat, clock) -> None:
    await alice.say("/add 李伟")
    await alice.say("/log #1 visit: demo at: yesterday 3pm")
    assert "visit, 2026-11-17 Tue 15:00" in alice.text
    assert (await customer(alice)).last_contact_at == utc(2026, 11, 17, 7)
    await alice.say("/log #1 note: older visit at: 3 days ago")
    assert (await rows(alice, Interaction))[-1].occurred_at == utc(2026, 11, 15, 7)
    assert (await customer(alice)).last_contact_at == utc(2026, 11, 17, 7)  # the latest contact stays
    clock.advance(hours=1)
    await alice.say("/log #1 call: follow-up")
    assert (await customer(alice)).last_contact_at == utc(2026, 11, 18, 8)


async def test_log_errors_change_nothing(alice: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/add 李伟 company=Globex")
    before = await counts(alice)
    for text, expected in [
        ("/log #1", "Write it like: /log #12"),
        ("/log #1 demo at: tomorrow", "is in the future"),
        ("/log #1 demo next: yesterday", "is in the past"),
        ("/log #1 demo next: someday maybe", "couldn't read the date"),
        ("/log #99 demo", "couldn't find a customer"),
        ("/log next: friday", "Which customer?"),
        ("/log #1 " + "x" * 3000, "at most 2000 characters"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
        assert await counts(alice) == before, text
    await alice.say("/log 李伟 demo")  # two of them: asks which, the command is kept
    assert "Which one?" in alice.text and await counts(alice) == before
    await alice.press("Globex")
    assert "Logged for #2 李伟 · Globex" in alice.text
    await alice.say('/log #1 "unclosed quote')  # read to the end of the line: a valid note
    assert (await rows(alice, Interaction))[-1].summary == '"unclosed quote'


async def test_log_form_validates_each_field(alice: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/add 李伟 company=Globex")
    before = await counts(alice)
    await alice.submit("log", {"customer": "nobody-like-this", "channel": "fax", "summary": "", "next": "whenever"})
    errors = alice.last[0].form_errors
    assert set(errors) == {"customer", "channel", "summary", "next"}
    assert "couldn't find a customer" in errors["customer"] and "couldn't read the date" in errors["next"]
    await alice.submit("log", {"customer": "李伟", "channel": "call", "summary": "hi", "next": ""})
    assert "#number" in alice.last[0].form_errors["customer"]
    assert await counts(alice) == before

    await alice.submit("log", {"customer": "#2", "channel": "visit", "summary": "demo\nsecond line",
                               "next": "tomorrow 10am"})
    assert "Logged for #2 李伟 · Globex: visit" in alice.text
    assert "Next follow-up: 2026-11-19 Thu 10:00" in alice.text
    [interaction] = await rows(alice, Interaction)
    assert interaction.summary == "demo\nsecond line"
    [reminder] = await rows(alice, Reminder)
    assert reminder.explicit_time and reminder.due_at == utc(2026, 11, 19, 2)


async def test_log_button_and_bare_log_start_the_guided_flow(bob: Chat) -> None:
    await bob.say("/add 李伟")
    await bob.say("/show 李伟")
    await bob.press("记录")
    assert "记录：李伟" in bob.text and "（1/3）方式" in bob.text
    await bob.press("拜访")
    assert "（2/3）发生了什么" in bob.text
    await bob.say("上门演示")
    await bob.say("下周五")
    assert "已记录 #1 李伟：拜访" in bob.text and "下次跟进：2026-11-27 周五 09:00" in bob.text
    [interaction] = await rows(bob, Interaction)
    assert (interaction.channel, interaction.summary) == ("visit", "上门演示")

    await bob.say("/log")
    assert "（1/4）客户" in bob.text
    await bob.say("#1")
    await bob.press("跳过")  # channel: a note
    await bob.say("补充说明")
    await bob.say("明天")
    assert "已记录 #1 李伟：备注" in bob.text
    assert len(await rows(bob, Reminder)) == 2


async def test_log_form_is_a_modal_where_the_platform_has_them(alice: Chat) -> None:
    await alice.say("/add 李伟")
    record = await customer(alice)
    [reply] = await alice.send(alice.request(action=payload("flog", record.id), supports_forms=True))
    form = reply.form
    assert form.name == "log" and form.context == {"customer_id": str(record.id)}
    assert [f.key for f in form.fields] == ["channel", "summary", "next"]
    assert len(form.fields[0].options) == 7 and form.fields[1].multiline and form.fields[1].required
    [reply] = await alice.send(alice.request(text="/log", supports_forms=True))
    assert [f.key for f in reply.form.fields] == ["customer", "channel", "summary", "next"]
    await alice.submit("log", {"channel": "email", "summary": "sent the quote"}, form.context)
    assert "Logged for #1 李伟: e-mail" in alice.text


# --- /deal ------------------------------------------------------------------------------------

async def test_deal_moves_prospect_to_customer_and_shows_tier_ltv(alice: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: intro")
    await alice.say("/deal 李伟 1.2万 annual licence")
    assert "Deal recorded: ¥12,000 from #1 李伟 · Acme on 2026-11-18." in alice.text
    shown = fields(alice)
    assert shown["Stage"] == "prospect → customer"
    assert shown["Value tier"] == "— → A (high value)"
    assert shown["Lifetime value (est.)"] == "— → ¥36,000"
    assert shown["Auto tags"] == "+vip"
    [purchase] = await rows(alice, Purchase)
    assert (purchase.amount_minor, purchase.currency, purchase.note) == (1_200_000, "CNY", "annual licence")
    record = await customer(alice)
    assert (record.stage, record.tier, record.ltv_minor) == ("customer", "A", 3_600_000)

    await alice.say("/deal #1 12k")  # unchanged values are still shown
    shown = fields(alice)
    assert shown["Stage"] == "customer" and shown["Value tier"] == "A (high value)"
    assert shown["Lifetime value (est.)"] == "¥36,000 → ¥72,000"


async def test_deal_in_chinese_other_currency_and_back_dated(bob: Chat) -> None:
    await bob.say("/add 王芳")
    await bob.say("/成交 王芳 300 USD 咨询费 时间：昨天")
    assert "已记录成交：#1 王芳，$300，2026-11-17。" in bob.text
    assert "阶段：线索 → 成交客户" in bob.text
    [purchase] = await rows(bob, Purchase)
    assert (purchase.amount_minor, purchase.currency, purchase.note) == (30_000, "USD", "咨询费")
    assert purchase.occurred_at == utc(2026, 11, 17, 1)
    assert (await customer(bob)).ltv_minor is None  # LTV counts the workspace currency only


async def test_tier_change_is_shown(alice: Chat) -> None:
    """RFM within the workspace: Cat's small, older order makes her B; a big one today makes her A."""
    for name in ("Ann", "Ben", "Dan", "Cat"):
        await alice.say(f"/add {name}")
    for _ in range(3):
        await alice.say("/deal Ann 20000")
    await alice.say("/deal Ben 100 at: 30 days ago")
    await alice.say("/deal Dan 50 at: 60 days ago")
    await alice.say("/deal Cat 75 at: 45 days ago")
    assert fields(alice)["Value tier"] == "— → B (middle value)"
    await alice.say("/deal Cat 90000")
    assert fields(alice)["Value tier"] == "B (middle value) → A (high value)"


async def test_deal_errors_change_nothing(alice: Chat) -> None:
    await alice.say("/add 李伟")
    before = await counts(alice)
    for text, expected in [
        ("/deal 李伟", "Write it like: /deal #12 12000"),
        ("/deal 李伟 lots", "couldn't read the amount “lots”"),
        ("/deal 李伟 -5", "12k, 1.2万"),
        ("/deal 李伟 0", "$300"),
        ("/deal 李伟 100 at: next week", "is in the future"),
        ("/deal nobody 100", "couldn't find a customer"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
        assert await counts(alice) == before, text


# --- /feedback ------------------------------------------------------------------------------------

async def test_low_feedback_makes_the_customer_at_risk_and_unhappy(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    await alice.say("/deal 李伟 5000")
    await alice.say("/feedback 李伟 2 late delivery")
    assert "Feedback from #1 李伟 · Acme: ★★☆☆☆ (2/5)." in alice.text and "“late delivery”" in alice.text
    shown = fields(alice)
    assert shown["Stage"] == "customer → at risk"
    assert set(shown["Auto tags"].split()) == {"+unhappy", "+at-risk"}
    record = await customer(alice)
    assert record.stage == "at_risk"
    [feedback] = await rows(alice, Feedback)
    assert (feedback.score, feedback.comment) == (2, "late delivery")


async def test_feedback_in_chinese_accepts_stars(bob: Chat) -> None:
    await bob.say("/add 李伟")
    await bob.say("/反馈 李伟 ★★★★★ 非常满意")
    assert "已记录 #1 李伟 的反馈：★★★★★（5/5）。" in bob.text
    assert "+推荐者" in bob.text
    for word, score in [("4分", 4), ("三星", 3), ("★☆☆☆☆", 1), ("5/5", 5)]:
        await bob.say(f"/反馈 #1 {word}")
        assert (await rows(bob, Feedback))[-1].score == score, word
    before = await counts(bob)
    for text in ("/反馈 #1 6", "/反馈 #1 很好", "/反馈 #1", "/反馈 #1 0分"):
        await bob.say(text)
        assert "1 到 5 的评分" in bob.text, text
    assert await counts(bob) == before


# --- /tag, /tags -----------------------------------------------------------------------------------

async def test_tags_fold_add_remove_and_refuse_auto_names(alice: Chat) -> None:
    await alice.say("/add 李伟")
    await alice.say("/tag 李伟 HOT ｈｏｔ 重点,Key-Account")
    assert "Added: #hot #重点 #key-account" in alice.text
    assert fields(alice)["Tags"] == "#hot #key-account #重点"
    assert "new" in fields(alice)["Auto tags"]
    await alice.say("/tag 李伟 cold -hot -重点")
    assert "Added: #cold" in alice.text and "Removed: #hot #重点" in alice.text
    assert await manual_tags(alice) == ["cold", "key-account"]
    await alice.say("/tag 李伟 -nothing")
    assert "No change" in alice.text

    before = await counts(alice)
    for text, expected in [
        ("/tag 李伟 fine VIP", "“vip” is an automatic tag"),
        ("/tag 李伟 -new", "“new” is an automatic tag"),
        ("/tag 李伟 重要客户", "automatic tag"),
        ('/tag 李伟 "at risk"', "“at-risk” is an automatic tag"),
        ("/tag 李伟 ok -", "isn't a usable tag"),
        ("/tag 李伟", "Write it like: /tag #12"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
        assert await counts(alice) == before, text
    [entry, *_] = [e for e in await rows(alice, AuditEntry) if e.action == "tag"]
    assert entry.before == {"tags": []} and entry.after == {"tags": ["hot", "key-account", "重点"]}


async def test_tags_counts_only_visible_customers(alice: Chat, bob: Chat) -> None:
    await alice.say("/add Ann")
    await alice.say("/add Ben")
    await bob.say("/add 王芳")
    await alice.say("/tag Ann hot 重点")
    await alice.say("/tag Ben hot")
    await bob.say("/tag 王芳 hot")
    await alice.say("/tags")
    text = alice.text
    assert "#hot — 3" in text and "#重点 — 1" in text
    assert text.index("#hot") < text.index("#重点") < text.index("Auto tags:") < text.index("new — 3")

    await bob.say("/tags")
    assert "#hot：3 位" in bob.text and "新客户：3 位" in bob.text
    await set_visibility(alice, "own")
    await bob.say("/tags")
    assert "#hot：1 位" in bob.text and "#重点" not in bob.text and "新客户：1 位" in bob.text
    await alice.say("/tags")  # the admin still sees everyone
    assert "#hot — 3" in alice.text


async def test_tag_button_form(bob: Chat) -> None:
    await bob.say("/add 李伟")
    await bob.say("/tag 李伟 冷淡")
    await bob.press("标签")
    assert "现有：#冷淡" in bob.text
    await bob.say("重点 -冷淡")
    assert "已添加：#重点" in bob.text and "已去掉：#冷淡" in bob.text
    assert await manual_tags(bob) == ["重点"]
    record = await customer(bob)
    await bob.submit("tag", {"tags": "vip"}, {"customer_id": str(record.id)})
    assert "自动标签" in bob.last[0].form_errors["tags"]
    assert await manual_tags(bob) == ["重点"]


# --- who may do what -----------------------------------------------------------------------------

async def test_another_workspace_can_never_touch_your_customer(alice: Chat, core) -> None:
    await alice.say("/add 李伟 13800138000")
    customer_id = str((await customer(alice)).id)
    carol = Chat(core, user_id="carol", space="other-team", language="en")
    await carol.say("/add Someone")  # carol's own #1
    before = await counts(alice)
    for text in ("/log 李伟 hi", "/log 13800138000 hi", "/tag 李伟 x", "/deal 李伟 100",
                 "/feedback 李伟 5", "/tag 13800138000 x"):
        await carol.say(text)
        assert "couldn't find a customer" in carol.text, text
    for action in (payload("flog", customer_id), payload("ftag", customer_id), "flog:²", "flog:99999999999", "flog"):
        await carol.send(carol.request(action=action))
        assert "expired" in carol.text, action
    await carol.submit("log", {"channel": "call", "summary": "hi"}, {"customer_id": customer_id})
    assert "expired" in carol.text
    await carol.submit("tag", {"tags": "x"}, {"customer_id": customer_id})
    assert "expired" in carol.text
    await carol.say("/log #1 hi")  # by number: carol's own #1, never alice's
    assert "Someone" in carol.text
    after = await counts(alice)
    assert after["Interaction"] == before["Interaction"] + 1
    [interaction] = await rows(alice, Interaction)
    assert interaction.customer_id != int(customer_id)


async def test_rep_can_log_a_colleagues_customer_but_not_deal(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    await bob.say("/log 李伟 电话 聊了报价")
    assert "已记录 #1 李伟：电话" in bob.text
    before = await counts(bob)
    await bob.say("/成交 李伟 1000")
    assert "只有客户的负责人或经理才能这样做" in bob.text
    assert await counts(bob) == before
    await bob.say("/反馈 李伟 4")  # feedback, like logging, is for anyone who sees the customer
    assert "4/5" in bob.text

    async with bob.core.db.transaction() as session:
        await session.execute(update(Member).where(Member.name == "Bob").values(role="manager"))
    await bob.say("/成交 李伟 1000")
    assert "已记录成交" in bob.text

    await set_visibility(alice, "own")
    async with bob.core.db.transaction() as session:
        await session.execute(update(Member).where(Member.name == "Bob").values(role="rep"))
    await bob.say("/log 李伟 电话 又聊了")
    assert "没有找到" in bob.text


async def test_free_text_keeps_the_full_width_punctuation_it_was_typed_with(alice: Chat) -> None:
    await alice.say("/add 李伟 company=华东")
    await alice.say("/add 李薇 company=华南")
    await alice.say("/log 李伟 拜访：带了样品，反馈不错（下周再谈） 下次：明天")
    assert "“带了样品，反馈不错（下周再谈）”" in alice.text
    await alice.say("/deal 李伟 1.2万 首单，含运费")
    assert "“首单，含运费”" in alice.text
    await alice.say("/feedback 李伟 4 很好，就是慢")
    assert "“很好，就是慢”" in alice.text
    await alice.say("/remind 李伟 明天 带合同：两份")
    assert "带合同：两份" in alice.text
    await alice.say("/log 李 电话：问价格，要样品")  # asks which one; the choice replays the text
    await alice.press("李薇")
    assert "“问价格，要样品”" in alice.text
    await alice.say("/show 李薇")
    assert "问价格，要样品" in alice.text


async def test_changing_the_currency_rescores_lifetime_value(alice: Chat) -> None:
    await alice.say("/add Kim")
    await alice.say("/deal Kim 12000")
    await alice.say("/show Kim")
    assert "Lifetime value (est.): ¥36,000" in alice.text
    await alice.say("/settings currency=USD")
    await alice.say("/show Kim")
    assert "$36,000" not in alice.text and "¥36,000" not in alice.text  # ¥ deals are no USD value
    await alice.say("/deal Kim $100")
    await alice.say("/show Kim")
    assert "Lifetime value (est.): $300" in alice.text


async def test_the_guided_log_asks_again_for_a_customer_it_cannot_find(alice: Chat) -> None:
    await alice.say("/add Kim")
    await alice.say("/log")
    await alice.say("nobody")
    assert "couldn't find a customer" in alice.text and "(1/4)" in alice.text
    await alice.say("Kim")
    assert "(2/4)" in alice.text

"""/undo and /entry (issue 15 item 9), on SQLite and PostgreSQL: taking back one's own last change,
correcting or removing one log, deal or feedback by its number, and the derived data following at once."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from handlers.core import Core
from storage.models import AuditEntry, Customer, CustomerTag, Feedback, Interaction, Purchase, Reminder
from storage.undo import WINDOW
from tests.chat import Chat
from tests.conftest import Clock
from tests.test_records import set_role


async def count(core: Core, model: Any, *where: Any) -> int:
    async with core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def bob_customer(core: Core) -> Customer:
    async with core.db.transaction() as session:
        return await session.scalar(select(Customer).where(Customer.name == "Bob"))


async def auto_tags(core: Core, customer_id: int) -> set[str]:
    async with core.db.transaction() as session:
        return set(await session.scalars(select(CustomerTag.name).where(
            CustomerTag.customer_id == customer_id, CustomerTag.auto.is_(True))))


async def step(chat: Chat, clock: Clock, text: str) -> str:
    """One command a second after the last (a command's entries share its moment)."""
    clock.advance(seconds=1)
    await chat.say(text)
    return chat.text


# --- /undo ----------------------------------------------------------------------------------------

async def test_undo_takes_back_a_deal_and_the_tier_and_vip_tag_drop_at_once(alice: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob 13700000001 company=Acme")
    await step(alice, clock, "/deal Bob 12000 licence")
    bob = await bob_customer(alice.core)
    assert (bob.tier, bob.stage) == ("A", "customer") and "vip" in await auto_tags(alice.core, bob.id)
    text = await step(alice, clock, "/undo")
    assert "Undone: your deal of ¥12,000 for #1 Bob · Acme is removed." in text
    assert "Value tier: A (high value) → —" in text and "Auto tags: −vip" in text
    bob = await bob_customer(alice.core)
    assert (bob.tier, bob.stage, bob.ltv_minor) == (None, "lead", None)
    assert "vip" not in await auto_tags(alice.core, bob.id)
    assert await count(alice.core, Purchase) == 0
    async with alice.core.db.transaction() as session:
        undo = await session.scalar(select(AuditEntry).where(AuditEntry.action == "undo"))
    assert undo.after["undid"] == "deal" and undo.before["amount_minor"] == 1_200_000
    await alice.say("/history Bob")
    assert "undid: recorded a deal — Amount: ¥12,000 → —" in alice.text


async def test_undo_a_log_in_chinese_with_its_reminder(alice: Chat, bob: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add 王芳 13912345678 公司=华为")
    await step(bob, clock, "/记录 王芳 电话：聊了报价 下次：明天上午10点")
    assert await count(bob.core, Reminder, Reminder.status == "pending") == 1
    text = await step(bob, clock, "/撤销")
    assert "已撤销：你为 #1 王芳 · 华为 写的记录已删除（电话 “聊了报价”）。" in text
    assert "已撤销：#1 王芳 · 华为 的提醒 #1 已取消。" in text
    assert await count(bob.core, Interaction) == 0
    assert await count(bob.core, Reminder, Reminder.status == "pending") == 0
    assert "已经撤销过了" in await step(bob, clock, "/撤回")  # one step only


async def test_undo_an_edit_restores_the_fields_and_an_add_deletes_the_customer(alice: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob 13700000001 company=Acme")
    await step(alice, clock, "/edit Bob company=Beta phone=13800138000 birthday=1990-02-03")
    text = await step(alice, clock, "/undo")
    assert "Undone: your edit of #1 Bob · Acme (Company: Beta → Acme; Phone: +8613800138000 → +8613700000001; " \
           "Birthday: 1990-02-03 → —)." in text
    bob = await bob_customer(alice.core)
    assert (bob.company, bob.phone, bob.birthday) == ("Acme", "+8613700000001", None)
    await step(alice, clock, "/add Carol")
    text = await step(alice, clock, "/undo")
    assert "Undone: #2 Carol, which you added, is removed again (a manager can still /restore it)." in text
    assert await count(alice.core, Customer, Customer.name == "Carol", Customer.deleted_at.is_not(None)) == 1
    await alice.say("/restore Carol")
    assert "Restored" in alice.text or "restored" in alice.text


async def test_undo_a_tag_change(alice: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob")
    await step(alice, clock, "/tag Bob hot")
    await step(alice, clock, "/tag Bob key-account -hot")
    text = await step(alice, clock, "/undo")
    assert "Undone: the tags of #1 Bob are back to #hot." in text
    async with alice.core.db.transaction() as session:
        assert list(await session.scalars(select(CustomerTag.name).where(CustomerTag.auto.is_(False)))) == ["hot"]


async def test_undo_refusals_say_why_and_change_nothing(alice: Chat, bob: Chat, clock: Clock) -> None:
    await alice.say("/undo")
    assert alice.text == "Nothing to undo: you haven't changed a customer yet."
    await alice.say("/undo everything")
    assert "/undo takes nothing after it" in alice.text
    await step(alice, clock, "/add Bob")
    await step(alice, clock, "/log Bob call: first call")
    clock.advance(seconds=WINDOW.total_seconds() + 1)
    await alice.say("/undo")
    assert alice.text.startswith("Too late to undo: your last change (logged an interaction, #1 Bob,")
    assert "more than 10 minutes old" in alice.text
    await step(alice, clock, "/log Bob visit: second visit")
    await step(bob, clock, "/记录 Bob 微信：发了目录")  # a colleague builds on it
    await alice.say("/undo")
    assert alice.text == ("Not undone: Bob has changed #1 Bob since your change (logged an interaction). "
                          "Correct it by hand with /edit or /entry.")
    await bob.say("/undo")
    await step(alice, clock, "/assign Bob Alice")
    await step(alice, clock, "/role Bob manager")  # no customer: not a change /undo looks at
    await step(bob, clock, "/assign Bob Bob")
    await bob.say("/撤销")
    assert bob.text.startswith("你的上一次修改（更换负责人，#1 Bob，") and "不能用 /undo 撤销" in bob.text
    assert await count(alice.core, Interaction) == 2
    assert await count(alice.core, AuditEntry, AuditEntry.action == "undo") == 1  # Bob's own, of his log


async def test_a_rep_cannot_undo_into_a_customer_they_no_longer_see(alice: Chat, bob: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob")
    await step(bob, clock, "/log Bob call: hello")
    await step(alice, clock, "/settings visibility=own")
    await bob.say("/undo")
    assert bob.text == "未撤销：你修改的内容已经不在了。"
    assert await count(alice.core, Interaction) == 1


# --- /entry -----------------------------------------------------------------------------------------

async def test_the_card_numbers_entries_and_entry_corrects_them(alice: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob 13700000001 company=Acme")
    await step(alice, clock, "/log Bob call: asked for a quote")
    await step(alice, clock, "/log Bob visit: demo at: yesterday")  # back-dated: still log 2
    await step(alice, clock, "/feedback Bob 2 slow")
    await alice.say("/show Bob")
    assert "• log 2 · " in alice.text and "visit · Alice: demo" in alice.text
    assert "• log 1 · " in alice.text and "call · Alice: asked for a quote" in alice.text
    assert "Latest feedback: feedback 1 · ★★☆☆☆" in alice.text
    labels = [b.label for b in alice.last[0].all_buttons()]
    assert {"Edit log 2", "Delete log 2", "Edit feedback 1", "Delete feedback 1"} <= set(labels)
    text = await step(alice, clock, "/entry Bob log 1 meeting: asked for two quotes")
    assert text.startswith("Changed log 1 of #1 Bob · Acme: Channel: call → meeting; "
                           "Summary: asked for a quote → asked for two quotes.")
    async with alice.core.db.transaction() as session:
        first = await session.scalar(select(Interaction).order_by(Interaction.id).limit(1))
    assert (first.channel, first.summary) == ("meeting", "asked for two quotes")
    text = await step(alice, clock, "/entry Bob feedback 1 5")
    assert text == ("Changed feedback 1 of #1 Bob · Acme: Satisfaction: 2 → 5.\nStage: at risk → prospect\n"
                    "Auto tags: +promoter −at-risk −unhappy")
    assert {"promoter"} <= await auto_tags(alice.core, (await bob_customer(alice.core)).id)
    assert "Nothing changed: feedback 1 of #1 Bob · Acme already says that." in await step(
        alice, clock, "/entry Bob feedback 1 5")
    await alice.say("/entry Bob log 3 call: x")
    assert alice.text == "#1 Bob · Acme has no log 3: the card (/show) numbers its logs, deals and feedback."
    await alice.say("/entry Bob log x")
    assert alice.text.startswith("Write it like: /entry #12 log 3")
    await alice.say("/entry Bob feedback 1 nine")
    assert alice.text.startswith("Give the new score from 1 to 5")
    await alice.say("/history Bob")
    assert "corrected feedback — Satisfaction: 2 → 5" in alice.text
    text = await step(alice, clock, "/undo")  # the correction itself can be taken back
    assert text.startswith("Undone: your correction of feedback 1 of #1 Bob · Acme (Satisfaction: 5 → 2).")
    assert "Auto tags: +at-risk +unhappy −promoter" in text
    async with alice.core.db.transaction() as session:
        assert await session.scalar(select(Feedback.score)) == 2


async def test_deleting_the_only_deal_from_the_card_drops_tier_and_vip(alice: Chat, clock: Clock) -> None:
    await step(alice, clock, "/add Bob 13700000001 company=Acme")
    await step(alice, clock, "/deal Bob 12000 licence")
    await alice.say("/show Bob")
    await alice.press("Delete deal 1")
    assert alice.text.startswith("Remove deal 1 of #1 Bob · Acme?\ndeal 1 · ")
    question = alice.last
    await alice.press("Cancel", question)
    assert await count(alice.core, Purchase) == 1
    await alice.say("/show Bob")
    await alice.press("Delete deal 1")
    await alice.press("Remove")
    assert alice.text.startswith("Removed from #1 Bob · Acme: deal 1 · ")
    assert "Value tier: A (high value) → —" in alice.text and "Auto tags: −vip" in alice.text
    bob = await bob_customer(alice.core)
    assert (bob.tier, bob.ltv_minor, bob.stage) == (None, None, "lead")
    assert "vip" not in await auto_tags(alice.core, bob.id)
    await alice.press("Remove", question)  # the spent question does nothing
    assert alice.text == "That button has expired. Please run the command again."
    async with alice.core.db.transaction() as session:
        removal = await session.scalar(select(AuditEntry).where(AuditEntry.action == "deal_delete"))
    assert removal.before["amount_minor"] == 1_200_000 and removal.after is None
    await alice.say("/history Bob")
    assert "removed a deal — Amount: ¥12,000 → —; Note: licence → —" in alice.text
    await alice.say("/undo")  # a removal was confirmed: it stays removed
    assert alice.text.startswith("Your last change (removed a deal, #1 Bob · Acme,")


async def test_entry_in_chinese_edit_button_and_typed_delete(bob: Chat, clock: Clock) -> None:
    await step(bob, clock, "/add 王芳 13912345678 公司=华为")
    await step(bob, clock, "/成交 王芳 1.2万 年度服务")
    await bob.say("/show 王芳")
    assert "最近成交：成交 1 · ¥12,000 · " in bob.text
    await bob.press("修改成交 1")  # a guided form: each question says what the entry holds now
    assert "现在：¥12,000。留空则保持不变。" in bob.text
    await bob.say("两万")
    assert bob.text.startswith("看不懂金额“两万”") and "（1/2）金额？" in bob.text  # refused at once, asked again
    await bob.say("1.3万")
    assert "（2/2）备注？\n现在：年度服务。留空则保持不变。" in bob.text
    await bob.press("跳过")  # the note stays
    assert bob.text.startswith("已更正 #1 王芳 · 华为 的成交 1：金额：¥12,000 → ¥13,000。")
    text = await step(bob, clock, "/条目 王芳 成交 1 15000")
    assert text.startswith("已更正 #1 王芳 · 华为 的成交 1：金额：¥13,000 → ¥15,000。")
    text = await step(bob, clock, "/条目 王芳 成交 1 15000 USD")  # only the currency was wrong
    assert text.startswith("已更正 #1 王芳 · 华为 的成交 1：金额：¥15,000 → $15,000。")
    await step(bob, clock, "/更正 王芳 成交 1 删除")
    assert bob.text.startswith("删除 #1 王芳 · 华为 的成交 1？")
    await bob.press("删除")
    assert bob.text.startswith("已从 #1 王芳 · 华为 删除：成交 1 · ") and "$15,000" in bob.text
    assert await count(bob.core, Purchase) == 0
    await bob.say("/history 王芳")
    assert "删除成交 — 金额：$15,000 → —" in bob.text and "更正成交 — 金额：¥15,000 → $15,000" in bob.text
    await step(bob, clock, "/记录 王芳 电话：聊了报价")
    text = await step(bob, clock, "/条目 王芳 记录 1 拜访：当面聊了报价（含税）")
    assert text.startswith("已更正 #1 王芳 · 华为 的记录 1：方式：电话 → 拜访；内容：聊了报价 → 当面聊了报价（含税）。")
    assert "只有记录人或经理" not in text


async def test_only_the_author_or_a_manager_changes_an_entry(alice: Chat, bob: Chat, core: Core,
                                                              clock: Clock) -> None:
    await step(alice, clock, "/add Bob")
    await step(alice, clock, "/log Bob call: alice's call")
    await step(bob, clock, "/log Bob visit: bob's visit")
    await bob.say("/entry Bob log 1 call: changed by bob")
    assert bob.text == "只有记录人或经理可以修改记录 1。"
    await bob.say("/show Bob")
    assert "修改记录 2" in [b.label for b in bob.last[0].all_buttons()]
    async with core.db.transaction() as session:
        alices = await session.scalar(select(Interaction).order_by(Interaction.id).limit(1))
    await bob.send(bob.request(action=f"edel:{alices.customer_id}:log:{alices.id}"))
    assert bob.text == "只有记录人或经理可以修改记录 1。"
    await step(alice, clock, "/entry Bob log 2 visit: bob's visit, checked by alice")  # an admin may
    assert alice.text.startswith("Changed log 2 of #1 Bob")
    outsider = Chat(core, user_id="eve", name="Eve", space="another-book")
    await outsider.say("/add Zed")
    await outsider.send(outsider.request(action=f"edel:{alices.customer_id}:log:{alices.id}"))  # another book's
    assert outsider.text == (await outsider.send(outsider.request(action="edel:999999:log:999999")))[0].plain_text()
    zed = (await outsider.send(outsider.request(text="/show Zed")))[0]
    zed_id = zed.buttons[0][0].action.split(":")[1]
    await outsider.send(outsider.request(action=f"eedit:{zed_id}:log:{alices.id}"))  # their customer, not their entry
    assert outsider.text == (await outsider.send(outsider.request(action="edel:999999:log:999999")))[0].plain_text()
    assert await count(core, Interaction) == 2


async def test_a_manager_removes_a_reps_feedback_and_the_auto_tag_follows(alice: Chat, bob: Chat,
                                                                          clock: Clock) -> None:
    await step(alice, clock, "/add Bob")
    await step(bob, clock, "/feedback Bob 1 太慢")
    bob_customer_id = (await bob_customer(alice.core)).id
    assert "unhappy" in await auto_tags(alice.core, bob_customer_id)
    await set_role(alice, "manager")
    await step(alice, clock, "/entry Bob feedback 1 delete")
    await alice.press("Remove")
    assert "Stage: at risk → lead\nAuto tags: −at-risk −unhappy" in alice.text
    assert "unhappy" not in await auto_tags(alice.core, bob_customer_id)
    assert await count(alice.core, Feedback) == 0


async def test_one_command_is_one_change_even_in_the_same_instant(alice: Chat) -> None:
    """The clock does not move here (Telegram tests share one instant too): a correction made in the
    same instant as the feedback it corrects is undone alone, the feedback stays."""
    await alice.say("/add Bob")
    await alice.say("/feedback Bob 2 slow")
    await alice.say("/entry Bob feedback 1 4")
    await alice.say("/undo")
    assert alice.text.startswith("Undone: your correction of feedback 1 of #1 Bob (Satisfaction: 4 → 2).")
    assert await count(alice.core, Feedback) == 1

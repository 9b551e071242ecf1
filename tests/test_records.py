"""/assign, /dupes, /merge, /delete, /restore, /forget, /history — on SQLite and PostgreSQL.

Interactions, deals, feedback and tags are written straight into the database
here: those commands belong to other modules, and what is under test is that
record keeping carries (or erases) them.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from handlers.core import Core
from storage import audit, dedupe, followups
from storage.models import (
    AuditEntry,
    Base,
    Customer,
    CustomerTag,
    Feedback,
    Identity,
    Interaction,
    Member,
    Purchase,
    Reminder,
    Workspace,
)
from tests.chat import Chat

MOVED_MODELS = (Interaction, Purchase, Feedback, Reminder)


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


async def customer(chat: Chat, number: int, *, deleted: bool | None = False) -> Customer | None:
    """The customer `#number` of the chat's workspace (live only, unless `deleted` is None)."""
    member = await member_of(chat)
    query = select(Customer).where(Customer.workspace_id == member.workspace_id, Customer.number == number)
    if deleted is not None:
        query = query.where(Customer.deleted_at.is_not(None) if deleted else Customer.deleted_at.is_(None))
    async with chat.core.db.transaction() as session:
        return await session.scalar(query)


async def add_activity(chat: Chat, number: int, *, interactions: int = 0, purchases: int = 0, feedback: int = 0,
                       reminders: int = 0, tags: tuple[str, ...] = (), text: str = "") -> None:
    """Rows another module's commands would write, for customer `#number`."""
    found = await customer(chat, number)
    member = await member_of(chat)
    now = chat.core.services.clock()
    async with chat.core.db.transaction() as session:
        common = {"workspace_id": found.workspace_id, "customer_id": found.id, "member_id": member.id}
        for i in range(interactions):
            session.add(Interaction(**common, channel="call", summary=f"{text} call {i}",
                                    occurred_at=now - timedelta(days=i + 1), created_at=now))
        for i in range(purchases):
            session.add(Purchase(**common, amount_minor=100_000, currency="CNY", note=f"{text} order {i}",
                                 occurred_at=now - timedelta(days=i + 1), created_at=now))
        for i in range(feedback):
            session.add(Feedback(**common, score=4, comment=f"{text} feedback {i}", created_at=now))
        for tag in tags:
            session.add(CustomerTag(workspace_id=found.workspace_id, customer_id=found.id, name=tag, auto=False))
        workspace = await session.get(Workspace, found.workspace_id)
        for i in range(reminders):
            await followups.create_reminder(
                session, workspace, member_id=found.owner_id, created_by=member.id, customer_id=found.id,
                due_at=now + timedelta(days=i + 1), explicit_time=False, note=f"{text} reminder {i}", now=now)


async def count(chat: Chat, model: Any, *where: Any) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def manual_tags(chat: Chat, customer_id: int) -> list[str]:
    async with chat.core.db.transaction() as session:
        rows = await session.scalars(select(CustomerTag.name).where(
            CustomerTag.customer_id == customer_id, CustomerTag.auto.is_(False)).order_by(CustomerTag.name))
        return list(rows)


async def add_anyway(chat: Chat, text: str) -> None:
    await chat.say(text)
    if "same person" in chat.text or "同一个人" in chat.text:
        await chat.press("Add anyway" if chat.language == "en" else "仍然添加")


def payload_of(chat: Chat, label: str) -> str:
    return chat.button(label).action


async def press_payload(chat: Chat, action: str) -> None:
    await chat.send(chat.request(action=action))


# --- /assign ------------------------------------------------------------------------------

async def test_assign_by_owner_and_manager_refused_for_another_reps_customer(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 13800138000")
    await bob.say("/add 王芳 13900139000")
    alice_member, bob_member = await member_of(alice), await member_of(bob)

    await bob.say("/assign #1 Bob")  # a rep taking a colleague's customer
    assert "只有客户的负责人或经理才能这样做" in bob.text
    await bob.say("/转交 王芳 Alice")  # the owner handing over
    assert "#2 王芳：负责人 Bob → Alice" in bob.text
    assert (await customer(bob, 2)).owner_id == alice_member.id
    await bob.say("/assign #2 me")  # no longer theirs
    assert "只有客户的负责人或经理才能这样做" in bob.text

    await add_activity(alice, 1, reminders=2)
    await alice.say("/assign 李伟 bob")  # a manager (admin) assigning anyone's customer
    assert "#1 李伟: owner Alice → Bob." in alice.text
    assert "Bob also takes over the pending reminders for this customer: 2" in alice.text
    assert (await customer(alice, 1)).owner_id == bob_member.id
    assert await count(alice, Reminder, Reminder.member_id == bob_member.id) == 2
    await alice.say("/assign #1 bob")
    assert "#1 李伟 already belongs to Bob." in alice.text
    async with alice.core.db.transaction() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "assign")
                                             .order_by(AuditEntry.id)))
    assert [(e.before, e.after) for e in entries] == [
        ({"owner_id": bob_member.id}, {"owner_id": alice_member.id}),
        ({"owner_id": alice_member.id}, {"owner_id": bob_member.id}),
    ]


async def test_assign_errors_say_how_and_change_nothing(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    for text, expected in [
        ("/assign #1", "Write it like: /assign #12 Bob"),
        ("/assign #1 nobody", "couldn't find one team member named “nobody”"),
        ("/assign #99 me", "couldn't find a customer matching “#99”"),
        ("/assign", "Which customer?"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
    await bob.say("/add 王芳")
    await bob.say("/分配 #2")
    assert "请这样写：/assign #12" in bob.text
    assert await count(alice, AuditEntry, AuditEntry.action == "assign") == 0


# --- /history -------------------------------------------------------------------------------

async def test_history_shows_edits_old_to_new_newest_first(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    alice.core.services.clock.advance(hours=1)
    await alice.say("/edit #1 company=Globex title=CTO")
    alice.core.services.clock.advance(hours=1)
    await bob.say("/history #1")  # bob joins, so he can be assigned
    await alice.say("/assign #1 bob")

    await alice.say("/history #1")
    reply = alice.last[0]
    assert reply.title == "History of #1 李伟 · Globex"
    assert reply.items[0] == "2026-11-18 Wed 17:00 · Alice · reassigned — Owner: Alice → Bob"
    assert reply.items[1] == "2026-11-18 Wed 16:00 · Alice · edited — Company: Acme → Globex; Title: — → CTO"
    assert reply.items[2].startswith("2026-11-18 Wed 15:00 · Alice · added — Name: 李伟; Company: Acme")

    await bob.say("/历史 李伟")
    assert "2026-11-18 周三 16:00 · Alice · 修改 — 公司：Acme → Globex；职位：— → CTO" in bob.text


async def test_history_words_other_modules_entries(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    found = await customer(alice, 1)
    async with alice.core.db.transaction() as session:  # shaped like storage.tags / storage.deals entries
        for action, before, after in (
            ("tag", {"tags": ["vip"]}, {"tags": ["key", "vip"]}),
            ("deal", None, {"amount_minor": 1_200_000, "currency": "CNY", "note": "首单",
                            "occurred_at": "2026-11-17T02:00:00+00:00"}),
            ("log", None, {"channel": "visit", "summary": "聊了报价"}),
        ):
            audit.record(session, workspace_id=found.workspace_id, member_id=found.owner_id, action=action,
                         customer_id=found.id, before=before, after=after, at=alice.core.services.clock())
    await alice.say("/history #1")
    assert "Alice · changed tags — Tags: vip → key, vip" in alice.text
    assert "Alice · recorded a deal — Amount: ¥12,000; Note: 首单; When: 2026-11-17 Tue 10:00" in alice.text
    assert "Alice · logged an interaction — Channel: visit; Summary: 聊了报价" in alice.text
    await bob.say("/history #1")
    assert "Alice · 修改标签 — 标签：vip → key、vip" in bob.text
    assert "Alice · 记录互动 — 方式：拜访；内容：聊了报价" in bob.text


async def test_history_pages_and_errors(alice: Chat) -> None:
    await alice.say("/add 李伟")
    for i in range(11):
        await alice.say(f"/edit #1 title=T{i}")
    await alice.say("/history #1")
    assert len(alice.last[0].items) == 10 and "T10" in alice.last[0].items[0]
    await alice.press("Next")
    assert alice.last[0].edit and len(alice.last[0].items) == 2 and "added" in alice.last[0].items[-1]
    await alice.say("/history #1 #2")
    assert "don't know what “#2” is for" in alice.text
    await alice.say("/history nobody-like-this")
    assert "couldn't find a customer" in alice.text


# --- /merge, /dupes ----------------------------------------------------------------------------

async def test_merge_keeps_every_row_fills_gaps_and_records_conflicts(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme prefs=喜欢喝茶")
    await add_anyway(alice, "/add 李伟 13900139000 li.wei@example.com company=Acme title=CTO region=上海")
    await add_activity(alice, 1, interactions=1, tags=("vip",))
    await add_activity(alice, 2, interactions=2, purchases=1, feedback=1, reminders=1, tags=("vip", "key"))
    totals = {model: await count(alice, model) for model in MOVED_MODELS}

    await alice.say("/merge #1 #2")
    assert "Merge #2 李伟 · Acme into #1 李伟 · Acme?" in alice.text
    assert "2 interaction(s) · 1 deal(s) · 1 feedback · 1 reminder(s) · 2 tag(s)" in alice.text
    assert await customer(alice, 2) is not None  # nothing happens before the confirmation
    await alice.press("Merge")

    card = alice.last[0]
    assert card.edit and card.title == "#1 李伟"
    assert "Merged #2 into #1 李伟 · Acme" in card.text and "Filled in from it: Title, E-mail, Region" in card.text
    keep = await customer(alice, 1)
    assert await customer(alice, 2, deleted=None) is None
    for model, total in totals.items():
        assert await count(alice, model, model.customer_id == keep.id) == total, model
    assert await manual_tags(alice, keep.id) == ["key", "vip"]
    assert (keep.phone, keep.email, keep.title, keep.region) == ("+8613800138000", "li.wei@example.com", "CTO", "上海")
    assert keep.prefs == "喜欢喝茶\nmerged from #2: Phone +8613900139000"
    assert keep.stage == "customer"  # derived data recomputed with the moved deal
    async with alice.core.db.transaction() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.customer_id == keep.id)))
    merges = [e for e in entries if e.action == "merge"]
    assert len(merges) == 1 and merges[0].before["merged"]["phone"] == "+8613900139000"
    assert merges[0].before["merged"]["tags"] == ["key", "vip"] and merges[0].after["merged_from"] == 2
    assert [e.action for e in entries].count("add") == 2  # the dropped record's trail now belongs to #1

    await alice.say("/show #2")
    assert "couldn't find a customer" in alice.text
    await alice.say("/show liwei")  # the search index no longer offers #2
    assert alice.last[0].title == "#1 李伟"
    await alice.say("/history #1")
    assert "merged #2 into this record — Title: — → CTO; E-mail: — → li.wei@example.com" in alice.text


async def test_merge_needs_confirmation_by_the_asker_with_the_right_role(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 company=Acme")
    await add_anyway(alice, "/add 李伟 company=Acme")
    await bob.say("/merge #1 #2")
    assert "这需要经理及以上的角色" in bob.text
    await alice.say("/merge #1 #1")
    assert "#1 李伟 · Acme can't be merged into itself" in alice.text
    await alice.say("/merge #1")
    assert "Write it like: /merge #12 #15" in alice.text
    await alice.say("/merge #1 #2 #3")
    assert "Write it like: /merge #12 #15" in alice.text

    await alice.say("/merge #1 #2")
    await alice.press("Cancel")
    assert "Cancelled" in alice.text
    await alice.say("/merge #1 #2")
    confirm = payload_of(alice, "Merge")
    await set_role(bob, "manager")
    await press_payload(bob, confirm)  # another manager pressing alice's button
    assert "只有提问的人能点" in bob.text

    await bob.say("/合并 #1 #2")
    assert "把 #2 李伟 · Acme 合并到 #1 李伟 · Acme？" in bob.text
    bobs_confirm = payload_of(bob, "合并")
    await set_role(bob, "rep")  # demoted before pressing: the button re-checks
    await press_payload(bob, bobs_confirm)
    assert "这需要经理及以上的角色" in bob.text
    assert await customer(alice, 2) is not None
    await press_payload(alice, confirm)
    assert await customer(alice, 2, deleted=None) is None


async def test_dupes_finds_phone_email_and_name_pairs_only(alice: Chat, bob: Chat) -> None:
    await alice.say("/add Jonathan Smith company=Acme")
    await add_anyway(alice, "/add Jonathon Smith company=ACME")
    await alice.say("/add 王芳 13900139000")
    await add_anyway(alice, '/add "Wang Fang" 139 0013 9000')
    await alice.say("/add Foo a@example.com")
    await add_anyway(alice, "/add Bar A@example.com")
    await alice.say("/add 张三")
    await alice.say("/add 张三")
    await alice.say("/add Jonathan Smith company=Globex")  # same name, other company: unrelated
    await alice.say("/add 李四 13700137000 company=Acme")  # same company, other name: unrelated
    await alice.say("/add 赵六 company=Initech")

    await alice.say("/dupes")
    assert "Likely duplicate pairs: 4." in alice.text
    assert alice.last[0].items == [
        "#1 Jonathan Smith · Acme ↔ #2 Jonathon Smith · ACME (similar name at the same company)",
        "#3 王芳 ↔ #4 Wang Fang (same phone)",
        "#5 Foo ↔ #6 Bar (same e-mail)",
        "#7 张三 ↔ #8 张三 (same name, no company)",
    ]
    await alice.press("Merge #3 ← #4")
    assert "Merge #4 Wang Fang into #3 王芳?" in alice.text
    await alice.press("Merge")
    assert await customer(alice, 4, deleted=None) is None

    await bob.say("/dupes")
    assert "这需要经理及以上的角色" in bob.text
    await set_role(bob, "manager")
    await alice.say("/delete #8")
    await alice.press("Delete")
    await bob.say("/查重")
    assert "疑似重复：2 对" in bob.text and "#7" not in bob.text  # deleted customers are not listed
    assert [b.label for b in bob.last[0].all_buttons()] == ["合并 #1 ← #2", "合并 #5 ← #6"]


async def test_dupes_none_and_large_company_blocks(alice: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    await alice.say("/add 李伟")
    await alice.say("/dupes")
    assert "No likely duplicates found." in alice.text
    # A company too big for one block is split by name prefix; near names still pair up.
    monkeypatch.setattr(dedupe, "MAX_BLOCK", 3)
    for name in ("Annabel Lee", "Annabel Lea", "Bob Stone", "Bob Stine", "Carl Wu", "Dora May", "Ed Fox"):
        await add_anyway(alice, f'/add "{name}" company=Big')
    await alice.say("/dupes")
    assert "Likely duplicate pairs: 2." in alice.text
    assert [b.label for b in alice.last[0].all_buttons()] == ["Merge #2 ← #3", "Merge #4 ← #5"]


# --- /delete, /restore -----------------------------------------------------------------------

async def test_delete_hides_everywhere_and_restore_brings_back(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    await add_activity(alice, 1, reminders=1)
    await bob.say("/delete #1")
    assert "这需要经理及以上的角色" in bob.text

    await alice.say("/delete 李伟")
    assert "Delete #1 李伟 · Acme?" in alice.text
    await alice.say("/show #1")  # asking changes nothing
    assert alice.last[0].title == "#1 李伟"
    await alice.say("/delete 李伟")
    await alice.press("Delete")
    assert alice.last[0].edit and "Deleted #1 李伟 · Acme. /restore #1 brings it back." in alice.text
    assert "Cancelled pending reminders: 1." in alice.text
    assert await count(alice, Reminder, Reminder.status == "cancelled") == 1
    for ref in ("#1", "liwei", "13800138000", "李伟"):
        await alice.say(f"/show {ref}")
        assert "couldn't find a customer" in alice.text, ref
    await alice.say("/find 李伟")
    assert "No customers match" in alice.text

    await alice.say("/restore #1")
    assert alice.last[0].title == "#1 李伟" and "Restored #1 李伟 · Acme." in alice.text
    await alice.say("/show liwei")
    assert alice.last[0].title == "#1 李伟"
    await alice.say("/find 李伟")
    assert "1 found" in alice.text
    assert await count(alice, Reminder, Reminder.status == "cancelled") == 1  # stays cancelled
    await alice.say("/restore #1")
    assert "#1 李伟 · Acme isn't deleted, so there is nothing to restore." in alice.text
    await alice.say("/restore #7")
    assert "couldn't find a customer" in alice.text
    assert [a for a in await audit_actions(alice) if a in ("delete", "restore")] == ["delete", "restore"]


async def test_delete_and_restore_in_chinese(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    await bob.say("/删除 #1")
    assert "这需要经理及以上的角色" in bob.text
    await set_role(bob, "manager")
    await bob.say("/删除 #1")
    assert "删除 #1 李伟？" in bob.text
    await bob.press("取消")
    assert "已取消" in bob.text and await customer(bob, 1) is not None
    await bob.say("/删除 #1")
    await bob.press("删除")
    assert "已删除 #1 李伟。用 /restore #1 可以恢复。" in bob.text
    await bob.say("/删除 #1 #2")
    assert "没有找到" in bob.text
    await bob.say("/恢复 李伟")
    assert "已恢复 #1 李伟" in bob.text
    await bob.say("/恢复 #1 再来")
    assert "看不懂“再来”" in bob.text
    await bob.say("/恢复 李伟")
    assert "#1 李伟 没有被删除，无需恢复。" in bob.text


async def audit_actions(chat: Chat) -> list[str]:
    async with chat.core.db.transaction() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- /forget -----------------------------------------------------------------------------------

async def test_forget_leaves_no_trace(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 13800138000 li.wei@example.com company=Acme prefs=李伟喜欢喝茶")
    await alice.say("/edit #1 title=CTO address=上海路1号")
    await add_activity(alice, 1, interactions=2, purchases=1, feedback=1, reminders=1, tags=("vip",), text="李伟")
    await alice.say("/add 王芳 13900139000")
    await add_activity(alice, 2, interactions=1, purchases=1, text="王芳")
    await alice.say("/add 李伟 138 0013 8000")  # a "same person?" question left unanswered
    forgotten_id = (await customer(alice, 1)).id

    await bob.say("/forget #1")
    assert "只有管理员可以这样做" in bob.text
    await set_role(bob, "manager")
    await bob.say("/遗忘 #1")
    assert "只有管理员可以这样做" in bob.text

    await alice.say("/forget liwei")
    assert "⚠ Erase #1 李伟 · Acme for good?" in alice.text
    assert await customer(alice, 1) is not None
    await alice.press("Erase for good")
    assert alice.last[0].edit and "Erased #1 for good." in alice.text

    for needle in ("李伟", "13800138000", "li.wei@example.com", "上海路"):
        assert await rows_mentioning(alice, needle) == [], needle
    assert await count(alice, Interaction) == 1 and await count(alice, Purchase) == 1  # 王芳's stay
    for model in (Reminder, Feedback, CustomerTag):
        assert await count(alice, model, model.customer_id == forgotten_id) == 0, model
    async with alice.core.db.transaction() as session:
        forgotten = await session.scalar(select(AuditEntry).where(AuditEntry.action == "forget"))
    assert forgotten.after == {"number": 1} and forgotten.customer_id is None
    await alice.say("/show 王芳")
    assert alice.last[0].title == "#2 王芳"


async def test_forget_reaches_deleted_customers(alice: Chat) -> None:
    await alice.say("/add 张三 13700137000")
    await alice.say("/delete #1")
    await alice.press("Delete")
    await alice.say("/forget 张三")
    assert "⚠ Erase #1 张三" in alice.text
    await alice.press("Cancel")
    assert await customer(alice, 1, deleted=True) is not None
    await alice.say("/forget #1")
    await alice.press("Erase for good")
    assert await customer(alice, 1, deleted=None) is None
    assert await rows_mentioning(alice, "13700137000") == []


async def rows_mentioning(chat: Chat, needle: str) -> list[str]:
    """Every table's row whose text (JSON included) contains `needle`, as `table: row`."""
    found = []
    async with chat.core.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                text = " ".join(str(value) for value in row)
                if needle in text:
                    found.append(f"{table.name}: {text[:200]}")
    return found


# --- tenancy -----------------------------------------------------------------------------------

async def test_another_workspace_can_never_reach_these_customers(core: Core, alice: Chat) -> None:
    carol = Chat(core, user_id="carol", name="Carol", space="other-team", language="en")
    await alice.say("/add 李伟 13800138000 company=Acme")
    await add_anyway(alice, "/add 李伟 13800138000 company=Acme")
    await carol.say("/add 王芳 13900139000")

    for text in ("/history 李伟", "/assign 13800138000 me", "/delete 李伟", "/forget 13800138000",
                 "/merge #1 李伟", "/restore 李伟"):
        await carol.say(text)
        assert "couldn't find a customer" in carol.text, text
    await carol.say("/history #1")
    assert carol.last[0].title == "History of #1 王芳"
    await carol.say("/dupes")
    assert "No likely duplicates" in carol.text

    await alice.say("/dupes")
    foreign = [payload_of(alice, "Merge #1 ← #2")]
    for text, label in (("/merge #1 #2", "Merge"), ("/delete #1", "Delete"), ("/forget #1", "Erase")):
        await alice.say(text)
        foreign.append(payload_of(alice, label))
    carols = await customer(carol, 1)
    alices = await customer(alice, 1)
    foreign.append(f"mgq:{carols.id}:{alices.id}")  # a cross-workspace merge, crafted
    foreign.append(f"mgq:{alices.id}:{carols.id}")
    foreign.append("mgq:99999999999999999999:1")  # not even a possible id
    for action in foreign:
        await press_payload(carol, action)
        assert "That button has expired" in carol.text, action
    assert await count(alice, Customer, Customer.deleted_at.is_(None)) == 3
    assert await count(alice, AuditEntry, AuditEntry.action.in_(("merge", "delete", "forget"))) == 0


async def test_a_confirmation_is_the_askers_alone(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟")
    await bob.say("/team")
    await set_role(bob, "manager")
    await alice.say("/delete #1")
    assert alice.last[0].private  # Slack shows it to the asker only
    delete = payload_of(alice, "Delete")
    await press_payload(bob, delete)
    assert "只有提问的人能点" in bob.text
    assert await count(alice, Customer, Customer.deleted_at.is_(None)) == 1
    await press_payload(alice, delete)
    assert "Deleted #1 李伟" in alice.text


async def test_han_names_read_alike_at_one_company_are_likely_duplicates(alice: Chat) -> None:
    await alice.say("/add 王芳 company=华为")
    await alice.say("/add 王方 company=华为")  # the same pinyin: misheard, or typed by sound
    assert "#1 王芳 · 华为 looks like the same person" in alice.text
    await alice.press("Add anyway")
    await alice.say("/add 王方 company=腾讯")  # another company: as before, not asked
    assert "same person" not in alice.text
    await alice.say("/add 黄芳 company=华为")  # another reading (huang): not asked
    assert "same person" not in alice.text
    await alice.say("/dupes")
    assert alice.last[0].items == ["#1 王芳 · 华为 ↔ #2 王方 · 华为 (similar name at the same company)"]

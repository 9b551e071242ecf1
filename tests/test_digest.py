"""The managers' digest: exact numbers, the local day, the Monday chart, /digest on|off, roles, tenancy."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import charts
from handlers.core import Core
from handlers.digest import TEXT_BUDGET, build_digest, compose, digest_period
from handlers.i18n import t
from storage.access import Forbidden
from storage.digest import (
    CurrencyTotal,
    CustomerLine,
    DigestNumbers,
    OverdueFollowup,
    RepCount,
    WeeklySeries,
    WeekRevenue,
    digest_numbers,
    weekly_series,
)
from storage.models import (
    AuditEntry,
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

SHANGHAI = ZoneInfo("Asia/Shanghai")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A 2026 moment on Shanghai's clock, as UTC (what the database stores)."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


def utc(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


@dataclass
class Book:
    """Rows written straight into one workspace, the derived columns set by hand."""

    session: AsyncSession
    workspace: Workspace
    members: dict[str, int]
    customers: dict[str, int] = field(default_factory=dict)
    reminders: int = 0

    async def customer(self, name: str, owner: str, *, created: datetime, contact: datetime | None = None,
                       tier: str | None = None, stage: str = "prospect", ltv: int | None = None,
                       cadence: int | None = None, company: str | None = None, lost: bool = False,
                       deleted: bool = False, incomplete: bool = False) -> None:
        row = Customer(
            workspace_id=self.workspace.id, number=len(self.customers) + 1, owner_id=self.members[owner],
            name=name, company=company, created_at=created, updated_at=created, last_contact_at=contact,
            tier=tier, stage=stage, ltv_minor=ltv, cadence_days=cadence,
            lost_at=created if lost else None, deleted_at=created if deleted else None,
        )
        self.session.add(row)
        await self.session.flush()
        self.customers[name] = row.id
        if incomplete:
            self.session.add(CustomerTag(workspace_id=self.workspace.id, customer_id=row.id, name="incomplete",
                                         auto=True))

    def interaction(self, who: str, customer: str, at: datetime) -> None:
        self.session.add(Interaction(workspace_id=self.workspace.id, customer_id=self.customers[customer],
                                     member_id=self.members[who], channel="call", occurred_at=at, created_at=at))

    def deal(self, who: str, customer: str, minor: int, currency: str, at: datetime) -> None:
        self.session.add(Purchase(workspace_id=self.workspace.id, customer_id=self.customers[customer],
                                  member_id=self.members[who], amount_minor=minor, currency=currency,
                                  occurred_at=at, created_at=at))

    def feedback(self, customer: str, score: int, at: datetime) -> None:
        self.session.add(Feedback(workspace_id=self.workspace.id, customer_id=self.customers[customer],
                                  score=score, created_at=at))

    def reminder(self, who: str, customer: str | None, due: datetime, status: str = "pending") -> None:
        self.reminders += 1
        self.session.add(Reminder(workspace_id=self.workspace.id, number=self.reminders,
                                  customer_id=self.customers[customer] if customer else None,
                                  member_id=self.members[who], due_at=due, status=status,
                                  created_at=due - timedelta(days=3), attempts=0))


async def members_of(session: AsyncSession, workspace_id: int) -> dict[str, int]:
    rows = await session.execute(select(Member.name, Member.id).where(Member.workspace_id == workspace_id))
    return dict(rows.all())


@pytest.fixture
async def team(core: Core, alice: Chat, bob: Chat) -> dict[str, Chat]:
    """The console workspace: Alice (admin, en), Bob and Dan (reps), Chen (manager, zh);
    and Carol's own workspace next door. Dan blocked the bot."""
    dan = Chat(core, user_id="dan", name="Dan", language="en")
    chen = Chat(core, user_id="chen", name="Chen", language="zh")
    carol = Chat(core, user_id="carol", name="Carol", space="other-team", language="en")
    for chat in (alice, bob, dan, chen, carol):
        await chat.say("hello")
    async with core.db.transaction() as session:
        (await session.scalar(select(Member).where(Member.name == "Chen"))).role = "manager"
        dan_id = await session.scalar(select(Member.id).where(Member.name == "Dan"))
        (await session.scalar(select(Identity).where(Identity.member_id == dan_id))).blocked_at = utc(11, 12)
    return {"alice": alice, "bob": bob, "dan": dan, "chen": chen, "carol": carol}


async def seed(core: Core) -> None:
    """Yesterday in Shanghai is 2026-11-17, i.e. [11-16 16:00, 11-17 16:00) UTC; now is 11-18 07:00 UTC."""
    async with core.db.transaction() as session:
        workspaces = {ws.name: ws for ws in await session.scalars(select(Workspace))}
        home, other = workspaces["console"], workspaces["other-team"]
        book = Book(session, home, await members_of(session, home.id))
        # new yesterday
        await book.customer("李伟", "Bob", created=local(11, 17, 10), contact=local(11, 17, 23, 59), company="Acme")
        await book.customer("Wendy Wang", "Alice", created=local(11, 17, 9), incomplete=True)
        # silence passes the cadence (whole days > cadence) yesterday: own cadence 30 / tier A 14 / never contacted, default 30 /
        # exactly at the start of the day (included) / exactly at its end (excluded)
        await book.customer("赵敏", "Bob", created=utc(9, 1), contact=utc(10, 17, 10), cadence=30, incomplete=True)
        await book.customer("孙丽", "Bob", created=utc(9, 1), contact=utc(11, 2, 12), tier="A")
        await book.customer("New Lead", "Bob", created=utc(10, 17, 8), stage="lead")
        await book.customer("Edge Start", "Alice", created=utc(9, 1), contact=utc(10, 16, 16), cadence=30)
        await book.customer("Edge End", "Alice", created=utc(9, 1), contact=utc(10, 17, 16), cadence=30)
        # crossed last week; marked lost; deleted (in every list, counted in none)
        await book.customer("Kevin Li", "Alice", created=utc(8, 1), contact=utc(10, 10, 10), tier="B", incomplete=True)
        await book.customer("Lost One", "Bob", created=utc(9, 1), contact=utc(10, 17, 9), cadence=30, lost=True)
        await book.customer("Ghost", "Alice", created=local(11, 17, 8), contact=utc(10, 17, 11), cadence=30, tier="A",
                      stage="at_risk", ltv=10**9, deleted=True, incomplete=True)
        # at risk: tier A first, then by value
        await book.customer("钱总", "Alice", created=utc(1, 5), contact=utc(9, 1), tier="A", stage="at_risk", ltv=500_000)
        await book.customer("Big B", "Bob", created=utc(1, 5), contact=utc(8, 1), tier="B", stage="at_risk",
                            ltv=900_000)
        await book.customer("周杰", "Alice", created=utc(1, 5), contact=utc(9, 10), tier="A", stage="at_risk")

        book.interaction("Bob", "李伟", local(11, 17, 10))
        book.interaction("Bob", "李伟", local(11, 17, 23, 59))
        book.interaction("Alice", "Wendy Wang", local(11, 17, 0, 0))
        book.interaction("Chen", "钱总", local(11, 17, 11))
        book.interaction("Alice", "Kevin Li", local(11, 16, 23, 30))  # the day before yesterday
        book.interaction("Bob", "Big B", local(11, 18, 0, 0))  # today
        book.interaction("Alice", "Ghost", local(11, 17, 12))  # deleted customer

        book.deal("Bob", "李伟", 1_200_000, "CNY", local(11, 17, 15))
        book.deal("Bob", "Big B", 300_050, "CNY", local(11, 17, 20))
        book.deal("Alice", "Wendy Wang", 30_000, "USD", local(11, 17, 9, 30))
        book.deal("Alice", "钱总", 999_900, "CNY", local(11, 16, 22))  # day before yesterday
        book.deal("Alice", "Ghost", 500_000, "CNY", local(11, 17, 12))  # deleted customer
        book.deal("Bob", "李伟", 100_000, "CNY", local(11, 3, 12))  # two weeks earlier

        for key, score, at in [("李伟", 5, local(11, 17, 9)), ("Wendy Wang", 4, local(11, 17, 10)),
                               ("Big B", 2, local(11, 17, 11)), ("钱总", 1, local(11, 16, 12)),
                               ("Ghost", 1, local(11, 17, 12))]:
            book.feedback(key, score, at)

        book.reminder("Bob", "赵敏", utc(11, 10, 1))
        book.reminder("Alice", None, utc(11, 15, 1))
        book.reminder("Alice", "Wendy Wang", datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc))
        book.reminder("Bob", "李伟", utc(11, 19, 1))  # not due yet
        book.reminder("Alice", "Kevin Li", utc(11, 1, 1), status="done")
        book.reminder("Alice", "Ghost", utc(11, 5, 1))  # deleted customer

        # Carol's workspace has one of everything, none of which may leak into the console's digest.
        theirs = Book(session, other, await members_of(session, other.id))
        await theirs.customer("Outsider", "Carol", created=local(11, 17, 9), contact=utc(10, 17, 12), cadence=30,
                        tier="A", stage="at_risk", ltv=7_777_700, incomplete=True)
        theirs.interaction("Carol", "Outsider", local(11, 17, 9))
        theirs.deal("Carol", "Outsider", 7_777_700, "CNY", local(11, 17, 9))
        theirs.feedback("Outsider", 1, local(11, 17, 9))
        theirs.reminder("Carol", "Outsider", utc(11, 11, 1))


async def console_numbers(core: Core, *, start: datetime, end: datetime, now: datetime) -> DigestNumbers:
    async with core.db.transaction() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.name == "console"))
        return await digest_numbers(session, workspace, start=start, end=end, now=now)


async def test_every_number_is_exact(core: Core, team: dict[str, Chat]) -> None:
    await seed(core)
    n = await console_numbers(core, start=local(11, 17), end=local(11, 18), now=utc(11, 18, 7))

    assert n.interactions == 4
    assert [(r.name, r.count) for r in n.interactions_by_rep] == [("Bob", 2), ("Alice", 1), ("Chen", 1)]
    assert n.reps_without_interactions == 1  # Dan
    assert n.new_customers == 2
    assert [(r.name, r.count) for r in n.new_customers_by_rep] == [("Alice", 1), ("Bob", 1)]
    assert n.deals == 3
    assert n.deals_in_currency == CurrencyTotal("CNY", 2, 1_500_050)
    assert n.deals_other == [CurrencyTotal("USD", 1, 30_000)]
    assert n.feedback_count == 3 and n.feedback_average == pytest.approx(11 / 3)
    assert n.overdue == 3
    assert [(r.name, r.count) for r in n.overdue_by_rep] == [("Alice", 2), ("Bob", 1)]
    assert [(o.customer_name, o.rep, o.due_at) for o in n.overdue_oldest] == [
        ("赵敏", "Bob", utc(11, 10, 1)), (None, "Alice", utc(11, 15, 1)),
        ("Wendy Wang", "Alice", datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)),
    ]
    assert n.newly_silent == 4
    assert [c.name for c in n.newly_silent_top] == ["孙丽", "Edge Start", "New Lead", "赵敏"]
    assert n.newly_silent_top[2].silent_since == utc(10, 17, 8)  # never contacted: since added
    assert n.at_risk == 3
    assert [(c.name, c.tier, c.ltv_minor) for c in n.at_risk_top] == [
        ("钱总", "A", 500_000), ("周杰", "A", None), ("Big B", "B", 900_000)]
    assert n.incomplete == 3
    assert [(r.name, r.count) for r in n.incomplete_by_rep] == [("Alice", 2), ("Bob", 1)]
    assert n.blocked_members == ["Dan"]


async def test_daily_digest_in_english(core: Core, team: dict[str, Chat]) -> None:
    await seed(core)
    alice = team["alice"]
    await alice.say("/digest")
    [reply] = alice.last
    assert reply.title == "Daily digest — 2026-11-17"
    assert reply.image is None
    assert {f.label: f.value for f in reply.fields} == {
        "Interactions": "4 — Bob 2, Alice 1, Chen 1; idle reps: 1",
        "New customers": "2 — Alice 1, Bob 1",
        "Deals": "3 — 2 for ¥15,000.50, 1 for $300",
        "Average feedback": "3.7 (ratings: 3)",
        "Overdue follow-ups": "3 — Alice 2, Bob 1",
        "Newly silent": "4",
        "At risk": "3",
        "Incomplete profiles": "3 — Alice 2, Bob 1",
        "Blocked the bot": "Dan — no reminders or digests reach them until they unblock the bot",
    }
    assert reply.items[:3] == [
        "Overdue · #3 赵敏 — Bob, due 2026-11-10",
        "Overdue · reminder 2 — Alice, due 2026-11-15",
        "Overdue · #2 Wendy Wang — Alice, due 2026-11-18",
    ]
    assert "Newly silent · #4 孙丽 (A) — Bob, silent since 2026-11-02" in reply.items
    assert "At risk · #11 钱总 (A) — Alice, silent since 2026-09-01, LTV ¥5,000" in reply.items
    assert "/digest on" in reply.text  # not subscribed yet
    assert "Ghost" not in alice.text and "Outsider" not in alice.text
    assert len(alice.text) < 4096


async def test_chinese_digest_for_a_chinese_manager(core: Core, team: dict[str, Chat]) -> None:
    await seed(core)
    chen = team["chen"]
    await chen.say("/日报")
    [reply] = chen.last
    assert reply.title == "日报 — 2026-11-17"
    fields = {f.label: f.value for f in reply.fields}
    assert fields["客户互动"] == "4（Bob 2、Alice 1、Chen 1）；1 名销售无记录"
    assert fields["成交"] == "3（2 笔，共 ¥15,000.50、1 笔，共 $300）"
    assert fields["平均满意度"] == "3.7 分（3 条评价）"
    assert "逾期 · #3 赵敏 — Bob，应于 2026-11-10" in reply.items


async def test_monday_digest_covers_the_week_with_a_chart(core: Core, team: dict[str, Chat], clock) -> None:
    await seed(core)
    clock.now = local(11, 23, 8, 30)  # Monday morning in Shanghai
    alice = team["alice"]
    await alice.say("/digest")
    text_reply, chart_reply = alice.last
    assert text_reply.title == "Weekly digest — 11-16 … 11-22"
    fields = {f.label: f.value for f in text_reply.fields}
    assert fields["Interactions"] == "6 — Bob 3, Alice 2, Chen 1; idle reps: 1"
    assert fields["Deals"] == "4 — 3 for ¥24,999.50, 1 for $300"

    image = chart_reply.image
    assert image is not None and image.name == "digest-2026-11-22.png" and image.mime == "image/png"
    assert image.content.startswith(PNG_SIGNATURE) and len(image.content) > 10_000
    with Image.open(io.BytesIO(image.content)) as png:
        assert png.size == (900, 500)

    async with core.db.transaction() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.name == "console"))
        series = await weekly_series(session, workspace, end=local(11, 23), tz=SHANGHAI)
    assert [(r.name, r.count) for r in series.activity_by_rep] == [("Bob", 3), ("Alice", 2), ("Chen", 1)]
    assert [w.week_start for w in series.revenue_by_week] == [
        date(2026, 9, 28) + timedelta(weeks=k) for k in range(8)]
    assert [w.total_minor for w in series.revenue_by_week] == [0, 0, 0, 0, 0, 100_000, 0, 2_499_950]


async def test_a_quiet_day_says_none(alice: Chat, clock) -> None:
    await alice.say("/digest")
    [reply] = alice.last
    assert {f.value for f in reply.fields} == {"none"} and reply.items == []
    clock.now = local(11, 23, 8, 30)
    await alice.say("/digest")
    assert alice.last[0].title == "Weekly digest — 11-16 … 11-22"
    assert alice.last[1].image is not None and alice.last[1].image.content.startswith(PNG_SIGNATURE)


async def test_digest_today_counts_from_local_midnight_until_now(core: Core, team: dict[str, Chat], clock) -> None:
    await seed(core)
    alice, chen = team["alice"], team["chen"]
    await alice.say("/log 李伟 visit: brought the contract")  # 15:00 in Shanghai, after Bob's call at 00:00
    await alice.say("/digest today")
    [reply] = alice.last
    assert reply.title == "Today so far — 2026-11-18, until 15:00"
    fields = {f.label: f.value for f in reply.fields}
    assert fields["Interactions"] == "2 — Alice 1, Bob 1; idle reps: 1"  # Dan
    assert fields["Deals"] == "none" and fields["New customers"] == "none"
    assert fields["Overdue follow-ups"] == "3 — Alice 2, Bob 1"  # overdue is as of now, whatever the period
    clock.advance(minutes=1)
    await chen.say("/日报 今天")
    assert chen.last[0].title == "今日数据 — 2026-11-18（截至 15:01）"
    assert {f.label: f.value for f in chen.last[0].fields}["客户互动"] == "2（Alice 1、Bob 1）；1 名销售无记录"
    clock.now = local(11, 23, 8, 30)  # a Monday: today so far is today, no weekly chart
    await alice.say("/digest today")
    [monday] = alice.last
    assert monday.title == "Today so far — 2026-11-23, until 08:30" and monday.image is None
    before = alice.text
    await alice.say("/digest today please")
    assert alice.text == t("en", "error.digest_usage") and "/digest today" in alice.text
    await alice.say("/digest")
    assert alice.text != before and alice.last[0].title == "Weekly digest — 11-16 … 11-22"


async def test_the_digest_in_a_group_is_refused_for_a_private_chat(core: Core) -> None:
    """The team's figures would be shown to everyone in the group; turning it on or off is fine there."""
    group = {"platform": "telegram", "space": "-100555", "chat_id": "-100555", "private": False}
    erin = Chat(core, user_id="erin", name="Erin", **group)
    await erin.say("/add Acme")
    await erin.say("/digest")
    [reply] = erin.last
    assert reply.private and not reply.fields and erin.text == (
        "The digest shows the team's figures, and everyone in this chat would see them. "
        "Send /digest in a private chat with the bot.")
    chen = Chat(core, user_id="chen", name="陈", language="zh", **group)
    await chen.say("/team")
    await erin.say("/role 陈 manager")
    await chen.say("/日报")
    assert "请私聊机器人发送 /digest" in chen.text
    await erin.say("/digest on 07:45")
    assert "07:45" in erin.text
    dm = Chat(core, user_id="erin", name="Erin", platform="telegram", space=None)
    await dm.say("/digest")
    assert dm.last[0].title == "Daily digest — 2026-11-17"


def test_digest_period_is_the_local_day_or_the_local_week() -> None:
    daily = digest_period(utc(11, 17, 16), SHANGHAI)  # 00:00 on Wednesday 11-18 in Shanghai
    assert (daily.first_day, daily.start, daily.end) == (date(2026, 11, 17), utc(11, 16, 16), utc(11, 17, 16))
    still_tuesday = digest_period(utc(11, 17, 15), SHANGHAI)  # 23:00 Tuesday in Shanghai
    assert still_tuesday.first_day == date(2026, 11, 16)
    monday = digest_period(utc(11, 23, 1), SHANGHAI)
    assert monday.weekly and (monday.first_day, monday.last_day) == (date(2026, 11, 16), date(2026, 11, 22))
    assert monday.start == utc(11, 15, 16) and monday.end == utc(11, 22, 16)


async def test_digest_is_for_managers_only(core: Core, team: dict[str, Chat]) -> None:
    bob = team["bob"]
    refusal = t("zh", "error.forbidden", role=t("zh", "role.manager"))
    for text in ("/digest", "/digest on 07:45", "/日报 off"):
        await bob.say(text)
        assert bob.text == refusal, text
    async with core.db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == "Bob"))
        assert member.digest_enabled is False and member.digest_time is None
        workspace = await session.get(Workspace, member.workspace_id)
        with pytest.raises(Forbidden):  # the scheduler's path refuses a rep too
            await build_digest(session, workspace, member, now=utc(11, 18, 7), locale="zh", tz=SHANGHAI)


async def digest_settings(core: Core, name: str) -> tuple[bool, str | None, list[tuple[str, dict | None]]]:
    async with core.db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == name))
        trail = await session.execute(
            select(AuditEntry.action, AuditEntry.after).where(AuditEntry.member_id == member.id,
                                                              AuditEntry.customer_id.is_(None))
            .order_by(AuditEntry.id))
        return member.digest_enabled, member.digest_time, [tuple(row) for row in trail]


async def test_subscribe_and_unsubscribe(core: Core, team: dict[str, Chat]) -> None:
    alice, chen = team["alice"], team["chen"]
    await alice.say("/digest on 07:45")
    assert alice.text.startswith("Digest on: every day at 07:45 (Asia/Shanghai) in a direct message.")
    assert await digest_settings(core, "Alice") == (
        True, "07:45", [("digest_on", {"digest_enabled": True, "digest_time": "07:45"})])

    for bad, expected in [("/digest on 25:99", "couldn't read the time “25:99”"),
                          ("/digest sometimes", "/digest on 08:30"),
                          ("/digest off now", "/digest off")]:
        await alice.say(bad)
        assert expected in alice.text, bad
    assert (await digest_settings(core, "Alice"))[:2] == (True, "07:45")

    await alice.say("/digest off")
    assert alice.text.startswith("Digest off.")
    await alice.say("/digest on")  # keeps the time chosen before
    assert "every day at 07:45" in alice.text
    enabled, time, trail = await digest_settings(core, "Alice")
    assert (enabled, time) == (True, "07:45")
    assert trail[1:] == [("digest_off", {"digest_enabled": False}), ("digest_on", {"digest_enabled": True})]

    await chen.say("/日报 开")  # no time of his own: the workspace's
    assert chen.text.startswith("已开启日报：每天 08:30（Asia/Shanghai）私信发送")
    await chen.say("/digest on 8点半")
    assert await digest_settings(core, "Chen") == (True, "08:30", [
        ("digest_on", {"digest_enabled": True}), ("digest_on", {"digest_time": "08:30"})])


async def test_another_workspace_sees_only_its_own(core: Core, team: dict[str, Chat]) -> None:
    await seed(core)
    carol = team["carol"]
    await carol.say("/digest")
    fields = {f.label: f.value for f in carol.last[0].fields}
    assert fields["Interactions"] == "1 — Carol 1"
    assert fields["Deals"] == "1 for ¥77,777"
    assert fields["Overdue follow-ups"] == "1 — Carol 1"
    assert fields["At risk"] == "1" and fields["Newly silent"] == "1"
    assert "Blocked the bot" not in fields
    assert all(name not in carol.text for name in ("Bob", "Alice", "李伟", "赵敏", "Dan"))


# --- the message and the chart, without a database --------------------------------

def crowded_numbers() -> DigestNumbers:
    """A hundred reps and every list full, all with 200-character names."""
    long = "名" * 200
    reps = [RepCount(i, f"{long}{i}", 100 - i) for i in range(100)]
    line = CustomerLine(123456, long, long, long, "A", utc(10, 1), 10**12)
    overdue = OverdueFollowup(99999, utc(10, 1), long, 123456, long, long)
    return DigestNumbers(
        start=utc(11, 16, 16), end=utc(11, 17, 16), currency="CNY", interactions=5050, interactions_by_rep=reps,
        reps_without_interactions=7, new_customers=5050, new_customers_by_rep=reps, deals=9,
        deals_in_currency=CurrencyTotal("CNY", 5, 10**13),
        deals_other=[CurrencyTotal(c, 1, 10**12) for c in ("USD", "EUR", "GBP", "JPY")],
        feedback_average=4.25, feedback_count=40, overdue=5050, overdue_by_rep=reps, overdue_oldest=[overdue] * 10,
        newly_silent=5000, newly_silent_top=[line] * 10, at_risk=5000, at_risk_top=[line] * 10,
        incomplete=5050, incomplete_by_rep=reps, blocked_members=[long] * 30,
    )


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_a_crowded_digest_stays_well_under_the_message_limit(locale: str) -> None:
    reply = compose(crowded_numbers(), digest_period(utc(11, 18, 7), SHANGHAI), locale=locale, tz=SHANGHAI)
    assert len(reply.plain_text()) <= TEXT_BUDGET
    assert reply.items, "some customers are still named"
    assert "+95 more" in reply.plain_text() or "另 95 人" in reply.plain_text()


def sample_series() -> WeeklySeries:
    reps = [RepCount(1, "李伟", 30), RepCount(2, "王小明🙂", 21), RepCount(3, "Wendy Wang", 12)]
    reps += [RepCount(10 + i, f"销售{i}", 1) for i in range(20)]
    weeks = [WeekRevenue(date(2026, 9, 28) + timedelta(weeks=k), k * 1_234_500) for k in range(8)]
    return WeeklySeries("CNY", reps, weeks)


def render_without_warnings(fonts: charts.Fonts, locale: str) -> bytes:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = charts.weekly_chart(sample_series(), locale=locale, period="11-16 … 11-22", fonts=fonts)
    assert [str(w.message) for w in caught] == []
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (900, 500)
    return png


def test_chart_without_a_cjk_font_is_drawn_in_latin_letters() -> None:
    fonts = charts.available_fonts(cjk=False)
    assert fonts.drawable("李伟") == "Li Wei"
    assert fonts.drawable("王小明🙂") == "Wang Xiaoming"
    assert fonts.drawable("王芳 Wendy") == "Wang Fang Wendy"
    assert fonts.drawable("Zoë O'Neil") == "Zoë O'Neil"
    render_without_warnings(fonts, "zh")


def test_chart_draws_chinese_names_in_the_packaged_cjk_font() -> None:
    """Noto Sans CJK ships as a dependency, so every machine draws 王芳, not "Wang Fang"."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fonts = charts.available_fonts()
    assert fonts.cjk and fonts.families[1] == "Noto Sans CJK SC"
    used = font_manager.findfont(font_manager.FontProperties(family=fonts.families[1]), fallback_to_default=False)
    assert Path(used).name == "NotoSansCJK-Regular.ttc" and used.face_index == 2  # the SC face of the collection
    assert fonts.drawable("王芳") == "王芳" and fonts.drawable("王小明🙂") == "王小明"
    names, _ = charts._bars(sample_series(), fonts, lambda key, **params: key)
    assert names[:2] == ["李伟", "王小明"]
    render_without_warnings(fonts, "zh")

    def ink(families: list[str]) -> tuple[int, list[str]]:
        """Dark pixels of 王芳 drawn with these fonts, and the warnings drawing it raised."""
        figure = Figure(figsize=(2, 1), dpi=100)
        canvas = FigureCanvasAgg(figure)
        figure.text(0.1, 0.3, "王芳", family=families, fontsize=30)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            canvas.draw()
        pixels = canvas.buffer_rgba().tobytes()[::4]  # the red channel
        return sum(value < 128 for value in pixels), [str(w.message) for w in caught]

    dark, said = ink(list(fonts.families))
    assert said == [] and dark > 200  # both glyphs drawn
    _, latin_only = ink([charts.LATIN_FONT])
    assert any("missing from font" in message for message in latin_only)  # what the check above would catch

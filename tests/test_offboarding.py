"""Members who leave: /team remove and restore, /invite list and revoke, invites that promote, and what a
member without access still gets (nothing) — on SQLite and PostgreSQL, through the core.

The platform side (leaving a Telegram group, a deactivated Slack account) is in tests/e2e/test_offboarding.py.
"""
from __future__ import annotations

from sqlalchemy import func, select

from handlers.core import Core
from reminders.scheduler import Scheduler
from storage import offboarding
from storage.models import AuditEntry, Conversation, Customer, Invite, LinkCode, Member, PendingChoice, Reminder
from tests.chat import Chat
from tests.test_team import Inbox, Telegram, code_in, count, member


async def team_of_three(core: Core, alice: Chat) -> tuple[Telegram, Telegram]:
    """Alice (admin, console book) invites Bob (rep, Telegram) and Carol (manager, Telegram)."""
    await alice.say("/invite")
    bob = Telegram(core, "bob-tg", "Bob")
    await bob.say(f"/join {code_in(alice)}")
    await alice.say("/invite manager")
    carol = Telegram(core, "carol-tg", "Carol")
    await carol.say(f"/join {code_in(alice)}")
    return bob, carol


async def test_a_removed_rep_loses_access_and_their_customers_and_reminders_are_handed_over(
    core: Core, alice: Chat, services, clock
) -> None:
    bob, carol = await team_of_three(core, alice)
    await bob.say("/add Tom Li 13800138000 company=Acme")
    await bob.say("/add Tom Wu company=Acme")
    await bob.say("/remind #1 tomorrow 10am call back")
    await bob.say("/show Tom")  # "which one?": a stored choice
    assert await count(bob, PendingChoice) == 1
    await bob.say("/add")  # a guided form left half-way
    assert await count(bob, Conversation) == 1
    await bob.say("/link")
    assert await count(bob, LinkCode) == 1
    bob_id = (await member(bob)).id

    await alice.say("/team remove Bob to Carol")
    assert "Bob no longer has access" in alice.text and "Their customers (2)" in alice.text
    assert "pending reminders (1) went to Carol" in alice.text
    async with core.db.transaction() as session:
        owners = set(await session.scalars(select(Customer.owner_id)))
        reminder = await session.scalar(select(Reminder))
        carol_id = (await session.scalar(select(Member).where(Member.name == "Carol"))).id
        removal = await session.scalar(select(AuditEntry).where(AuditEntry.action == "remove"))
        moves = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "assign", AuditEntry.member_id == removal.member_id))
    assert owners == {carol_id} and reminder.member_id == carol_id and moves == 2
    assert removal.after == {"member_id": bob_id, "to": carol_id, "customers": 2, "reminders": 1}
    for model in (PendingChoice, Conversation, LinkCode):
        assert await count(bob, model, model.member_id == bob_id) == 0, model

    for text in ("/find Tom", "/show #1", "/reminders", "/add Spy Co", "/team", "/link", "/export"):
        await bob.say(text)
        assert "You no longer have access to “console”" in bob.text, text
    await bob.say("/history #1")
    assert "Tom" not in bob.text

    await alice.say("/team")
    items = alice.last[0].items
    assert alice.last[0].title == "Members of “console”: 2"
    assert items[-2] == "Without access (1):" and items[-1].startswith("Bob · rep · removed 2026-11-18")
    await carol.say("/show Tom Li")
    assert carol.last[0].title == "#1 Tom Li"

    inbox = Inbox()
    clock.advance(days=1)
    await Scheduler(core.db, services, {"telegram": inbox}).poll()
    assert [chat for chat, _ in inbox.sent] == ["dm-carol-tg"]  # the reminder went to Carol, not Bob

    await alice.say("/team restore Bob")
    assert "Bob has access again." in alice.text
    await bob.say("/find Acme")
    assert "Tom Li" in bob.text  # visibility=team: he sees the book again, his customers stay Carol's
    await alice.say("/team remove Bob")  # to the admin by default
    assert "went to Alice" in alice.text


async def test_removing_is_for_admins_and_never_leaves_a_book_without_an_admin(core: Core, alice: Chat) -> None:
    bob, carol = await team_of_three(core, alice)
    await carol.say("/team remove Bob")
    assert "Only an admin can do this" in carol.text
    await alice.say("/team remove Alice to Carol")
    assert "Alice is the only admin" in alice.text
    await alice.say("/team remove Bo")  # a part of a name is not enough to take someone's access
    assert "couldn't find one team member named “Bo”" in alice.text
    await alice.say("/team remove Bob to Bob")
    assert "can't hand their customers to themselves" in alice.text
    await alice.say("/team remove Bob to")
    assert "/team remove Bob to Alice" in alice.text
    await alice.say("/team remove")
    assert "/team remove Bob to Alice" in alice.text
    await alice.say("/role Carol admin")
    await alice.say("/移除 Alice to Carol")  # the Chinese shortcut; now another admin is left
    assert "Alice no longer has access" in alice.text or "no longer have access" in alice.text
    await carol.say("/role Carol rep")
    assert "Carol is the only admin" in carol.text
    await carol.say("/team restore Alice")
    await carol.say("/team restore Alice")
    assert "Couldn't" not in carol.text and "couldn't find one team member named “Alice”" in carol.text


async def test_a_removed_member_can_not_come_back_by_invite_or_by_using_the_chat(core: Core, alice: Chat) -> None:
    bob, _ = await team_of_three(core, alice)
    await alice.say("/invite")
    code = code_in(alice)
    await alice.say("/team remove Bob")
    await bob.say(f"/join {code}")
    assert "an invite doesn't bring you back" in bob.text
    bob_in_console = Chat(core, user_id="bob-console", name="Bob")
    await bob_in_console.say("/find x")  # a new account is a new person: it joins as usual
    assert (await member(bob_in_console)).name == "Bob"
    assert (await member(bob)).removed_at is not None
    await bob.say("/start")  # his private chat may start a book of his own
    assert "Your customer book “Bob's customers” is ready" in bob.text
    await bob.say("/find x")
    assert "no longer have access" not in bob.text


async def test_invites_are_listed_revoked_audited_and_an_admin_invite_works_once(core: Core, alice: Chat) -> None:
    await alice.say("/invite list")
    assert "No open invites" in alice.text
    await alice.say("/invite admin")
    admin_code = code_in(alice)
    await alice.say("/invite")
    rep_code = code_in(alice)
    await alice.say("/invite list")
    assert alice.last[0].title == "Open invites of “console”: 2" and alice.last[0].private
    assert any(item.startswith(f"{admin_code} · admin · by Alice · used 0 times") for item in alice.last[0].items)

    dave, erin = Telegram(core, "dave", "Dave"), Telegram(core, "erin", "Erin")
    await dave.say(f"/join {admin_code}")
    assert "Your role: admin" in dave.text
    await erin.say(f"/join {admin_code}")
    assert "unknown or has expired" in erin.text and await member(erin) is None
    await erin.say(f"/join {rep_code}")
    await alice.say("/invite list")
    assert alice.last[0].items == [next(i for i in alice.last[0].items if i.startswith(f"{rep_code} · rep"))]
    assert "used 1 times" in alice.last[0].items[0]

    await alice.say(f"/invite revoke {rep_code.lower()}")
    assert f"The invite {rep_code} no longer works (it was used 1 times)." in alice.text
    frank = Telegram(core, "frank", "Frank")
    await frank.say(f"/join {rep_code}")
    assert "unknown or has expired" in frank.text
    await alice.say(f"/invite revoke {rep_code}")
    assert "There's no open invite" in alice.text
    await alice.say("/invite revoke")
    assert "/invite revoke K7MX3QPA" in alice.text
    async with core.db.transaction() as session:
        joins = [entry.after for entry in await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "join").order_by(AuditEntry.id))]
    assert [(j["code"], j["role"]) for j in joins] == [(admin_code, "admin"), (rep_code, "rep")]
    assert await count(alice, AuditEntry, AuditEntry.action == "revoke_invite") == 1
    assert await count(alice, Invite) == 0


async def test_a_manager_invite_promotes_a_rep_and_says_role_is_the_other_way(core: Core, alice: Chat) -> None:
    bob, _ = await team_of_three(core, alice)
    await alice.say("/invite manager")
    code = code_in(alice)
    await bob.say(f"/join {code}")
    assert "You're now manager in “console” (you were rep)" in bob.text and "/role" in bob.text
    assert (await member(bob)).role == "manager"
    await bob.say(f"/join {code}")  # not higher than what he has: nothing changes
    assert "already a member of “console” (role: manager)" in bob.text
    zh = Telegram(core, "zhao", "赵", language="zh")
    await alice.say("/invite")
    await zh.say(f"/join {code_in(alice)}")
    await zh.say(f"/加入 {code}")
    assert "你在“console”的角色已升为经理（原为销售）" in zh.text and "/role" in zh.text
    async with core.db.transaction() as session:
        joins = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "join")))
    promotions = [(entry.before["role"], entry.after["role"]) for entry in joins if entry.before]
    assert promotions == [("rep", "manager"), ("rep", "manager")]


async def test_a_suspended_member_gets_no_reminders_silent_lists_or_digests_until_restored(
    core: Core, alice: Chat, services, clock
) -> None:
    bob, carol = await team_of_three(core, alice)
    await bob.say("/add Tom Li")
    await bob.say("/remind Tom tomorrow 10am call back")
    await carol.say("/digest on 08:30")
    async with core.db.transaction() as session:
        suspended = await offboarding.suspend_account(session, "telegram", "bob-tg", how=offboarding.LEFT,
                                                      now=clock.now)
        await offboarding.suspend_account(session, "telegram", "carol-tg", how=offboarding.LEFT, now=clock.now)
    assert [m.name for m in suspended] == ["Bob"]
    inbox = Inbox()
    scheduler = Scheduler(core.db, services, {"telegram": inbox, "console": inbox})
    await scheduler.poll()
    assert [chat for chat, _ in inbox.sent] == ["dm-alice", "dm-alice"]  # one notice per member suspended
    notices = [reply for _, reply in inbox.sent if "Bob" in reply.plain_text()]
    assert len(notices) == 1 and "Bob left the group of “console”" in notices[0].plain_text()
    assert [b.label for b in notices[0].all_buttons()] == ["Restore"]

    clock.advance(days=70)  # the reminder, Tom's silence, Carol's digest: all due
    await scheduler.poll()
    assert {chat for chat, _ in inbox.sent} == {"dm-alice"}, [(c, r.plain_text()[:40]) for c, r in inbox.sent]

    await alice.press("Restore", notices)
    assert "Bob has access again." in alice.text and alice.last[0].edit
    await alice.press("Restore", notices)
    assert "Bob has access already." in alice.text
    clock.advance(minutes=5)
    await scheduler.poll()
    assert any(chat == "dm-bob-tg" and "Tom Li" in reply.plain_text() for chat, reply in inbox.sent)


async def test_removal_reaches_every_linked_account(core: Core, alice: Chat) -> None:
    await alice.say("/start")  # the console book's first user: its admin
    bob_console = Chat(core, user_id="bob", name="Bob")  # joins it as a rep
    await bob_console.say("/link")
    bob_telegram = Telegram(core, "bob-tg", "Bob")
    await bob_telegram.say(f"/link {code_in(bob_console)}")
    assert "Linked" in bob_telegram.text
    await alice.say("/team remove Bob")
    for chat in (bob_console, bob_telegram):
        await chat.say("/find x")
        assert "You no longer have access to “console”" in chat.text, chat.platform

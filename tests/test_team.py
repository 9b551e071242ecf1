"""/start, /team, /invite, /join, /role, /link, /settings, /me, /help — on SQLite and PostgreSQL.

Telegram is played by hand-built requests: a private chat has no space, a group
is the space "-100123" that waits for /start (space_autocreate off).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import replace

from sqlalchemy import func, select

from handlers.core import Core
from handlers.help import command_menu
from handlers.i18n import catalogue
from handlers.identity import BUTTON_SUBJECTS, FLOW_BUTTONS
from handlers.messages import Reply
from handlers.registry import ACTIONS, COMMANDS
from reminders.delivery import leaving
from reminders.scheduler import Scheduler
from storage.models import AuditEntry, Identity, Member, Reminder, Space, Workspace
from tests.chat import Chat

GROUP = "-100123"
CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{8}\b")
SPEC_COMMANDS = (
    "add edit show find log tag tags deal feedback remind reminders done snooze silent assign dupes merge delete "
    "restore forget history import export digest team invite join role link settings me help start cancel"
).split()


# --- helpers ------------------------------------------------------------------------------

class Telegram(Chat):
    """A Telegram user: a private chat with the bot, or the group GROUP (which waits for /start)."""

    def __init__(self, core: Core, user_id: str, name: str, *, language: str = "en", group: bool = False) -> None:
        super().__init__(core, user_id=user_id, name=name, language=language, platform="telegram",
                         space=GROUP if group else None, chat_id=GROUP if group else None, private=not group)

    async def say(self, text: str, **_: object) -> list:
        return await self.send(replace(self.request(text=text), space_autocreate=False))


def code_in(chat: Chat) -> str:
    found = CODE.search(chat.text)
    assert found, chat.text
    return found[0]


async def member(chat: Chat, workspace_id: int | None = None) -> Member | None:
    """The member behind the chat's account (in `workspace_id`, else its only/latest one)."""
    query = (select(Member).join(Identity, Identity.member_id == Member.id)
             .where(Identity.platform == chat.platform, Identity.external_id == chat.user_id))
    if workspace_id is not None:
        query = query.where(Identity.workspace_id == workspace_id)
    async with chat.core.db.transaction() as session:
        return await session.scalar(query.order_by(Identity.last_seen_at.desc(), Identity.id.desc()).limit(1))


async def count(chat: Chat, model: type, *where: object) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def workspace_of(chat: Chat) -> Workspace:
    found = await member(chat)
    assert found is not None
    async with chat.core.db.transaction() as session:
        return await session.get(Workspace, found.workspace_id)


def fields(chat: Chat) -> dict[str, str]:
    return {f.label: f.value for reply in chat.last for f in reply.fields}


# --- /start and joining groups ------------------------------------------------------------------

async def test_start_in_a_private_chat_creates_a_solo_workspace(core: Core, alice: Chat, clock) -> None:
    dave = Telegram(core, "dave", "Dave")
    await dave.say("/team")
    assert "not in a team yet" in dave.text and "/start" in dave.text
    await dave.say("/start")
    assert "Your customer book “Dave's customers” is ready" in dave.text and "admin" in dave.text
    assert "/log" in dave.text and "/help" in dave.text
    me = await member(dave)
    assert me is not None and me.role == "admin"
    assert await count(dave, Space, Space.platform == "telegram") == 0  # a solo book is bound to no chat
    clock.advance(minutes=1)
    await dave.say("/start")
    assert "Welcome back to “Dave's customers”" in dave.text
    assert await count(dave, Workspace) == 1
    await alice.say("/start")  # the console joins on first use: /start just says so
    assert "You've joined “console”. Your role: admin." in alice.text and await count(dave, Workspace) == 2

    chen = Telegram(core, "chen", "陈", language="zh")
    await chen.say("/start")
    assert "你的客户簿“陈的客户”已建好" in chen.text and "/help" in chen.text
    await chen.say("/team")
    assert chen.last[0].items == [next(i for i in chen.last[0].items if i.startswith("陈（我） · 管理员"))]


async def test_group_waits_for_start_then_members_join_as_reps(core: Core) -> None:
    erin = Telegram(core, "erin", "Erin", group=True)
    frank = Telegram(core, "frank", "Frank", group=True)
    await erin.say("/add Acme")
    assert "This group has no customer book yet. Send /start" in erin.text
    assert await count(erin, Workspace) == 0 and await count(erin, Member) == 0
    await erin.say("/start")
    assert "This group now has its customer book" in erin.text
    await frank.say("/add Globex")
    assert frank.last[0].title == "#1 Globex"
    assert (await member(erin)).role == "admin" and (await member(frank)).role == "rep"
    assert await count(erin, Space, Space.platform == "telegram", Space.external_id == GROUP) == 1
    await erin.say("/team")
    assert erin.last[0].title == f"Members of “{GROUP}”: 2"
    assert erin.last[0].items[0].startswith("Erin (you) · admin · customers: 0 · last seen")
    assert erin.last[0].items[1].startswith("Frank · rep · customers: 1 · last seen")
    await frank.say("/start")
    assert "Your role: rep" in frank.text and await count(erin, Workspace) == 1


# --- /invite and /join ----------------------------------------------------------------------------

async def test_invite_and_join(core: Core, alice: Chat, bob: Chat, clock) -> None:
    await alice.say("/add Li Wei company=Acme")
    await alice.say("/invite")
    assert alice.last[0].private and "role: rep" in alice.text and "send /join" in alice.text.replace("sends", "send")
    code = code_in(alice)
    dave = Telegram(core, "dave", "Dave")
    await dave.say(f"/join {code.lower()}")  # codes are case-insensitive
    assert "You've joined “console”. Your role: rep." in dave.text
    await dave.say("/show Li Wei")
    assert dave.last[0].title == "#1 Li Wei"
    await dave.say(f"/join {code}")
    assert "already a member of “console”" in dave.text
    assert await count(alice, Member) == 2

    await alice.say("/invite manager")
    gina = Telegram(core, "gina", "Gina", language="zh")
    await gina.say(f"/join {code_in(alice)}")
    assert "你已加入“console”。你的角色：经理。" in gina.text
    assert (await member(gina)).role == "manager"

    await alice.say("/invite")
    stale = code_in(alice)
    clock.advance(days=8)
    hank = Telegram(core, "hank", "Hank")
    await hank.say(f"/join {stale}")
    assert "unknown or has expired" in hank.text and await member(hank) is None

    await alice.say("/invite boss")
    assert "/invite manager" in alice.text
    await bob.say("/invite")
    assert "只有管理员可以这样做" in bob.text
    await hank.say("/join")
    assert "/join K7MX3QPA" in hank.text
    await alice.say("/invite")
    ivy = Telegram(core, "ivy", "Ivy")
    await ivy.say(f"/start {code_in(alice)}")  # what a Telegram deep link t.me/<bot>?start=CODE sends
    assert "You've joined “console”. Your role: rep." in ivy.text


async def test_codes_are_only_shown_in_private_chats(core: Core) -> None:
    erin = Telegram(core, "erin", "Erin", group=True)
    await erin.say("/start")
    for command in ("/invite", "/link", "/join ABCDEFGH"):
        await erin.say(command)
        assert "in a private chat with the bot" in erin.text, command
    assert await count(erin, AuditEntry, AuditEntry.action == "invite") == 0


async def test_an_invite_code_never_opens_a_workspace_without_joining(core: Core, alice: Chat) -> None:
    await alice.say("/add Secret Co")
    await alice.say("/invite admin")
    code = code_in(alice)
    carol = Chat(core, user_id="carol", name="Carol", space="other-team", language="en")
    await carol.say(f"/join {code}")  # her chat belongs to her own team's book
    assert "always works on its own customer book" in carol.text
    await carol.say("/team")
    assert carol.last[0].items == [i for i in carol.last[0].items if i.startswith("Carol (you)")]
    await carol.say("/find Secret")
    assert "No customers match" in carol.text
    await alice.say("/team")
    assert "Carol" not in alice.text

    dave = Telegram(core, "dave", "Dave")
    for text in ("/show Secret Co", "/find Secret", "/team", f"/settings {code}", f"/link {code}"):
        await dave.say(text)
        assert "Secret" not in dave.text and "console" not in dave.text, text
    await dave.say("/join WRONG234")
    assert "unknown or has expired" in dave.text
    alices = (await member(alice)).workspace_id
    assert await member(dave) is None and await count(alice, Member, Member.workspace_id == alices) == 1


class Inbox:
    """A Telegram sender for the scheduler that keeps what it delivers."""

    platform = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Reply]] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        await leaving()
        self.sent.append((chat_id, reply))


async def reminder_status(chat: Chat) -> str:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(Reminder.status))


async def test_a_button_in_a_private_chat_works_on_the_book_of_what_it_names(core: Core, services, clock) -> None:
    """A member of two books: a reminder from the first, pressed in the private chat after using the second's
    group, is done in the first; someone who is not a member of that book never acts through it."""
    dave = Telegram(core, "dave", "Dave")
    await dave.say("/start")  # his own book
    await dave.say("/add Tom Li")
    await dave.say("/remind #1 in 2 hours call back")
    card = await dave.say("/show #1")
    erin, dave_in_group = Telegram(core, "erin", "Erin", group=True), Telegram(core, "dave", "Dave", group=True)
    await erin.say("/start")
    clock.advance(minutes=1)
    await dave_in_group.say("/add Globex")  # now the private chat's latest book is the group's
    await dave.say("/show #1")
    assert dave.last[0].title == "#1 Globex"

    inbox = Inbox()
    clock.advance(hours=3)
    await Scheduler(core.db, services, {"telegram": inbox}).poll()
    [(chat, delivered)] = inbox.sent
    assert chat == "dm-dave" and "Tom Li" in delivered.plain_text()

    mallory = Telegram(core, "mallory", "Mallory")  # in the group's book only
    await Telegram(core, "mallory", "Mallory", group=True).say("/team")
    for label in ("Done", "Snooze 1 day", "Log"):
        await mallory.press(label, [delivered])
        assert "That button has expired" in mallory.text, label
    await mallory.press("Tag", card)
    assert "That button has expired" in mallory.text
    assert await reminder_status(dave) == "pending"

    await dave.press("Done", [delivered])
    assert "Reminder #1 done" in dave.text and await reminder_status(dave) == "done"
    await dave.press("Log", [delivered])  # the log form, in that book: typed answers go on in it
    await dave.say("visit")
    await dave.say("talked it over")
    await dave.press("Skip")  # no next follow-up
    assert "Logged for #1 Tom Li: visit" in dave.text
    await dave.say("/show #1")
    assert dave.last[0].title == "#1 Tom Li" and "talked it over" in dave.text
    await dave_in_group.say("/show #1")  # the group keeps its own book
    assert dave_in_group.last[0].title == "#1 Globex"

    clock.advance(minutes=1)
    await dave.press("Tag", card)  # his book again …
    await dave.say("/add")  # … with a guided flow in the private chat
    await dave.say("Ann")
    question = dave.last
    clock.advance(minutes=1)
    await dave_in_group.say("/team")  # its buttons go on in his book after he used the group
    await dave.press("Skip", question)
    assert "(3/8) Title?" in dave.text
    await dave.press("Cancel", question)
    assert "Cancelled" in dave.text
    await dave.say("Ann")  # the flow is gone from the private chat
    assert "don't know the command" in dave.text

    clock.advance(minutes=1)
    await dave.press("Tag", card)
    await dave.say('/add "Tom Wang"')
    which = await dave.say("/show tom")  # a stored choice of his book
    clock.advance(minutes=1)
    await dave_in_group.say("/team")
    await dave.press("Tom Li", which)
    assert dave.last[-1].title == "#1 Tom Li"


def test_every_button_says_which_book_it_belongs_to() -> None:
    """A new button action has to say what its payload names, or a private chat would press it in the wrong book."""
    importlib.import_module("handlers.commands")
    assert set(ACTIONS) == set(BUTTON_SUBJECTS) | set(FLOW_BUTTONS)


# --- /role ------------------------------------------------------------------------------------

async def test_role_changes_are_audited_and_keep_an_admin(alice: Chat, bob: Chat) -> None:
    await alice.say("/team")  # the first user is the admin
    await bob.say("/team")
    await alice.say("/role Bob manager")
    assert "Bob: role rep → manager." in alice.text
    assert (await member(bob)).role == "manager"
    async with alice.core.db.transaction() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "role"))
    bob_id = (await member(bob)).id
    assert entry.customer_id is None and entry.member_id == (await member(alice)).id
    assert entry.before == {"member_id": bob_id, "role": "rep"} and entry.after == {"member_id": bob_id, "role": "manager"}

    await bob.say("/role Alice rep")
    assert "只有管理员可以这样做" in bob.text
    await alice.say("/role me rep")
    assert "Alice is the only admin" in alice.text and (await member(alice)).role == "admin"
    await alice.say("/role Bob manager")
    assert "already manager" in alice.text
    for text, expected in [("/role Bob boss", "/role Bob manager"), ("/role Nobody admin", "couldn't find one team member"),
                           ("/role admin", "/role Bob manager")]:
        await alice.say(text)
        assert expected in alice.text, text
    await alice.say("/role Bob 管理员")
    await alice.say("/role Alice rep")
    assert "Alice: role admin → rep." in alice.text
    assert await count(alice, Member, Member.role == "admin") == 1


# --- /link ----------------------------------------------------------------------------------

async def test_link_console_to_telegram_makes_one_member(core: Core, alice: Chat) -> None:
    await alice.say("/add Li Wei company=Acme")
    await alice.say("/link")
    assert alice.last[0].private and "10 minutes" in alice.text
    code = code_in(alice)
    phone = Telegram(core, "alice-tg", "Alice T")
    await phone.say(f"/link {code}")
    assert "this Telegram account is now Alice (admin) in “console”" in phone.text
    await phone.say("/add Wang Fang")
    await alice.say("/show Wang Fang")
    assert fields(alice)["Owner"] == "Alice"
    await phone.say("/show Li Wei")
    assert fields(phone)["Owner"] == "Alice"
    await phone.say("/team")
    assert phone.last[0].items == ["Alice (you) · admin · customers: 2 · last seen 2026-11-18 Wed 15:00 · console, Telegram"]
    assert await count(alice, Member) == 1 and await count(alice, AuditEntry, AuditEntry.action == "link") == 1

    stranger = Telegram(core, "mallory", "Mallory")
    await stranger.say(f"/link {code}")  # single use
    assert "unknown, used or expired" in stranger.text and await member(stranger) is None


async def test_link_errors(core: Core, alice: Chat, bob: Chat, clock) -> None:
    phone = Telegram(core, "alice-tg", "Alice T")
    await phone.say("/link NOPE2345")
    assert "unknown, used or expired" in phone.text
    await alice.say("/link")
    stale = code_in(alice)
    clock.advance(minutes=11)
    await phone.say(f"/link {stale}")
    assert "unknown, used or expired" in phone.text

    await alice.say("/link")
    await bob.say(f"/link {code_in(alice)}")  # bob's console account can't become alice's second console account
    assert "已经有一个 控制台 账号" in bob.text

    await alice.say("/link")
    await phone.say(f"/link {code_in(alice)}")
    await alice.say("/link")
    other_phone = Telegram(core, "alice-tg-2", "Alice 2")
    await other_phone.say(f"/link {code_in(alice)}")
    assert "That member already has a Telegram account" in other_phone.text
    await phone.say("/link")
    await phone.say(f"/link {code_in(phone)}")
    assert "already linked to that member" in phone.text

    await alice.say("/invite")
    dave = Telegram(core, "dave", "Dave")
    await dave.say(f"/join {code_in(alice)}")
    clock.advance(minutes=1)
    await bob.say("/link")
    await dave.say(f"/link {code_in(bob)}")
    assert "already is a different member" in dave.text
    assert (await member(dave)).name == "Dave" and await count(alice, Member) == 3
    await dave.say("/link one two")
    assert "/link K7MX3QPA" in dave.text


async def test_a_first_message_link_does_not_leave_a_stray_member(core: Core, alice: Chat, clock) -> None:
    await alice.say("/invite")
    tina = Telegram(core, "tina", "Tina")
    await tina.say(f"/join {code_in(alice)}")
    clock.advance(minutes=5)
    await tina.say("/link")
    desk = Chat(core, user_id="tina-desk", name="Tina D", language="en")  # the console, first time
    await desk.say(f"/link {code_in(tina)}")
    assert "this console account is now Tina (rep)" in desk.text
    assert await count(alice, Member) == 2
    assert (await member(desk)).id == (await member(tina)).id


# --- /settings --------------------------------------------------------------------------------

async def test_settings_view_and_change(alice: Chat, bob: Chat) -> None:
    await alice.say("/settings")
    shown = fields(alice)
    assert shown["Time zone (timezone)"] == "Asia/Shanghai" and shown["Currency (currency)"] == "CNY"
    assert shown["Contact every, tier A (cadence_a)"] == "14 days" and "/settings timezone=" in alice.text
    await bob.say("/settings")
    assert fields(bob)["时区 (timezone)"] == "Asia/Shanghai" and "只有管理员可以修改" in bob.text

    await alice.say('/settings timezone=berlin currency=eur cadence.A=21 cadenceB=6w visibility=own '
                    'digest_time=8点半 lifetime_years=5 region=de locale=zh name="Acme Sales"')
    assert "Settings saved" in alice.text and "cadence_a: 14 days → 21 days" in alice.text
    workspace = await workspace_of(alice)
    assert (workspace.timezone, workspace.currency, workspace.cadence_a, workspace.cadence_b) == \
        ("Europe/Berlin", "EUR", 21, 42)
    assert (workspace.visibility, workspace.digest_time, workspace.lifetime_years) == ("own", "08:30", 5)
    assert (workspace.phone_region, workspace.locale, workspace.name) == ("DE", "zh", "Acme Sales")
    async with alice.core.db.transaction() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "settings"))
    assert entry.before["timezone"] == "Asia/Shanghai" and entry.after["timezone"] == "Europe/Berlin"
    assert entry.customer_id is None and "sweep_time" not in entry.after

    await alice.say("/settings sweep_time 7:00")  # `key value` works for a single setting
    assert "sweep_time: 09:00 → 07:00" in alice.text
    await alice.say("/settings currency=EUR")
    assert "Nothing changed" in alice.text


async def test_settings_errors_change_nothing(alice: Chat, bob: Chat) -> None:
    await alice.say("/settings")  # the first user is the admin
    await bob.say("/settings currency=USD")
    assert "只有管理员可以这样做" in bob.text
    for text, expected in [
        ("/settings colour=red", "There's no setting “colour”. Settings: name, timezone"),
        ("/settings currency=USD timezone=Mars/Base", "“Mars/Base” isn't a time zone I know"),
        ("/settings currency=EURO", "isn't an ISO 4217 currency code"),
        ("/settings region=XX", "two-letter country code"),
        ("/settings cadence_a=0", "Give 1 to 3650 days, e.g. cadence_a=30"),
        ("/settings cadence_none=9999", "Give 1 to 3650 days"),
        ("/settings sweep_time=25:99", "sweep_time=08:30"),
        ("/settings lifetime_years=99", "1 to 50 years"),
        ("/settings visibility=secret", "Use team"),
        ("/settings locale=fr", "Use en (English) or zh"),
        ("/settings name=", "can't be empty"),
        ("/settings timezone", "key=value"),
    ]:
        await alice.say(text)
        assert expected in alice.text, (text, alice.text)
    workspace = await workspace_of(alice)
    assert (workspace.currency, workspace.timezone, workspace.cadence_a) == ("CNY", "Asia/Shanghai", 14)
    assert await count(alice, AuditEntry, AuditEntry.action == "settings") == 0


# --- /me ----------------------------------------------------------------------------------------

async def test_me_shows_and_changes_time_zone_and_language(alice: Chat) -> None:
    await alice.say("/me")
    shown = fields(alice)
    assert shown["Role"] == "admin" and shown["Time zone"] == "Asia/Shanghai (automatic)"
    assert shown["Language"] == "English (automatic)" and shown["Daily digest"] == "off"
    await alice.say("/me tz=Europe/Berlin lang=zh")
    assert "已保存" in alice.text
    shown = fields(alice)
    assert shown["时区"] == "Europe/Berlin" and shown["语言"] == "中文"
    me = await member(alice)
    assert (me.timezone, me.locale) == ("Europe/Berlin", "zh")
    await alice.say("/team")
    assert "最近活跃 2026-11-18 周三 08:00" in alice.text  # 07:00 UTC in Berlin
    await alice.say("/me tz=Mars")
    assert "不是可识别的时区" in alice.text and (await member(alice)).timezone == "Europe/Berlin"
    await alice.say("/me colour=red")
    assert "/me tz=" in alice.text
    await alice.say("/me lang=")
    assert fields(alice)["Language"] == "English (automatic)"
    assert await count(alice, AuditEntry, AuditEntry.action == "me") == 2


# --- /help -------------------------------------------------------------------------------------

async def test_help_lists_every_command_in_both_languages(core: Core, alice: Chat, bob: Chat) -> None:
    await alice.say("/help")
    text = alice.text
    assert len(text) <= 4096
    for heading in ("Customers", "Activity", "Follow-ups", "Team", "Data"):
        assert f"\n{heading}\n" in text
    assert "/log — Log a call, visit, meeting, e-mail…" in text
    assert all(f"/{name} — " in text for name in COMMANDS), text
    await alice.say("/me lang=zh")
    await alice.say("/help")
    assert len(alice.text) <= 4096 and "/log — 记录电话、拜访、会议、邮件等" in alice.text
    assert all(f"/{name} — " in alice.text for name in COMMANDS)
    await bob.say("/帮助")  # a rep is not shown what needs a manager or an admin
    assert "跟进" in bob.text and "/invite — " not in bob.text and "/log — " in bob.text

    stranger = Telegram(core, "zhao", "赵", language="zh")  # before /start, in the account's language
    await stranger.say("/help")
    assert "我能做什么" in stranger.text and "/start — 创建或打开你的客户簿" in stranger.text


async def test_help_for_one_command_and_unknown_ones(alice: Chat, bob: Chat) -> None:
    await alice.say("/help log")
    assert alice.last[0].title.startswith("/log — ")
    assert "Usage: /log <customer> [channel:] <summary>" in alice.text
    assert "/log #12 call: asked for a quote next: friday 10am" in alice.text
    assert "See also: /remind /show /history" in alice.text
    await alice.say("/help /invite")
    assert "For admins only." in alice.text and "/invite manager" in alice.text
    await bob.say("/help 记录")  # an alias finds the command, in Chinese
    assert "用法：/log <客户>" in bob.text and "/log 李伟 电话：询价" in bob.text
    await alice.say("/help frobnicate")
    assert "There's no command “frobnicate”" in alice.text and "/add" in alice.text and "/settings" in alice.text


def test_help_texts_and_command_menu() -> None:
    for locale in ("en", "zh"):
        texts = catalogue(locale)
        for name in SPEC_COMMANDS:
            for part in ("summary", "usage", "examples"):
                assert texts.get(f"help.cmd.{name}.{part}"), (locale, name, part)
            assert len(texts[f"help.cmd.{name}.summary"]) <= 60, (locale, name)
        menu = command_menu(locale)
        names = [name for name, _ in menu]
        assert {"start", "help", "log", "team", "settings"} <= set(names)
        assert len(names) == len(set(names)) and set(names) <= set(COMMANDS)
        assert all(re.fullmatch(r"[a-z0-9_]{1,32}", name) for name in names)
        assert all(0 < len(description) <= 60 for _, description in menu)
    assert dict(command_menu("zh"))["log"] == "记录电话、拜访、会议、邮件等"


async def test_a_cadence_change_updates_silent_customers_at_once(alice: Chat, clock) -> None:
    await alice.say("/add Quiet Co")
    await alice.say('/log "Quiet Co" call: intro')
    clock.advance(days=20)
    await alice.say('/show "Quiet Co"')
    assert "silent" not in fields(alice).get("Auto tags", "")  # default cadence: 30 days
    await alice.say("/settings cadence_none=2w")
    await alice.say('/show "Quiet Co"')
    assert "silent" in fields(alice)["Auto tags"]

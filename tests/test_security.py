"""The holes of the attack report (issue 12) that the core closes, each with a test that failed before the fix:
on SQLite and PostgreSQL. The platforms' doors (signatures, webhooks, logs, Slack Connect, /healthz) are in
tests/e2e/test_hardening.py, leaving a group or a deactivated account in tests/e2e/test_offboarding.py.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.console import Console
from bot.private_files import write_private
from handlers.core import Core
from handlers.i18n import t
from handlers.messages import Attachment
from storage import code_guard
from storage.db import Database
from storage.models import Customer, CustomerTag, Interaction, Member, ProcessedUpdate, Reminder, Workspace
from tests.chat import Chat
from tests.test_records import rows_mentioning
from tests.test_team import Telegram, code_in

#: Values of a customer a rep under visibility=own must not learn, and /forget must leave nowhere.
SECRET_NAME, SECRET_PHONE, SECRET_EMAIL, SECRET_COMPANY = "Zhou Qiangwei", "13911112222", "zq@hidden.example", "Hidden Trading"
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


async def customers_in_book(chat: Chat) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Customer)) or 0


async def set_visibility(chat: Chat, visibility: str) -> None:
    async with chat.core.db.transaction() as session:
        await session.execute(update(Workspace).values(visibility=visibility))


def leaks(chat: Chat) -> list[str]:
    return [value for value in (SECRET_NAME, "Zhou", SECRET_PHONE, "1111 2222", SECRET_EMAIL, SECRET_COMPANY, "#1")
            if value in chat.text]


# --- 1. "same person?" goes through the asker's scope ----------------------------------------------------

async def test_duplicate_checks_never_show_a_customer_the_rep_may_not_see(core: Core, alice: Chat) -> None:
    await alice.say(f'/add "{SECRET_NAME}" {SECRET_PHONE} {SECRET_EMAIL} company="{SECRET_COMPANY}"')
    await set_visibility(alice, "own")
    eve = Chat(core, user_id="eve", name="Eve")
    colleague = t("en", "customer.colleague_has")

    for typed in (f"/add Someone {SECRET_PHONE}", f"/add Someone {SECRET_EMAIL}", f"/add Someone +86 139 1111 2222"):
        await eve.say(typed)
        assert eve.text == colleague and not leaks(eve), (typed, eve.text)
    await eve.submit("add", {"name": "Someone", "phone": SECRET_PHONE})  # the Slack form's door
    assert eve.text == colleague and not leaks(eve)
    await eve.say("/add")  # the guided form's door
    for answer in ("Someone", None, None, SECRET_PHONE, None, None, None, None):
        await (eve.press("Skip") if answer is None else eve.say(answer))
    assert eve.text == colleague and not leaks(eve)
    await eve.say("/import", file=Attachment("c.csv", f"name,phone\nSomeone,{SECRET_PHONE}\n".encode()))
    assert t("en", "import.reason.colleague", line=2) in eve.text and "another rep" not in eve.text
    assert not leaks(eve)
    assert await customers_in_book(eve) == 1

    await eve.say(f'/add "Zhou Qiangwai" company="{SECRET_COMPANY}"')  # a similar name there: not even said
    assert "same person" not in eve.text and "#1 " not in eve.text and await customers_in_book(eve) == 2
    await alice.say(f"/add Someone {SECRET_PHONE}")  # the admin sees everyone: asked as before
    assert f"#1 {SECRET_NAME} · {SECRET_COMPANY} looks like the same person" in alice.text

    await set_visibility(alice, "team")  # a rep who may see the customer is asked, as before
    await eve.say(f"/add Someone {SECRET_PHONE}")
    assert f"#1 {SECRET_NAME} · {SECRET_COMPANY} looks like the same person" in eve.text


# --- 4. /forget leaves nothing ------------------------------------------------------------------------------

async def test_forget_leaves_the_person_in_no_table_kept_answer_or_database_file(core: Core, alice: Chat,
                                                                                 db: Database) -> None:
    await alice.say(f'/add "{SECRET_NAME}" {SECRET_PHONE} {SECRET_EMAIL} company="{SECRET_COMPANY}"')
    await alice.say(f"/log #1 call: {SECRET_NAME} wants samples")
    await alice.send(alice.request(text="/show #1", update_key="telegram:1:8", reports_answers=True))
    async with db.transaction() as session:  # the platform refused that answer: it is kept for a redelivery
        assert SECRET_NAME in (await session.get(ProcessedUpdate, "telegram:1:8")).unanswered

    await alice.say("/forget #1")
    await alice.press("Erase for good")
    assert "Erased #1 for good." in alice.text
    for needle in (SECRET_NAME, SECRET_PHONE, SECRET_EMAIL):
        assert await rows_mentioning(alice, needle) == [], needle
    if db.is_sqlite:  # and in the bytes of the files: deleted cells, the WAL
        files = [Path(db.url.database), Path(f"{db.url.database}-wal")]
        content = b"".join(path.read_bytes() for path in files if path.exists())
        for needle in (SECRET_NAME, SECRET_PHONE, SECRET_EMAIL, "Qiangwei"):
            assert needle.encode() not in content, needle


# --- 7. code guessing ---------------------------------------------------------------------------------------

async def test_wrong_codes_lock_the_account_then_everyone_and_a_restart_forgives_nothing(
    core: Core, alice: Chat, db: Database, services, clock
) -> None:
    await alice.say("/invite")
    right = code_in(alice)
    dave = Telegram(core, "dave", "Dave")
    for guess in range(code_guard.ACCOUNT_LIMIT):
        await dave.say(f"/join WRQNG{guess:03d}")
        assert "unknown or has expired" in dave.text
    assert "Too many wrong codes" in dave.text
    await dave.say(f"/join {right}")
    assert "Too many wrong codes" in dave.text and await count_members(alice) == 1
    await dave.say(f"/link {right}")  # link codes share the lock
    assert "Too many wrong codes" in dave.text
    dave.core = Core(db, services)  # a restart
    await dave.say(f"/join {right}")
    assert "Too many wrong codes" in dave.text
    clock.advance(minutes=16)
    await dave.say(f"/join {right}")
    assert "You've joined" in dave.text

    for n in range(code_guard.OVERALL_LIMIT):  # many accounts, one guess each
        await Telegram(core, f"guesser{n}", "G").say(f"/link WRQNG{n:03d}")
    newcomer = Telegram(core, "newcomer", "Nina")
    await newcomer.say(f"/join {right}")
    assert "Too many wrong codes" in newcomer.text and await count_members(alice) == 2
    clock.advance(minutes=16)
    await newcomer.say(f"/start {right}")
    assert "You've joined" in newcomer.text


async def count_members(chat: Chat) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Member)) or 0


# --- 8. one cleaning step for every door ----------------------------------------------------------------------

async def test_invisible_characters_are_stored_from_no_door(core: Core, alice: Chat) -> None:
    flipped, hidden = "Invoice\u202egpj.exe", "Ac\u200bme\u2066"
    await alice.say(f'/add "{flipped}" company={hidden}')  # typed
    await alice.submit("add", {"name": f"Form {flipped}", "company": hidden, "title": "C\u200dTO"})  # Slack form
    await alice.say("/add")  # guided
    await alice.say(f"Guided {flipped}")
    for _ in range(7):
        await alice.press("Skip")
    csv = f"name,company,tags\nCsv {flipped},{hidden},\u202ehot\n".encode()
    await alice.say("/import", file=Attachment("c.csv", csv))
    await alice.submit("log", {"customer": "#1", "channel": "call", "summary": f"sent {flipped}"})
    await alice.submit("tag", {"tags": "v\u200bip-lead"}, {"customer_id": str(await customer_id(alice, 1))})
    await alice.submit("remind", {"when": "tomorrow", "note": f"about {flipped}"},
                       {"customer_id": str(await customer_id(alice, 1))})
    mallory = Chat(core, user_id="mallory", name="Mal\u202elory")
    await mallory.say("/team")
    async with alice.core.db.transaction() as session:
        stored = [*(await session.execute(select(Customer.name, Customer.company, Customer.title))).all(),
                  *(await session.execute(select(Interaction.summary))).all(),
                  *(await session.execute(select(CustomerTag.name))).all(),
                  *(await session.execute(select(Reminder.note))).all(),
                  *(await session.execute(select(Member.name))).all()]
    text = " ".join(str(value) for row in stored for value in row)
    assert "Invoicegpj.exe" in text and "vip-lead" in text and "Mallory" in text and "hot" in text
    assert not any(ch in text for ch in "\u202e\u200b\u200d\u2066"), [v for row in stored for v in row
                                                                     if any(c in str(v) for c in "\u202e\u200b")]


async def customer_id(chat: Chat, number: int) -> int:
    async with chat.core.db.transaction() as session:
        return await session.scalar(select(Customer.id).where(Customer.number == number))


# --- 9. files readable by their owner alone ---------------------------------------------------------------------

@SQLITE_ONLY
async def test_the_database_its_wal_and_exports_are_created_0600(tmp_path: Path, core: Core, alice: Chat) -> None:
    old_umask = os.umask(0o022)  # what most systems give a process: files 0644
    try:
        database = Database(f"sqlite:///{tmp_path / 'new.db'}")
        await database.upgrade()
        async with database.transaction() as session:
            await session.execute(select(1))
            names = ("new.db", "new.db-wal", "new.db-shm")
            modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in names}
        await database.dispose()
        assert modes == dict.fromkeys(names, 0o600)

        await alice.say("/add Li Wei")
        [export] = await alice.say("/export")
        console = Console(core, default_locale="en", export_dir=tmp_path / "exports")
        saved = console.save(export.file)
        old = tmp_path / "old.csv"
        old.write_bytes(b"")
        old.chmod(0o644)
        write_private(old, export.file.content)  # `crm-bot export FILE` over a file that was there
        assert {stat.S_IMODE(p.stat().st_mode) for p in (saved, old)} == {0o600}
    finally:
        os.umask(old_umask)


# --- 10. Unicode digits never crash a handler --------------------------------------------------------------------

async def test_unicode_digits_in_buttons_and_numbers_are_refused_not_crashed_on(core: Core, alice: Chat) -> None:
    await alice.say("/add Li Wei")
    await alice.say("/remind #1 tomorrow call")
    async with alice.core.db.transaction() as session:
        reminder = await session.scalar(select(Reminder.id))
    internal = t("en", "error.internal")
    for action in (f"rdone:{reminder}:t²", f"rsnz:{reminder}:1d:m²", f"rdone:{reminder}²", "pg:abc:²", "show:¹"):
        await alice.send(alice.request(action=action))
        assert alice.text != internal, action
    for typed in ("/done ²", "/snooze ² tomorrow", "/settings lifetime_years=²", "/edit #1 cadence=፩"):
        await alice.say(typed)
        assert alice.text != internal and alice.text, typed
    console = Console(core, default_locale="en")
    console.choices = [object()]  # type: ignore[list-item]
    assert console.parse("²").text == "²"  # not a choice: no int('²')

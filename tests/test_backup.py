"""`crm-bot backup` while the bot runs, and `crm-bot restore`: a restored book answers /show and keeps
its pending reminders; a file that is not a crm-bot database of a known version is refused, and so is
a restore while the database is open; PostgreSQL gets one line pointing to pg_dump / pg_restore."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import bot.cli
from handlers.context import Services
from handlers.core import Core
from handlers.i18n import t
from storage.db import Database
from storage.search import CustomerSearch
from tests.chat import Chat
from tests.conftest import PG_DSN, Clock
from tests.test_scheduler import Bot, shanghai

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


async def crm_bot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str,
                  *argv: str, locale: str = "en") -> tuple[int, str]:
    """`crm-bot …` in this process (on a thread: it runs its own event loop): exit code and output."""
    for name, value in {"DATABASE_URL": url, "DEFAULT_LOCALE": locale, "TELEGRAM_BOT_TOKEN": "",
                        "SLACK_BOT_TOKEN": "", "LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}.items():
        monkeypatch.setenv(name, value)
    code = await asyncio.to_thread(bot.cli.main, list(argv))
    printed = capsys.readouterr()
    return code, (printed.out + printed.err).strip()


def names(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:  # closed at once: an open one would block a restore
        return [name for (name,) in connection.execute("SELECT name FROM customers ORDER BY number")]


@SQLITE_ONLY
async def test_a_backup_taken_while_the_bot_writes_is_restored_and_answers_with_its_reminders(
    db: Database, services: Services, clock: Clock, alice: Chat, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    live = Path(db.url.database)
    url = f"sqlite:///{live}"
    await alice.say("/add Kim company=Acme")
    await alice.say("/remind #1 tomorrow 10am call back")
    writer = sqlite3.connect(live, isolation_level=None)  # another process, mid-transaction
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE customers SET name = 'Not committed'")
    copy = tmp_path / "backups" / "crm-monday.db"
    copy.parent.mkdir()
    code, said = await crm_bot(monkeypatch, capsys, url, "backup", str(copy))
    writer.execute("ROLLBACK")
    writer.close()
    assert code == 0, said
    assert said.startswith(f"Backed up {live} → {copy} (") and said.count("\n") == 0
    assert names(copy) == ["Kim"] and copy.stat().st_mode & 0o777 == 0o600
    assert not list(copy.parent.glob("*.partial"))

    await alice.say("/add Lee")  # after the backup: the restore takes the book back to before it
    code, said = await crm_bot(monkeypatch, capsys, url, "restore", str(copy))
    assert code == 1 and said == "crm-bot restore: " + t("en", "cli.backup.in_use", database=live)
    assert names(live) == ["Kim", "Lee"]  # the running bot's book is untouched

    await db.dispose()  # the bot stops
    code, said = await crm_bot(monkeypatch, capsys, url, "restore", str(copy))
    assert code == 0, said
    [aside] = tmp_path.glob("crm.db.before-restore-*")
    assert said.startswith(f"Restored {copy} into {live} (version ") and str(aside) in said
    assert names(aside) == ["Kim", "Lee"] and names(live) == ["Kim"]  # the replaced book is kept beside it

    restarted = Database(url)
    try:
        fresh = Services(clock=clock, search=CustomerSearch(clock, sync_interval=0),
                         default_timezone="Asia/Shanghai", default_locale="en")
        again = Chat(Core(restarted, fresh), user_id="alice", name="Alice", language="en")
        await again.say("/show Kim")
        assert "Kim" in again.text and "Acme" in again.text
        scheduler = Bot(restarted, fresh)
        await scheduler.at(shanghai(11, 19, 10))
        [reminder] = scheduler.sender.to("dm-alice")
        assert "Kim" in reminder.plain_text() and "call back" in reminder.plain_text()
    finally:
        await restarted.dispose()


@SQLITE_ONLY
async def test_a_restore_refuses_what_is_not_a_known_crm_bot_database_and_changes_nothing(
    db: Database, alice: Chat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    await alice.say("/add Kim")
    await db.dispose()
    live = Path(db.url.database)
    url = f"sqlite:///{live}"
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database")
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE t (x)")
    future = tmp_path / "future.db"
    code, _ = await crm_bot(monkeypatch, capsys, url, "backup", str(future))
    assert code == 0
    with closing(sqlite3.connect(future)) as connection, connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    cases = {
        text_file: "is not a SQLite database",
        other: t("en", "cli.backup.not_crm", path=other),
        future: t("en", "cli.backup.newer", path=future, revision="0099_from_the_future"),
        tmp_path / "missing.db": f"can't use {tmp_path / 'missing.db'}: No such file or directory.",
    }
    for path, expected in cases.items():
        code, said = await crm_bot(monkeypatch, capsys, url, "restore", str(path))
        assert code == 1 and said.startswith("crm-bot restore: ") and expected in said and "\n" not in said, said
    code, said = await crm_bot(monkeypatch, capsys, url, "restore", str(text_file), locale="zh")
    assert code == 1 and "不是 SQLite 数据库" in said
    assert names(live) == ["Kim"] and not list(tmp_path.glob("crm.db.*"))


@SQLITE_ONLY
async def test_a_backup_onto_the_database_itself_or_of_an_empty_file_is_refused(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    live = Path(db.url.database)
    code, said = await crm_bot(monkeypatch, capsys, f"sqlite:///{live}", "backup", str(live))
    assert code == 1 and said == "crm-bot backup: " + t("en", "cli.backup.same_file", path=live)
    empty = tmp_path / "never-started.db"
    code, said = await crm_bot(monkeypatch, capsys, f"sqlite:///{empty}", "backup", str(tmp_path / "copy.db"))
    assert code == 1 and said == "crm-bot backup: " + t("en", "cli.backup.no_book", database=empty)
    assert not (tmp_path / "copy.db").exists()


async def test_on_postgresql_backup_and_restore_point_to_pg_dump_and_pg_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"{PG_DSN}/crm_production"
    code, said = await crm_bot(monkeypatch, capsys, url, "backup", str(tmp_path / "x.db"))
    assert code == 1 and "\n" not in said and "pg_dump -Fc -f crm.dump crm_production" in said
    code, said = await crm_bot(monkeypatch, capsys, url, "restore", str(tmp_path / "x.db"), locale="zh")
    assert code == 1 and "\n" not in said and "pg_restore" in said and "恢复" in said
    assert not (tmp_path / "x.db").exists()

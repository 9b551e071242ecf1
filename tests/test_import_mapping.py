"""The mapping step on every door, the command line's --map and --dry-run, how big imports are written,
and /export xlsx."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, func, select

import bot.cli
from bot.console import Console
from handlers.core import Core
from handlers.messages import Attachment
from storage.db import Database
from storage.models import Customer, ImportFile
from storage.transfer import plan as planning
from storage.transfer.sheets import Sheet
from handlers.i18n import t
from tests.chat import Chat

LAYOUTS = Path(__file__).with_name("fixtures") / "layouts"
LEDGER = Attachment("ledger.xlsx", (LAYOUTS / "ledger.xlsx").read_bytes())


async def customers(chat: Chat) -> dict[str, Customer]:
    async with chat.core.db.transaction() as session:
        return {c.name: c for c in await session.scalars(select(Customer).order_by(Customer.number))}


async def test_change_a_column_then_import_from_the_console(alice: Chat) -> None:
    """Console: the buttons are numbered choices; each change shows the preview again."""
    console = Console(alice.core, default_locale="en")
    console.user, console.language = "alice", "en"
    await alice.say("/import", file=LEDGER)
    console.show_all(alice.last[:1])
    assert [b.label for b in console.choices] == ["Import", "Change", "Cancel"]
    await alice.send(console.parse("2"))  # Change
    console.show_all(alice.last[:1])
    assert [b.label for b in console.choices][-2:] == ["工号 → Not imported", "Back"], console.choices
    await alice.send(console.parse(str(len(console.choices) - 1)))
    console.show_all(alice.last[:1])
    assert alice.last[0].text == "What does “工号” hold?"
    notes = next(i for i, b in enumerate(console.choices, 1) if b.label == "Notes")
    await alice.send(console.parse(str(notes)))
    assert alice.last[0].edit and "Notes ← 备注 + 最后跟进时间 + 工号" in alice.last[0].text
    assert "I don't know these columns" not in alice.last[0].text
    console.show_all(alice.last[:1])
    await alice.send(console.parse("1"))  # Import
    assert "Rows read: 3. Added: 3;" in alice.text and "Columns not imported" not in alice.text
    assert "工号: A-017" in (await customers(alice))["李伟"].prefs


async def test_a_colleague_cannot_press_someone_elses_import(alice: Chat, bob: Chat) -> None:
    await bob.say("/help")
    await alice.say("/import", file=LEDGER)
    preview = alice.last
    await bob.send(bob.request(action=alice.button("Import", preview).action))
    assert bob.text == t("zh", "error.choice_not_yours")
    assert await customers(alice) == {}


async def test_the_kept_file_survives_a_restart_and_cancel_drops_it(db: Database, services, alice: Chat) -> None:
    await alice.say("/import", file=LEDGER)
    preview = alice.last
    restarted = Chat(Core(db, services), user_id="alice", name="Alice")
    await restarted.press("Cancel", preview)
    assert restarted.text == "Import of ledger.xlsx cancelled. Nothing was changed."
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ImportFile)) == 0


async def test_slack_opens_one_select_per_column_and_shows_the_preview_again(core: Core) -> None:
    una = Chat(core, user_id="U1", name="Una", platform="slack", space="T1", chat_id="D1")
    await una.say("/import", file=LEDGER)
    preview = una.last
    [reply] = await una.send(una.request(action=una.button("Change", preview).action, supports_forms=True))
    form = reply.form
    assert form is not None and form.name == "importmap"
    fields = {f.label: f for f in form.fields}
    assert fields["工号"].initial == "unused" and fields["负责人"].initial == "owner"
    assert ("notes", "Notes") in fields["工号"].options
    await una.submit("importmap", {fields["工号"].key: "notes", fields["负责人"].key: "owner"}, form.context)
    assert "Notes ← 备注 + 最后跟进时间 + 工号" in una.text
    await una.press("Import")
    assert "Rows read: 3. Added: 3;" in una.text


def test_cli_map_and_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)

    async def first_use() -> None:
        from handlers.context import Services
        from storage.search import CustomerSearch
        database = Database(url)
        await database.upgrade()
        await Chat(Core(database, Services(clock=clock, search=CustomerSearch(clock), default_locale="zh")),
                   user_id="alice", name="Alice", language="zh").say("/help")
        await database.dispose()

    asyncio.run(first_use())
    ledger = str(LAYOUTS / "ledger.xlsx")
    assert bot.cli.main(["import", ledger, "--map", "备注=工号", "--map", "电话=联系电话", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "备注 ← 备注 + 最后跟进时间 + 工号" in out and "• 李伟 · 华东贸易（上海）有限公司 · 138 0013 8000" in out
    assert "试运行，没有写入任何数据。共 3 行：将新增 3" in out

    async def count() -> int:
        database = Database(url)
        async with database.transaction() as session:
            found = await session.scalar(select(func.count()).select_from(Customer))
        await database.dispose()
        return found or 0

    assert asyncio.run(count()) == 0
    assert bot.cli.main(["import", ledger, "--map", "备注=工号"]) == 0
    assert asyncio.run(count()) == 3
    assert bot.cli.main(["import", ledger, "--map", "colour=工号"]) == bot.cli.EXIT_FAILED
    assert "“colour”不是可导入的内容" in capsys.readouterr().err
    assert bot.cli.main(["import", ledger, "--map", "备注=nowhere"]) == bot.cli.EXIT_FAILED
    capsys.readouterr()
    assert bot.cli.main(["import", ledger, "--map", "工号"]) == bot.cli.EXIT_FAILED  # no FIELD=
    assert "--map 工号：请写成 字段=列名" in capsys.readouterr().err
    out = tmp_path / "book.xlsx"
    assert bot.cli.main(["export", str(out)]) == 0
    sheet = load_workbook(out).active
    assert [c.value for c in sheet[1]][:5] == ["编号", "姓名", "公司", "职位", "电话"]
    assert sheet["E2"].value == "138 0013 8000" and sheet["E2"].data_type == "s"


async def test_export_xlsx_keeps_phones_as_text_and_formulas_as_words(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 prefs==SUM(A1) company=华东贸易")
    await alice.say("/export xlsx")
    reply = alice.last[0]
    assert reply.file is not None and reply.file.name.endswith(".xlsx")
    assert "as an Excel workbook (phones are text cells)" in reply.text
    sheet = load_workbook(io.BytesIO(reply.file.content)).active
    row = {header.value: cell for header, cell in zip(sheet[1], sheet[2])}
    assert row["Phone"].value == "138 0013 8000" and row["Phone"].data_type == "s"
    assert row["Preferences"].value == "=SUM(A1)" and row["Preferences"].data_type == "s"  # no apostrophe
    assert row["#"].value == 1 and row["Owner"].value == "Alice"
    await alice.say("/import", file=reply.file)  # the workbook imports back as merges only
    assert "Rows read: 1. Added: 0; merged into customers already in the book: 1;" in alice.text
    await alice.say("/export pdf")
    assert alice.text == "/export writes CSV; /export xlsx writes an Excel workbook."


# --- big files --------------------------------------------------------------------------------

async def test_the_row_cap_is_checked_without_reading_the_whole_file(monkeypatch: pytest.MonkeyPatch,
                                                                      alice: Chat) -> None:
    """A 1,000,000-row file is refused after the cap's worth of rows has been read, none of them kept."""
    read = 0
    rows = Sheet.rows

    def counting(sheet: Sheet):  # type: ignore[no-untyped-def]
        nonlocal read
        for row in rows(sheet):
            read += 1
            yield row

    monkeypatch.setattr(Sheet, "rows", counting)
    content = b"name,phone\n" + b"x,1\n" * 1_000_000
    await alice.say("/import", file=Attachment("huge.csv", content))
    assert "more than 50,000 rows" in alice.text
    assert read < 60_000 + planning.SAMPLE_ROWS * 2 + 20  # the header scan, the preview rows, the cap
    assert await customers(alice) == {}


async def test_an_import_commits_batch_by_batch_and_lets_a_waiting_command_in(db: Database, alice: Chat,
                                                                            core: Core) -> None:
    """Each batch is its own transaction; a command that arrives meanwhile (another team's) runs between
    two batches instead of after the import."""
    carol = Chat(core, user_id="carol", name="Carol", space="other-team")
    await carol.say("/help")
    commits: list[str] = []
    event.listen(db.command_engine.sync_engine, "commit", lambda conn: commits.append("commit"))
    seen_during: list[int] = []

    async def progress(reply) -> None:  # type: ignore[no-untyped-def]
        if not seen_during:  # after the first batch: another team's command comes in
            seen_during.append(len(commits))
            asyncio.get_running_loop().create_task(other_team())

    answered_at: list[int] = []

    async def other_team() -> None:
        await carol.say("/tags")
        answered_at.append(len(commits))

    rows = "".join(f"p{i},1390000{i:04d}\n" for i in range(3000))
    await alice.send(alice.request(text="/import", file=Attachment("b.csv", f"name,phone\n{rows}".encode()),
                                   progress=progress))
    assert "Rows read: 3,000. Added: 3,000;" in alice.text
    batches = 3000 // 500
    assert len(commits) >= batches + 1  # the command, then one commit per batch
    assert answered_at and answered_at[0] < seen_during[0] + batches  # answered before the import's end

"""The console as a person types into it: files only for commands that take one, numbered buttons,
who is typing, its own lines in the book's language, and Ctrl-C at any moment."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console as RichConsole
from sqlalchemy import select

import bot.console
from bot.console import Console
from handlers.core import Core
from handlers.messages import Button, Reply
from storage.models import Customer, Interaction, Member, Workspace

LONG_NOTE = "客户说下个月预算会批下来但是需要我们先提供三家供应商的比价单" * 4  # ~120 characters, ~360 bytes

ROOT = Path(__file__).resolve().parents[1]  # the code next to these tests, also in a subprocess


def console_for(core: Core, *, user: str | None = "Alice", locale: str = "en") -> tuple[Console, io.StringIO]:
    """A console on `core`, whose DEFAULT_LOCALE (what a new book speaks) is `locale`."""
    core.services.default_locale = locale
    screen = io.StringIO()
    out = RichConsole(file=screen, width=250, highlight=False, color_system=None)
    return Console(core, default_locale=locale, user=user, out=out), screen


async def typed(console: Console, screen: io.StringIO, *lines: str) -> str:
    """Run a script through the console, as `crm-bot console < script` does; what it printed."""
    console.lines = io.StringIO("".join(f"{line}\n" for line in lines))
    await console.run()
    return screen.getvalue()


async def stored(core: Core, model: type, *columns: object) -> list[tuple]:
    async with core.db.transaction() as session:
        return [tuple(row) for row in await session.execute(select(*columns).order_by(model.id))]


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No terminal language, no CRM_CONSOLE_USER, and a folder of our own to look for files in."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG", "CRM_CONSOLE_USER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)


# --- files: only for commands that take one (items 1 and 2) ---------------------------------------------

async def test_a_long_last_word_is_a_note_not_a_file_name(core: Core) -> None:
    console, screen = console_for(core)
    shown = await typed(console, screen, "/add 王芳", f"/log 王芳 电话: {LONG_NOTE}")
    assert "Traceback" not in shown and "Logged for #1 王芳" in shown
    assert await stored(core, Interaction, Interaction.summary) == [(LONG_NOTE,)]


async def test_a_last_word_that_names_a_file_stays_in_the_note(core: Core) -> None:
    Path("README.md").write_text("# not for the note\n")
    console, screen = console_for(core)
    shown = await typed(console, screen, "/add Bob", "/log Bob note: sent them the README.md")
    assert await stored(core, Interaction, Interaction.summary) == [("sent them the README.md",)]
    assert "Logged for #1 Bob" in shown


async def test_import_takes_a_quoted_path_with_spaces_and_says_when_there_is_no_such_file(core: Core) -> None:
    Path("my customers.csv").write_text("name,phone\nZhang San,13700000001\nLi Si,13700000002\n")
    console, screen = console_for(core)
    shown = await typed(console, screen, '/import "my customers.csv"', "/import nowhere.csv",
                        f"/import {'x' * 300}.csv")
    assert "Import of my customers.csv" in shown and "Added: 2;" in shown
    assert "I couldn't find the file “nowhere.csv”" in shown
    assert "Traceback" not in shown
    assert await stored(core, Customer, Customer.name) == [("Zhang San",), ("Li Si",)]


async def test_the_chinese_import_alias_takes_a_file_too(core: Core) -> None:
    Path("客户.csv").write_text("姓名,电话\n张三,13700000001\n", encoding="utf-8")
    console, screen = console_for(core, locale="zh")
    shown = await typed(console, screen, "/导入 客户.csv")
    assert "新增 1" in shown
    assert await stored(core, Customer, Customer.name) == [("张三",)]


# --- empty lines and Ctrl-C (item 4) ------------------------------------------------------------------

async def test_an_empty_line_answers_nothing(core: Core) -> None:
    console, screen = console_for(core)
    shown = await typed(console, screen, "", "   ", "\t", "/help")
    assert "don't know the command" not in shown and "“?”" not in shown
    assert [line for line in shown.splitlines() if line.startswith(">")] == ["> /help"]  # nothing else echoed


def _console_process(tmp_path: Path, stdin: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
           "DEFAULT_LOCALE": "en",
           "TELEGRAM_BOT_TOKEN": "", "SLACK_BOT_TOKEN": "", "LANG": "C.UTF-8", "TERM": "dumb"}
    return subprocess.Popen([sys.executable, "-m", "bot", "console"], cwd=tmp_path, env=env, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(process: subprocess.Popen, text: bytes, seconds: float = 30) -> bytes:
    """Read the process's output until `text` shows (the console waits for input then)."""
    os.set_blocking(process.stdout.fileno(), False)
    seen, deadline = b"", time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        chunk = process.stdout.read() or b""
        seen += chunk
        if not chunk:
            time.sleep(0.05)
    assert text in seen, seen.decode(errors="replace")
    return seen


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal"])
def test_ctrl_c_while_waiting_for_input_quits_at_once(tmp_path: Path, terminal: bool) -> None:
    """Before, input was read in asyncio's default executor, which the loop waits for on the way out:
    Ctrl-C did nothing until Enter."""
    if terminal:
        import pty

        controller, stdin = pty.openpty()
    else:
        stdin, controller = os.pipe()  # kept open: the console waits for a line that never comes
    process = _console_process(tmp_path, stdin)
    try:
        seen = _wait_for(process, b"/help lists the commands")
        time.sleep(0.3)  # waiting for input now
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        elapsed = time.monotonic() - started
        seen += process.stdout.read() or b""
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
        os.close(stdin)
    output = seen.decode(errors="replace")
    assert process.returncode == 130, output
    assert elapsed < 5 and "Traceback" not in output and "Bye." in output


# --- buttons: numbered once per answer (item 14) ----------------------------------------------------------

def test_buttons_of_every_group_of_one_answer_get_their_own_numbers(core: Core) -> None:
    console, screen = console_for(core)
    console.show_all([
        Reply(text="Due today", buttons=[[Button("Done", "a:1"), Button("Snooze", "a:2")], [Button("Log", "a:3")]]),
        Reply(text="Silent", buttons=[[Button("Log", "b:1"), Button("Mark lost", "b:2")]]),
    ])
    shown = screen.getvalue()
    assert "[1] Done   [2] Snooze" in shown and "[3] Log" in shown and "[4] Log   [5] Mark lost" in shown
    assert [console.parse(str(n)).action for n in range(1, 6)] == ["a:1", "a:2", "a:3", "b:1", "b:2"]
    console.show_all([Reply(text="Saved.")])  # an answer without buttons leaves the choices as they were
    assert console.parse("5").action == "b:2"


async def test_every_button_of_a_crowded_answer_can_be_pressed(core: Core, clock) -> None:
    """/today answers in several messages, each with its buttons: all are reachable by their number."""
    console, screen = console_for(core)
    await typed(console, screen, "/add Kim", "/add Lee", "/remind Kim 18:00 call back", "/log Lee call: hello")
    clock.advance(days=45)  # Lee is silent now; Kim's reminder is overdue
    await typed(console, screen, "/remind Lee 23:00 bring samples", "/today")
    numbers = [int(part.split("]")[0]) for part in screen.getvalue().split("> /today")[-1].split("[")[1:]
               if part.split("]")[0].isdigit()]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) == len(console.choices) >= 4
    lost = [i for i, b in enumerate(console.choices, 1) if b.action.startswith("slost")][-1]
    assert lost > 3  # a later group's button: before, the numbers started again at 1 in every group
    pressed = (await typed(console, screen, str(lost), "1")).split(f"> {lost}")[-1]
    assert "as lost?" in pressed
    async with core.db.transaction() as session:
        assert "churned" in set(await session.scalars(select(Customer.stage)))


# --- who is typing (item 13) ------------------------------------------------------------------------------

async def test_a_new_book_is_not_named_after_the_login(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.console.getpass, "getuser", lambda: "root")
    console, screen = console_for(core, user=None)
    shown = await typed(console, screen, "/settings")
    assert await stored(core, Workspace, Workspace.name) == [("My customers",)]
    assert "Settings of “My customers”" in shown and "You are root." in shown


async def test_a_name_given_with_as_names_the_person_and_the_book(core: Core) -> None:
    console, screen = console_for(core, user="Wang Fang", locale="zh")
    shown = await typed(console, screen, "/me")
    assert await stored(core, Workspace, Workspace.name) == [("Wang Fang的客户",)]
    assert await stored(core, Member, Member.name, Member.role) == [("Wang Fang", "admin")]
    assert "当前身份：Wang Fang。" in shown


async def test_crm_console_user_still_names_the_person(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_CONSOLE_USER", "Alice")
    console, screen = console_for(core, user=None)
    await typed(console, screen, "/me")
    assert await stored(core, Member, Member.name) == [("Alice",)]


async def test_me_name_switches_the_person_so_team_features_can_be_tried(core: Core) -> None:
    console, screen = console_for(core)
    shown = await typed(console, screen, "/add Kim", "/me name=Bob lang=zh", "/assign Kim Bob",
                        "/me name=Alice", "/role Bob manager", "/assign Kim Bob", "/team")
    assert "Now typing as Bob." in shown and "语言：中文" in shown
    assert "only the customer's owner" in shown.lower() or "只有客户的负责人" in shown  # Bob was a rep
    assert await stored(core, Member, Member.name, Member.role, Member.locale) == [
        ("Alice", "admin", None), ("Bob", "manager", "zh")]
    async with core.db.transaction() as session:
        owner = await session.scalar(select(Member.name).join(Customer, Customer.owner_id == Member.id))
    assert owner == "Bob"
    assert console.user == "Alice"


# --- the console's own lines in the book's language (item 15) ---------------------------------------------

async def test_the_banner_speaks_the_books_language(core: Core) -> None:
    console, screen = console_for(core, locale="zh")
    shown = await typed(console, screen, "/help")
    assert "控制台 — /help 查看全部命令" in shown and "console —" not in shown

    again, screen = console_for(core, locale="zh")
    await typed(again, screen, "/settings locale=en")
    last, screen = console_for(core, locale="zh")
    assert "console — /help lists the commands" in await typed(last, screen)


async def test_the_terminal_language_counts_for_the_person(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    console, screen = console_for(core, locale="zh")
    shown = await typed(console, screen, "/me")
    assert "console — /help" in shown and "Language: English" in shown

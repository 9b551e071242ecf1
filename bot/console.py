"""The console: the same handlers as a chat in the terminal, for trying the bot and scripted demos.

- Buttons are shown as numbered choices, numbered once across everything one
  command answered (`/today` has several groups); typing the number presses it.
- A command that takes a file (`/import`) gets the local file its last
  argument names attached; quote a path with spaces (`/import "my customers.csv"`).
  Nothing else is looked up on disk: a note that ends in a file name stays a note.
- Who is typing: `crm-bot console --as NAME`, else `CRM_CONSOLE_USER`, else the
  login name; `/me name=NAME` switches to someone else (a new name joins the
  book as a rep), so invites, roles and hand-overs can be tried in one terminal.
- Files the bot sends (exports, charts) are saved under `./exports/` and their
  path is printed. Ctrl-C or Ctrl-D quits at once, also while waiting for input.
- Empty lines, and lines starting with `# ` (comments in a script), answer nothing.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from rich.console import Console as RichConsole
from rich.markup import escape

from bot.private_files import write_private
from handlers.core import Core
from handlers.i18n import normalize_locale, t
from handlers.messages import Attachment, Button, Reply, Request, field_separator
from handlers.parsing import Token, fold, tokenize
from handlers.registry import Command, find_command

PLATFORM = "console"
SPACE = "console"
#: `/me name=Bob`: the keys that name who is typing.
NAME_KEYS = frozenset({"name", "名字", "姓名"})


def _person(name: str | None) -> str:
    return " ".join((name or "").split())[:200]


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor in the passwd database
        return ""


def terminal_language() -> str | None:
    """The terminal's language (LC_ALL, LC_MESSAGES, LANG), when it is one the bot speaks."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(variable):
            return normalize_locale(os.environ[variable], "") or None
    return None


class Console:
    def __init__(
        self,
        core: Core,
        *,
        default_locale: str,
        user: str | None = None,
        out: RichConsole | None = None,
        lines: TextIO | None = None,
        export_dir: Path = Path("exports"),
    ) -> None:
        self.core = core
        self.lines = lines or sys.stdin
        #: Into a file or pipe (a scripted demo) lines are not wrapped at 80 columns.
        self.out = out or RichConsole(highlight=False, soft_wrap=not sys.stdout.isatty())
        self.export_dir = export_dir
        #: A name given on purpose (--as, CRM_CONSOLE_USER) also names a new book; a login name does not.
        self.named = _person(user) or _person(os.environ.get("CRM_CONSOLE_USER"))
        self.user = self.named or login_name() or "me"
        self.language = terminal_language()
        self.locale = normalize_locale(self.language, default_locale)
        self.choices: list[Button] = []
        self.sender = ConsoleSender(self)

    def request(self, **fields: object) -> Request:
        book = t(self.locale, "start.solo_name", name=self.named) if self.named else t(self.locale, "start.solo_default")
        return Request(
            platform=PLATFORM, user_id=self.user, chat_id=SPACE, user_name=self.user, space=SPACE,
            space_name=book, is_private=True, language=self.language, dm_chat_id=SPACE,
            progress=self.show_progress, **fields,  # type: ignore[arg-type]
        )

    def say(self, key: str, **params: object) -> None:
        """One of the console's own lines, in the language the person is answered in."""
        self.out.print(f"[dim]{escape(t(self.locale, key, **params))}[/dim]")

    async def run(self) -> None:
        interactive = self.lines.isatty()
        self.locale = await self.core.locale_for(self.request())
        self.out.print(f"[bold]crm-bot[/bold] {escape(t(self.locale, 'console.banner'))}")
        self.say("console.you_are", name=self.user)
        with _terminal_kept(self.lines if interactive else None):
            reader = LineReader(self.lines, self.out if interactive else None)
            try:
                while (line := await reader.next()) is not None:
                    text = line.strip()
                    if not text or text == "#" or text.startswith("# "):
                        continue  # nothing typed, or a comment in a script: nothing to answer
                    if not interactive:
                        self.out.print(f"[dim]> {escape(line)}[/dim]")
                    await self.answer(text)
            except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the main task
                self.out.print()
                self.say("console.bye")
                raise
        if interactive:
            self.out.print()
            self.say("console.bye")

    async def answer(self, text: str) -> None:
        """Run one typed line: a button number, a switch of person (`/me name=…`), or a command."""
        switch = self.switch_to(text)
        if switch is not None:
            name, rest = switch
            self.user, self.named = name, self.named or name
            self.locale = await self.core.locale_for(self.request())
            self.say("console.switched", name=name)
            text = rest
        self.show_all(await self.core.handle(self.parse(text)))
        self.locale = await self.core.locale_for(self.request())

    def switch_to(self, text: str) -> tuple[str, str] | None:
        """`/me name=Bob lang=en` → ("Bob", "/me lang=en"); None for any other line."""
        tokens = tokenize(text)
        entry = _command_of(tokens)
        if entry is None or entry.name != "me":
            return None
        for token in tokens[1:]:
            key, sep, value = token.text.partition("=")
            if sep and fold(key).strip().lower() in NAME_KEYS and _person(value):
                rest = [tok for tok in tokens if tok is not token]
                return _person(value), " ".join(text[tok.start:tok.end] for tok in rest)
        return None

    def parse(self, text: str) -> Request:
        """A typed line → a button press (an ASCII number: '²' is a digit too) or a command, with its file
        attached if it takes one."""
        if text.isascii() and text.isdigit() and 0 < int(text) <= len(self.choices):
            return self.request(action=self.choices[int(text) - 1].action)
        tokens = tokenize(text)
        entry = _command_of(tokens)
        if entry is not None and entry.takes_file and len(tokens) > 1:
            file = local_file(tokens[-1])
            if file is not None:
                return self.request(text=text[:tokens[-1].start].rstrip(), file=file)
        return self.request(text=text)

    def show_all(self, replies: list[Reply]) -> None:
        """Show one answer; its buttons, over all its replies, become the choices 1, 2, 3 …"""
        buttons = [button for reply in replies for button in reply.all_buttons()]
        if buttons:
            self.choices = buttons
        number = 1
        for reply in replies:
            number = self.show(reply, number)

    def show(self, reply: Reply, first_number: int = 1) -> int:
        """Print one reply, its buttons numbered from `first_number`; the next free number."""
        if reply.title:
            self.out.print(f"[bold]{escape(reply.title)}[/bold]")
        if reply.text:
            self.out.print(escape(reply.text))
        for field in reply.fields:
            self.out.print(f"  [bold]{escape(field.label)}[/bold]{field_separator(field.label)}{escape(field.value)}")
        for item in reply.items:
            self.out.print(f"  • {escape(item)}")
        for key, message in reply.form_errors.items():
            self.out.print(f"  [red]{escape(key)}[/red]{field_separator(key)}{escape(message)}")
        for attachment in (reply.file, reply.image):
            if attachment is not None:
                self.out.print(f"  [green]→ {escape(str(self.save(attachment)))}[/green]")
        number = first_number
        for row in reply.buttons:
            labels = []
            for button in row:
                labels.append(f"[cyan][{number}][/cyan] {escape(button.label)}")
                number += 1
            if labels:
                self.out.print("  " + "   ".join(labels))
        self.out.print()
        return number

    def save(self, attachment: Attachment) -> Path:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = self.export_dir / Path(attachment.name).name
        write_private(path, attachment.content)
        return path.resolve()

    async def show_progress(self, reply: Reply) -> None:
        self.out.print(f"[dim]{escape(reply.plain_text())}[/dim]")


def _command_of(tokens: list[Token]) -> Command | None:
    """The command a typed line starts with (`/import`, `import`, `/导入`), as the core reads it."""
    return find_command(fold(tokens[0].text).lstrip("/").split("@")[0]) if tokens else None


def local_file(token: Token) -> Attachment | None:
    """The file a typed path names, read; None when it names no readable file (whatever the text)."""
    path = Path(token.text).expanduser()
    try:
        return Attachment(path.name, path.read_bytes()) if path.is_file() else None
    except (OSError, ValueError):  # too long for a file name, a NUL byte, unreadable
        return None


class LineReader:
    """Lines from the terminal or a script, read on a daemon thread: waiting for input never
    keeps Ctrl-C (which cancels the loop's main task) or the process's exit waiting for Enter."""

    def __init__(self, lines: TextIO, prompt_on: RichConsole | None) -> None:
        self.lines, self.prompt_on = lines, prompt_on
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Queue[str | None] = asyncio.Queue()
        self.wanted = threading.Event()
        threading.Thread(target=self._read, name="console-input", daemon=True).start()

    async def next(self) -> str | None:
        """The next line, or None at the end of the input (Ctrl-D)."""
        self.wanted.set()
        return await self.ready.get()

    def _read(self) -> None:
        while True:
            self.wanted.wait()  # the prompt comes after the previous answer is shown
            self.wanted.clear()
            line = self._line()
            self.loop.call_soon_threadsafe(self.ready.put_nowait, line)
            if line is None:
                return

    def _line(self) -> str | None:
        try:
            if self.prompt_on is not None:
                return self.prompt_on.input("[bold cyan]> [/bold cyan]")
            line = self.lines.readline()
        except (EOFError, OSError, ValueError):  # Ctrl-D, or the input closed under us
            return None
        except UnicodeDecodeError:
            return ""
        return line.rstrip("\r\n") if line else None


@contextmanager
def _terminal_kept(lines: TextIO | None) -> Iterator[None]:
    """Put the terminal's settings back on the way out: leaving while the line editor owns the
    terminal (Ctrl-C at the prompt) would otherwise leave it without echo."""
    try:
        import termios

        fd = lines.fileno() if lines is not None else -1
        saved = termios.tcgetattr(fd) if fd >= 0 else None
    except (ImportError, OSError, ValueError):
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            except OSError:
                pass


class ConsoleSender:
    """reminders.delivery.Sender: what the bot sends first (reminders, digests) is shown like a reply,
    and its buttons become the numbered choices."""

    platform = PLATFORM

    def __init__(self, console: Console) -> None:
        self.console = console

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.console.show_all([reply])

"""The console: the same handlers as a chat in the terminal, for trying the bot and scripted demos.

Buttons are shown as numbered choices; typing the number presses the button.
A command whose last word is the path of a local file gets that file attached
(`/import customers.csv`). Files the bot sends (exports, charts) are saved
under `./exports/` and their path is printed.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console as RichConsole
from rich.markup import escape

from bot.private_files import write_private
from handlers.core import Core
from handlers.i18n import normalize_locale
from handlers.messages import Attachment, Button, Reply, Request

PLATFORM = "console"
SPACE = "console"


def console_user() -> str:
    return os.environ.get("CRM_CONSOLE_USER") or getpass.getuser() or "me"


class Console:
    def __init__(
        self,
        core: Core,
        *,
        default_locale: str,
        out: RichConsole | None = None,
        lines: TextIO | None = None,
        export_dir: Path = Path("exports"),
    ) -> None:
        self.core = core
        self.out = out or RichConsole(highlight=False)
        self.lines = lines or sys.stdin
        self.export_dir = export_dir
        self.user = console_user()
        self.language = normalize_locale(os.environ.get("LANG"), default_locale)
        self.choices: list[Button] = []
        self.sender = ConsoleSender(self)

    def request(self, **fields: object) -> Request:
        return Request(
            platform=PLATFORM, user_id=self.user, chat_id=SPACE, user_name=self.user, space=SPACE,
            space_name=self.user, is_private=True, language=self.language, dm_chat_id=SPACE,
            progress=self.show_progress, **fields,  # type: ignore[arg-type]
        )

    async def run(self) -> None:
        interactive = self.lines.isatty()
        self.out.print("[bold]crm-bot[/bold] console — /help lists the commands, Ctrl-D quits.")
        while True:
            line = await asyncio.to_thread(self._read, interactive)
            if line is None:
                return
            if not interactive and line.strip():
                self.out.print(f"[dim]> {escape(line)}[/dim]")
            for reply in await self.core.handle(self.parse(line)):
                self.show(reply)

    def _read(self, interactive: bool) -> str | None:
        if interactive:
            try:
                return self.out.input("[bold cyan]> [/bold cyan]")
            except EOFError:
                return None
        line = self.lines.readline()
        return line.rstrip("\n") if line else None

    def parse(self, line: str) -> Request:
        """A typed line → a button press (a number) or a command, with a local file attached."""
        text = line.strip()
        if text.isascii() and text.isdigit() and 0 < int(text) <= len(self.choices):  # '²' is a digit too
            return self.request(action=self.choices[int(text) - 1].action)
        head, _, last = text.rpartition(" ")
        path = Path(last).expanduser()
        if head and path.is_file():
            return self.request(text=head, file=Attachment(path.name, path.read_bytes()))
        return self.request(text=text)

    def show(self, reply: Reply) -> None:
        if reply.title:
            self.out.print(f"[bold]{escape(reply.title)}[/bold]")
        if reply.text:
            self.out.print(escape(reply.text))
        for field in reply.fields:
            self.out.print(f"  [bold]{escape(field.label)}[/bold]: {escape(field.value)}")
        for item in reply.items:
            self.out.print(f"  • {escape(item)}")
        for key, message in reply.form_errors.items():
            self.out.print(f"  [red]{escape(key)}[/red]: {escape(message)}")
        for attachment in (reply.file, reply.image):
            if attachment is not None:
                self.out.print(f"  [green]→ {escape(str(self.save(attachment)))}[/green]")
        buttons = reply.all_buttons()
        if buttons:
            self.choices = buttons
            self.out.print("  " + "   ".join(f"[cyan][{i}][/cyan] {escape(b.label)}" for i, b in enumerate(buttons, 1)))
        self.out.print()

    def save(self, attachment: Attachment) -> Path:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        path = self.export_dir / Path(attachment.name).name
        write_private(path, attachment.content)
        return path.resolve()

    async def show_progress(self, reply: Reply) -> None:
        self.out.print(f"[dim]{escape(reply.plain_text())}[/dim]")


class ConsoleSender:
    """reminders.delivery.Sender: what the bot sends first (reminders, digests) is shown like a reply,
    and its buttons become the numbered choices."""

    platform = PLATFORM

    def __init__(self, console: Console) -> None:
        self.console = console

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.console.show(reply)

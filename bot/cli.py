"""`crm-bot`: run the bot, the console, migrations, CSV import and export."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram.error import InvalidToken, TelegramError

from bot.app import App, quiet_logs_for_the_terminal
from bot.config import Settings
from bot.private_files import write_private
from handlers.errors import UserError
from handlers.i18n import t
from handlers.tags import auto_tag_names
from handlers.transfer import export_headers, read_csv, stage_names, summary
from storage import transfer, workspaces
from storage.access import Scope
from storage.models import Member, Workspace

#: Exit codes: a problem (nothing was imported or written); an import that left some rows out.
EXIT_FAILED = 1
EXIT_ROWS_REJECTED = 3


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="crm-bot", description="A CRM that lives in your team chat.")
    verbs = cli.add_subparsers(dest="verb", required=True)
    verbs.add_parser("run", help="serve every platform with a token set (none set: the local console)")
    verbs.add_parser("console", help="chat with the bot in this terminal")
    db = verbs.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply migrations")
    into = verbs.add_parser("import", help="import customers from a CSV file (headers in English or Chinese)")
    into.add_argument("file", type=Path, help="the CSV file")
    out = verbs.add_parser("export", help="export the customer book as CSV (UTF-8 with BOM, opens in Excel)")
    out.add_argument("file", nargs="?", help="where to write it (default customers-<date>.csv; - for stdout)")
    for verb in (into, out):
        verb.add_argument("--workspace", type=int, metavar="ID",
                          help="the workspace (default: the only one, else the console's)")
    return cli


async def _db_upgrade(app: App) -> None:
    try:
        await app.db.upgrade()
    finally:
        await app.db.dispose()
    print(f"database at {app.db.url.render_as_string(hide_password=True)} is up to date")


async def _console(app: App) -> None:
    quiet_logs_for_the_terminal()
    await app.db.upgrade()
    try:
        await app.console()
    finally:
        await app.db.dispose()


class CliError(Exception):
    """A problem to print instead of a stack trace; exits non-zero."""


async def _acting_admin(session: AsyncSession, workspace_id: int | None) -> tuple[Workspace, Member]:
    """The workspace a CLI import/export works on, and its first admin, whom the CLI acts as."""
    books = list(await session.scalars(select(Workspace).order_by(Workspace.id)))
    if not books:
        raise CliError("no workspace yet: start `crm-bot console` (or the bot) once, then import")
    listing = "; ".join(f"{w.id}: {w.name}" for w in books)
    if workspace_id is not None:
        workspace = next((w for w in books if w.id == workspace_id), None)
    elif len(books) == 1:
        workspace = books[0]
    else:
        workspace = await workspaces.workspace_for_space(session, "console", "console")
    if workspace is None:
        wanted = f"no workspace {workspace_id}" if workspace_id is not None else "which workspace? use --workspace ID"
        raise CliError(f"{wanted}; workspaces: {listing}")
    admin = next((m for m in await workspaces.members(session, workspace.id) if m.role == "admin"), None)
    if admin is None:
        raise CliError(f"workspace {workspace.id} has no admin to act as")
    return workspace, admin


def _scope(workspace: Workspace, member: Member) -> Scope:
    return Scope(workspace.id, member.id, member.role, workspace.visibility)


async def _import(app: App, path: Path, workspace_id: int | None) -> int:
    try:
        content = path.read_bytes()
    except OSError as problem:
        raise CliError(f"cannot read {path}: {problem.strerror}") from None
    await app.db.upgrade()
    async with app.db.transaction() as session:
        workspace, admin = await _acting_admin(session, workspace_id)
        locale = admin.locale or workspace.locale
        try:
            table = read_csv(content, locale)
        except UserError as problem:
            raise CliError(t(locale, problem.key, **problem.params)) from None
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(escape(f"{path.name} → {workspace.name}"), total=len(table.rows))
            result = await transfer.import_table(
                session, workspace, _scope(workspace, admin), table, now=app.services.clock(),
                progress=lambda done, _total: bar.update(task, completed=done), auto_tags=auto_tag_names(),
            )
    print(summary(locale, result))
    return EXIT_ROWS_REJECTED if result.rejected else 0


async def _export(app: App, target: str | None, workspace_id: int | None) -> int:
    await app.db.upgrade()
    async with app.db.transaction() as session:
        workspace, admin = await _acting_admin(session, workspace_id)
        locale, zone = admin.locale or workspace.locale, ZoneInfo(admin.timezone or workspace.timezone)
        scope = _scope(workspace, admin)
        content = await transfer.export_csv(session, scope, export_headers(locale), tz=zone,
                                            stage_names=stage_names(locale))
        count = await transfer.count_visible(session, scope)
    if target == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return 0
    path = Path(target or f"customers-{datetime.now(zone):%Y-%m-%d}.csv")
    try:
        write_private(path, content)
    except OSError as problem:
        raise CliError(f"cannot write {path}: {problem.strerror}") from None
    print(f"{count} customers of {workspace.name} → {path}")
    return 0


def refused_token(problem: InvalidToken) -> str:
    """Why Telegram refused the token, as its HTTP status (`401 Unauthorized`; a malformed token gets
    `404 Not Found`), without the token python-telegram-bot writes into its own message."""
    said = problem.__cause__.message if isinstance(problem.__cause__, TelegramError) else ""
    status = next((status for status in HTTPStatus if status.phrase == said), None)
    return f"{status.value} {status.phrase}" if status is not None else "invalid token"


async def _disposing(app: App, work: Awaitable[int]) -> int:
    try:
        return await work
    finally:
        await app.db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = App.build(settings)
    verbs: dict[str, Callable[[], Awaitable[int | None]]] = {
        "run": app.run, "console": lambda: _console(app), "db": lambda: _db_upgrade(app),
        "import": lambda: _disposing(app, _import(app, args.file, args.workspace)),
        "export": lambda: _disposing(app, _export(app, args.file, args.workspace)),
    }
    try:
        return asyncio.run(verbs[args.verb]()) or 0
    except KeyboardInterrupt:
        return 130
    except CliError as problem:
        print(f"crm-bot {args.verb}: {problem}", file=sys.stderr)
        return EXIT_FAILED
    except InvalidToken as refused:  # from getMe as the Telegram platform starts
        print(f"crm-bot {args.verb}: TELEGRAM_BOT_TOKEN was refused by Telegram ({refused_token(refused)})",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

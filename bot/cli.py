"""`crm-bot`: run the bot, the console, migrations, CSV import and export, backup and restore."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import logs
from bot.app import App, quiet_logs_for_the_terminal
from bot.config import Settings
from bot.private_files import write_private
from handlers.errors import UserError
from handlers.i18n import normalize_locale, t
from handlers.mapping import describe
from handlers.transfer import export_headers, read_plan, run_import, stage_names, summary
from storage import backup as backups
from storage import workspaces
from storage.transfer import export as exporting
from storage.access import Scope
from storage.db import DatabaseUnavailable
from storage.models import Member, Workspace

#: Exit codes: a problem (nothing was imported or written); an import that left some rows out; Ctrl-C.
EXIT_FAILED = 1
EXIT_ROWS_REJECTED = 3
EXIT_INTERRUPTED = 130


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="crm-bot", description="A CRM that lives in your team chat.")
    verbs = cli.add_subparsers(dest="verb", required=True)
    verbs.add_parser("run", help="serve every platform with a token set (none set: the local console)")
    console = verbs.add_parser("console", help="chat with the bot in this terminal")
    console.add_argument("--as", dest="user", metavar="NAME",
                         help="who is typing (default: CRM_CONSOLE_USER, else your login name)")
    db = verbs.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply migrations")
    into = verbs.add_parser("import", help="import customers from a CSV, Excel (.xlsx, .xls) or vCard (.vcf) file")
    into.add_argument("file", type=Path, help="the file")
    into.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                      help="read COLUMN as FIELD, e.g. --map 电话=手机号码 or --map notes=工号 (repeatable; "
                           "FIELD unused leaves the column out)")
    into.add_argument("--dry-run", action="store_true", help="show what the import would do, and write nothing")
    out = verbs.add_parser("export", help="export the customer book as CSV (UTF-8 with BOM) or an Excel workbook")
    out.add_argument("file", nargs="?", help="where to write it (default customers-<date>.csv; - for stdout; "
                                             "a name ending in .xlsx writes a workbook)")
    out.add_argument("--format", choices=exporting.FORMATS, help="csv or xlsx (default: from the file name, else csv)")
    back = verbs.add_parser("backup", help="copy the SQLite database to FILE, also while the bot runs "
                                           "(PostgreSQL: pg_dump)")
    back.add_argument("file", type=Path, help="where to write the copy (replaced if there)")
    back_in = verbs.add_parser("restore", help="put a backup in place of the SQLite database, keeping the old one "
                                              "beside it, and migrate it (stop the bot first; PostgreSQL: pg_restore)")
    back_in.add_argument("file", type=Path, help="a file `crm-bot backup` wrote")
    for verb in (into, out):
        verb.add_argument("--workspace", type=int, metavar="ID",
                          help="the workspace (default: the only one, else the console's)")
    return cli


async def _db_upgrade(app: App) -> None:
    try:
        before, after = await app.db.upgrade()
    finally:
        await app.db.dispose()
    key = "cli.up_to_date" if before == after else "cli.created" if before is None else "cli.upgraded"
    print(t(app.settings.default_locale, key, url=shown_url(app.settings.database_url), before=before or "—",
            after=after or "—"))


async def _console(app: App, user: str | None) -> None:
    quiet_logs_for_the_terminal()
    await app.db.upgrade()
    try:
        await app.console(user)
    finally:
        await app.db.dispose()


class CliError(Exception):
    """A problem to print instead of a stack trace, as a catalogue key (in the book's `locale` once
    one is known, else DEFAULT_LOCALE's); exits non-zero."""

    def __init__(self, key: str, locale: str | None = None, **params: object) -> None:
        super().__init__(key)
        self.key, self.locale, self.params = key, locale, params


async def _acting_admin(session: AsyncSession, workspace_id: int | None) -> tuple[Workspace, Member]:
    """The workspace a CLI import/export works on, and its first admin, whom the CLI acts as."""
    books = list(await session.scalars(select(Workspace).order_by(Workspace.id)))
    if not books:
        raise CliError("cli.no_workspace")
    listing = "; ".join(f"{w.id}: {w.name}" for w in books)
    if workspace_id is not None:
        workspace = next((w for w in books if w.id == workspace_id), None)
    elif len(books) == 1:
        workspace = books[0]
    else:
        workspace = await workspaces.workspace_for_space(session, "console", "console")
    if workspace is None:
        raise CliError("cli.no_such_workspace" if workspace_id is not None else "cli.which_workspace",
                       id=workspace_id, books=listing)
    admin = next((m for m in await workspaces.members(session, workspace.id) if m.role == "admin"), None)
    if admin is None:
        raise CliError("cli.no_admin", workspace.locale, id=workspace.id)
    return workspace, admin


def _scope(workspace: Workspace, member: Member) -> Scope:
    return Scope(workspace.id, member.id, member.role, workspace.visibility)


def _changes(maps: list[str]) -> dict[str, str]:
    """`--map 电话=手机号码` → {column: field}."""
    changes = {}
    for text in maps:
        field, sep, column = text.replace("＝", "=").partition("=")
        if not sep or not column.strip():
            raise CliError("cli.bad_map", text=text)
        changes[column.strip()] = field.strip()
    return changes


async def _import(app: App, path: Path, workspace_id: int | None, maps: list[str], dry_run: bool) -> int:
    try:
        content = path.read_bytes()
    except OSError as problem:
        raise CliError("cli.cannot_read", path=path, reason=problem.strerror) from None
    await app.db.upgrade()
    async with app.db.transaction() as session:
        workspace, admin = await _acting_admin(session, workspace_id)
    locale, now = admin.locale or workspace.locale, app.services.clock()
    try:
        plan = read_plan(content, path.name, locale, changes=_changes(maps))
    except UserError as problem:
        raise CliError(problem.key, locale, **problem.params) from None
    lines, rows = describe(locale, plan, workspace, now)
    print("\n".join([*lines, *(f"  • {row}" for row in rows)]) + "\n")
    if not plan.mapping.has_name:
        raise CliError("cli.import_no_name", locale)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(escape(f"{path.name} → {workspace.name}"), total=plan.rows)
        result = await run_import(app.db.transaction, plan, workspace, _scope(workspace, admin), locale, now,
                                  progress=lambda done, _total: bar.update(task, completed=done), dry_run=dry_run)
    print(summary(locale, result))
    return EXIT_ROWS_REJECTED if result.rejected else 0


async def _export(app: App, target: str | None, workspace_id: int | None, kind: str | None) -> int:
    kind = kind or ("xlsx" if target and target.lower().endswith(".xlsx") else "csv")
    write = exporting.export_xlsx if kind == "xlsx" else exporting.export_csv
    await app.db.upgrade()
    async with app.db.transaction() as session:
        workspace, admin = await _acting_admin(session, workspace_id)
        locale, zone = admin.locale or workspace.locale, ZoneInfo(admin.timezone or workspace.timezone)
        scope = _scope(workspace, admin)
        content = await write(session, scope, export_headers(locale), tz=zone, stage_names=stage_names(locale))
        count = await exporting.count_visible(session, scope)
    if target == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return 0
    path = Path(target or f"customers-{datetime.now(zone):%Y-%m-%d}.{kind}")
    try:
        write_private(path, content)
    except OSError as problem:
        raise CliError("cli.cannot_write", locale, path=path, reason=problem.strerror) from None
    print(t(locale, "cli.exported", count=f"{count:,}", workspace=workspace.name, path=path))
    return 0


def _sqlite_file(app: App, verb: str) -> Path:
    """The SQLite database file; on PostgreSQL, CliError pointing to pg_dump / pg_restore."""
    if not app.db.is_sqlite:
        raise CliError(f"cli.backup.postgres_{verb}", database=app.db.url.database or "crm")
    return Path(app.db.url.database or "")


def _backup_problem(problem: backups.BackupProblem, path: Path, database: Path) -> CliError:
    return CliError(f"cli.backup.{problem.reason}", path=path, database=database, detail=problem.detail,
                    revision=problem.revision)


async def _backup(app: App, target: Path) -> int:
    database = _sqlite_file(app, "backup")
    try:
        copied = await asyncio.to_thread(backups.backup, database, target)
    except backups.BackupProblem as problem:
        raise _backup_problem(problem, target, database) from None
    print(t(app.settings.default_locale, "cli.backed_up", database=database, path=target,
            size=f"{copied.size / 1e6:.1f}", revision=copied.revision))
    return 0


async def _restore(app: App, source: Path) -> int:
    database = _sqlite_file(app, "restore")
    try:
        restored = await asyncio.to_thread(backups.restore, source, database, now=datetime.now())
    except backups.BackupProblem as problem:
        raise _backup_problem(problem, source, database) from None
    _, after = await app.db.upgrade()
    locale = app.settings.default_locale
    kept = t(locale, "cli.restored_aside", aside=restored.aside) if restored.aside else ""
    print(t(locale, "cli.restored", path=source, database=database, before=restored.revision, after=after) + kept)
    return 0


def refused_token(problem: Exception) -> str | None:
    """Why Telegram refused the token, as its HTTP status (`401 Unauthorized`; a malformed token gets
    `404 Not Found`), without the token python-telegram-bot writes into its own message; None when the
    problem is not that. python-telegram-bot loads with the Telegram platform, not for every verb: before
    that nothing can be Telegram refusing a token."""
    errors = sys.modules.get("telegram.error")
    if errors is None or not isinstance(problem, errors.InvalidToken):
        return None
    said = problem.__cause__.message if isinstance(problem.__cause__, errors.TelegramError) else ""
    status = next((status for status in HTTPStatus if status.phrase == said), None)
    return f"{status.value} {status.phrase}" if status is not None else "invalid token"


async def _disposing(app: App, work: Awaitable[int]) -> int:
    try:
        return await work
    finally:
        await app.db.dispose()


def shown_url(url: str) -> str:
    """The database URL as the person wrote it, password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def configure_logging(level: str, style: str = "text") -> None:
    """LOG_LEVEL and LOG_FORMAT (text, or one JSON object a line) for the process; Alembic's
    per-migration INFO lines only at DEBUG (`db upgrade` says in one line what it did)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if style == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logs.JsonLines())
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def database_problem(problem: DatabaseUnavailable, url: str) -> tuple[str, dict[str, object]]:
    return f"cli.database.{problem.reason}", dict(
        url=shown_url(url), scheme=problem.scheme, host=problem.host, port=problem.port,
        database=problem.database, detail=problem.detail)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    verb = f"{args.verb} {args.action}" if args.verb == "db" else args.verb  # as typed: `crm-bot db upgrade`
    fallback = normalize_locale(os.environ.get("DEFAULT_LOCALE"), "zh")
    try:
        settings = Settings()
    except ValidationError as invalid:
        error = invalid.errors()[0]
        name = "_".join(map(str, error["loc"])).upper()
        return _failed(verb, fallback, "cli.bad_setting", name=name, reason=error["msg"])
    locale = settings.default_locale
    conflict = settings.conflict() if args.verb == "run" else None
    if conflict is not None:
        return _failed(verb, locale, conflict[0], **conflict[1])
    configure_logging(settings.log_level, settings.log_format)
    try:
        app = App.build(settings)
        verbs: dict[str, Callable[[], Awaitable[int | None]]] = {
            "run": app.run, "console": lambda: _console(app, args.user), "db": lambda: _db_upgrade(app),
            "import": lambda: _disposing(app, _import(app, args.file, args.workspace, args.map, args.dry_run)),
            "export": lambda: _disposing(app, _export(app, args.file, args.workspace, args.format)),
            "backup": lambda: _disposing(app, _backup(app, args.file)),
            "restore": lambda: _disposing(app, _restore(app, args.file)),
        }
        return asyncio.run(verbs[args.verb]()) or 0
    except KeyboardInterrupt:
        if args.verb not in ("console", "run"):  # the console says goodbye itself
            print(t(locale, "cli.interrupted", verb=verb), file=sys.stderr)
        return EXIT_INTERRUPTED
    except CliError as problem:
        return _failed(verb, problem.locale or locale, problem.key, **problem.params)
    except DatabaseUnavailable as problem:
        key, params = database_problem(problem, settings.database_url)
        return _failed(verb, locale, key, **params)
    except Exception as problem:  # noqa: BLE001 - only a refused token is answered here
        status = refused_token(problem)  # from getMe as the Telegram platform starts
        if status is None:
            raise
        return _failed(verb, locale, "cli.token_refused", status=status)


def _failed(verb: str, locale: str, key: str, **params: object) -> int:
    """Print one line saying what is wrong and what to do; the exit code of a failure."""
    print(t(locale, "cli.failed", verb=verb, problem=t(locale, key, **params)), file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

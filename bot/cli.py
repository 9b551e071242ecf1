"""`crm-bot`: run the bot, the console, migrations, CSV import and export."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.app import App
from bot.config import Settings


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="crm-bot", description="A CRM that lives in your team chat.")
    verbs = cli.add_subparsers(dest="verb", required=True)
    verbs.add_parser("run", help="serve every platform with a token set (none set: the local console)")
    verbs.add_parser("console", help="chat with the bot in this terminal")
    db = verbs.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="apply migrations")
    return cli


async def _db_upgrade(app: App) -> None:
    try:
        await app.db.upgrade()
    finally:
        await app.db.dispose()
    print(f"database at {app.db.url.render_as_string(hide_password=True)} is up to date")


async def _console(app: App) -> None:
    await app.db.upgrade()
    try:
        await app.console()
    finally:
        await app.db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = App.build(settings)
    verbs = {"run": app.run, "console": lambda: _console(app), "db": lambda: _db_upgrade(app)}
    try:
        asyncio.run(verbs[args.verb]())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
